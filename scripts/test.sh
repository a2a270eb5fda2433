#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite:
#   1. release build (oneDNN), all tests;
#   2. debug build with AddressSanitizer + UBSan (g++), all tests; then the libFuzzer targets
#      (tests/fuzz/, clang-14 + ASan + UBSan, only the libraries they reach), each for
#      $IOTNAS_FUZZ_SECONDS (default 30: the 45-minute CI budget) seconds, two at a time;
#   3. portable build (no oneDNN) of the kernels, engine and calib tests: the kernel tests, the
#      tests labelled `portable` and the latency golden test (the rest ran in stage 1; arm64
#      builds everything);
#   4. arm64 cross build (the Raspberry Pi stand-in), the `portable` subset under qemu, 1 thread;
#   5. CUDA kernels compiled (when nvcc is installed) with the kernel tests; GPU tests skip
#      without a GPU (the rest of the CUDA preset equals the release build).
# Usage: scripts/test.sh [--only release|sanitize|portable|arm64|cuda]...
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
only=()
while [ $# -gt 0 ]; do
  case "$1" in
    --only) only+=("$2"); shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "test.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
done
want() { [ ${#only[@]} -eq 0 ] || [[ " ${only[*]} " == *" $1 "* ]]; }
# Each stage's wall time, printed when the next starts and summed up at the end (docs/
# architecture.md keeps a fresh clone's figures: the CI budget is 45 minutes).
stage_name="" stage_start=0 script_start=$(date +%s) summary=""
stage_end() {
  [ -n "$stage_name" ] || return 0
  local s=$(( $(date +%s) - stage_start ))
  summary+=$(printf '  %-66s %4d:%02d' "$stage_name" $((s / 60)) $((s % 60)))$'\n'
  echo "==== $stage_name: $((s / 60)) min $((s % 60)) s"
  stage_name=""
}
stage() {
  stage_end
  stage_name="$*" stage_start=$(date +%s)
  echo; echo "==== $* ($(date +%H:%M:%S))"
}

stage "set-up (packages)"
if want arm64; then scripts/setup.sh --cross; else scripts/setup.sh; fi

if want release; then
  stage "release build + tests"
  cmake --preset release >/dev/null
  cmake --build --preset release -j"$jobs"
  ctest --preset release -j"$jobs" --timeout 900
fi
if want sanitize; then
  stage "ASan + UBSan build + tests"
  cmake --preset debug >/dev/null
  cmake --build --preset debug -j"$jobs"
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --preset debug -j"$jobs" --timeout 1800
  stage "fuzzers: clang-14 build + each target ${IOTNAS_FUZZ_SECONDS:-30} s, two at a time"
  cmake --preset fuzz >/dev/null
  cmake --build --preset fuzz -j"$jobs" --target $(scripts/fuzz.sh --list | sed 's/^/fuzz_/')
  scripts/fuzz.sh --list |
    xargs -P 2 -I{} scripts/fuzz.sh {} "${IOTNAS_FUZZ_SECONDS:-30}" --no-build
fi
if want portable; then
  # The other tests ran in the release stage on the same sources (the library tests pick the
  # portable backend themselves), and the arm64 stage compiles every target without oneDNN; what
  # this stage adds is x86 without oneDNN and without -march=native: every kernel test, the
  # `portable` subset (as arm64 runs it; it lives in the kernels and engine tests) and the golden
  # latency predictions, whose trees are sensitive to floating-point contraction. Only their
  # programs are built.
  stage "portable build (no oneDNN): kernel tests, portable subset, latency golden"
  cmake --preset portable >/dev/null
  cmake --build --preset portable -j"$jobs" \
    --target iotnas_kernels_tests iotnas_engine_tests iotnas_calib_tests
  ctest --preset portable -j"$jobs" --timeout 900 -L "portable|kernels"
  ctest --preset portable -j"$jobs" --timeout 900 -R CalibLatencyGolden
fi
if want arm64; then
  stage "arm64 cross build + portable subset under qemu"
  cmake --preset arm64 >/dev/null
  cmake --build --preset arm64 -j"$jobs"
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
    stage "CUDA kernels build + kernel tests (GPU tests skip without a GPU)"
    cmake --preset cuda >/dev/null
    cmake --build --preset cuda -j"$jobs" --target iotnas_kernels_tests
    ctest --preset cuda -j"$jobs" --timeout 900 -L kernels
  else
    stage "CUDA: nvcc not installed, skipped"
  fi
fi
stage_end
total=$(( $(date +%s) - script_start ))
echo; echo "==== stage times (min:s)"; printf '%s' "$summary"
printf '  %-66s %4d:%02d\n' "total" $((total / 60)) $((total % 60))
echo "==== all requested stages passed"
