#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite:
#   1. release build (oneDNN), all tests;
#   2. debug build with AddressSanitizer + UBSan (g++; the compute libraries at -O1), all tests;
#      then the libFuzzer targets (tests/fuzz/, clang-14 + ASan + UBSan, only the libraries they
#      reach), each for $IOTNAS_FUZZ_SECONDS (default 30: the 45-minute CI budget) seconds, two
#      at a time;
#   3. portable build (no oneDNN) of the kernel, calib and `portable` test programs: the kernel
#      tests, the tests labelled `portable` and the latency golden test (the rest ran in stage 1);
#   4. arm64 cross build (the Raspberry Pi stand-in) of every library, iotnas and the `portable`
#      test programs; the `portable` subset under qemu, 1 thread; `iotnas calib measure`;
#   5. CUDA kernels compiled (when nvcc is installed) with the kernel tests; GPU tests skip
#      without a GPU (the rest of the CUDA preset equals the release build).
# The portable, arm64 and CUDA builds compile only what their tests run; ctest starts the long
# tests first (scripts/test_times.txt). Stage times: docs/architecture.md, "CI budget".
# Usage: scripts/test.sh [--only release|sanitize|portable|arm64|cuda]...
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
only=()
while [ $# -gt 0 ]; do
  case "$1" in
    --only) only+=("$2"); shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "test.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
done
want() { [ ${#only[@]} -eq 0 ] || [[ " ${only[*]} " == *" $1 "* ]]; }
# Each stage's wall time, printed when the next starts and summed up at the end (docs/
# architecture.md keeps a fresh clone's figures: the CI budget is 45 minutes).
# The CPU time (user + system of the processes each stage waited for) is printed too: on a shared
# machine it varies less than the wall time.
stage_name="" stage_start=0 stage_cpu=0 script_start=$(date +%s) summary="" cpu=0
cpu_file=$(mktemp)
trap 'rm -f "$cpu_file"' EXIT
cpu_now() {  # sets cpu: the CPU seconds this script's finished children have used
  times >"$cpu_file"  # (not in a subshell: that would not see this shell's children)
  cpu=$(awk 'END { for (i = 1; i <= 2; i++) { split($i, p, "m"); t += p[1] * 60 + p[2] }
                   printf "%d", t }' "$cpu_file")
}
stage_end() {
  [ -n "$stage_name" ] || return 0
  cpu_now
  local s=$(( $(date +%s) - stage_start )) c=$(( cpu - stage_cpu ))
  summary+=$(printf '  %-66s %4d:%02d %6d' "$stage_name" $((s / 60)) $((s % 60)) "$c")$'\n'
  echo "==== $stage_name: $((s / 60)) min $((s % 60)) s (CPU $c s)"
  stage_name=""
}
stage() {
  stage_end
  cpu_now
  stage_name="$*" stage_start=$(date +%s) stage_cpu=$cpu
  echo; echo "==== $* ($(date +%H:%M:%S))"
}

stage "set-up (packages)"
if want arm64; then scripts/setup.sh --cross; else scripts/setup.sh; fi

# ctest starts the tests it knows to be long first when it has their times from an earlier run
# (Testing/Temporary/CTestCostData.txt), else in the order they are defined: the longest ones (in
# the apps tests, defined last) started last and ran alone on one core. A fresh build starts from
# scripts/test_times.txt (the tests over 5 s, in seconds, the longest figure of any stage;
# refresh it from a build's CTestCostData.txt when tests change much).
seed_test_times() {  # seed_test_times BUILD_DIR
  local to=$1/Testing/Temporary/CTestCostData.txt
  [ -f "$to" ] || { mkdir -p "$(dirname "$to")" && cp scripts/test_times.txt "$to"; }
}
# The test programs holding the `portable`-labelled tests, as the release build's ctest lists
# them (the portable and arm64 stages build only those); every test program when the release
# stage has not run here.
portable_programs() {
  local listed=""
  if [ -f build/release/CTestTestfile.cmake ]; then
    listed=$(ctest --test-dir build/release -N -L portable --show-only=json-v1 |
               grep -o '/tests/iotnas_[a-z0-9_]*_tests"' | sed 's|/tests/||; s|"||' | sort -u)
  fi
  if [ -n "$listed" ]; then echo "$listed"; return; fi
  sed -n 's/^foreach(folder \(.*\))$/\1/p' tests/CMakeLists.txt | tr ' ' '\n' |
    sed 's/.*/iotnas_&_tests/'
}

if want release; then
  stage "release: build"
  cmake --preset release >/dev/null
  cmake --build --preset release -j"$jobs"
  stage "release: tests"
  seed_test_times build/release
  ctest --preset release -j"$jobs" --timeout 900
fi
if want sanitize; then
  stage "ASan + UBSan (g++): build"
  cmake --preset debug >/dev/null
  cmake --build --preset debug -j"$jobs"
  stage "ASan + UBSan (g++): tests"
  seed_test_times build/debug
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --preset debug -j"$jobs" --timeout 1800
  stage "fuzzers: clang-14 build of the targets"
  cmake --preset fuzz >/dev/null
  cmake --build --preset fuzz -j"$jobs" --target $(scripts/fuzz.sh --list | sed 's/^/fuzz_/')
  stage "fuzzers: each target ${IOTNAS_FUZZ_SECONDS:-30} s, two at a time"
  scripts/fuzz.sh --list |
    xargs -P 2 -I{} scripts/fuzz.sh {} "${IOTNAS_FUZZ_SECONDS:-30}" --no-build
fi
if want portable; then
  # The other tests ran in the release stage on the same sources (the library tests pick the
  # portable backend themselves); what this stage adds is x86 without oneDNN and without
  # -march=native: every kernel test, the `portable` subset (as arm64 runs it; it lives in the
  # kernels and engine tests) and the golden latency predictions, whose trees are sensitive to
  # floating-point contraction. Only their programs are built.
  stage "portable (no oneDNN): build of the kernel, portable and calib test programs"
  cmake --preset portable >/dev/null
  cmake --build --preset portable -j"$jobs" \
    --target iotnas_kernels_tests iotnas_calib_tests $(portable_programs)
  stage "portable: kernel tests, portable subset, latency golden"
  seed_test_times build/portable
  ctest --preset portable -j"$jobs" --timeout 900 -L "portable|kernels"
  ctest --preset portable -j"$jobs" --timeout 900 -R CalibLatencyGolden
fi
if want arm64; then
  # Builds every library, the iotnas program and the test programs holding `portable` tests
  # (the others' tests do not run under qemu).
  stage "arm64: cross build of iotnas and the portable test programs"
  cmake --preset arm64 >/dev/null
  cmake --build --preset arm64 -j"$jobs" --target iotnas $(portable_programs)
  stage "arm64: portable subset under qemu"
  seed_test_times build/arm64
  OMP_NUM_THREADS=1 ctest --preset arm64 -j"$jobs" --timeout 900
  stage "arm64: iotnas calib measure --n 5 (small models) under qemu"
  calib_dir=$(mktemp -d)
  OMP_NUM_THREADS=1 timeout 300 qemu-aarch64-static -L /usr/aarch64-linux-gnu \
    build/arm64/apps/iotnas calib measure --n 5 --max-params 2e4 --repeats 3 \
    --out "$calib_dir/profile.json"
  measured=$(grep -c '"round": 2' "$calib_dir/profile.json")
  rm -rf "$calib_dir"
  [ "$measured" -eq 5 ] || { echo "calib measure under qemu: $measured of 5 models measured twice" >&2; exit 1; }
fi
if want cuda; then
  if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
    stage "CUDA kernels: build of the kernel tests"
    cmake --preset cuda >/dev/null
    cmake --build --preset cuda -j"$jobs" --target iotnas_kernels_tests
    stage "CUDA: kernel tests (GPU tests skip without a GPU)"
    seed_test_times build/cuda
    ctest --preset cuda -j"$jobs" --timeout 900 -L kernels
  else
    stage "CUDA: nvcc not installed, skipped"
  fi
fi
stage_end
total=$(( $(date +%s) - script_start ))
echo; printf '==== stage times %-49s %7s %6s\n' "" "min:s" "CPU s"; printf '%s' "$summary"
cpu_now
printf '  %-66s %4d:%02d %6d\n' "total" $((total / 60)) $((total % 60)) "$cpu"
echo "==== all requested stages passed"
