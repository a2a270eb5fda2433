#!/usr/bin/env bash
# Runs one libFuzzer target (tests/fuzz/target_<name>.cpp, docs/testing.md) for SECONDS seconds,
# building it first in the fuzz preset (clang-14, ASan + UBSan) when needed.
#   scripts/fuzz.sh TARGET SECONDS [--no-build]     e.g. scripts/fuzz.sh spec 60
#   scripts/fuzz.sh --list
# Starts from the seed corpus tests/fuzz/corpus/TARGET plus the regression inputs in
# tests/fuzz/crashes/TARGET; inputs it finds interesting go to build/fuzz/fuzz/corpus/TARGET
# (kept between runs, never committed). A finding is saved to build/fuzz/fuzz/findings/TARGET/
# and the script exits 1 naming the file; its log is build/fuzz/fuzz/TARGET.log.
set -euo pipefail
cd "$(dirname "$0")/.."
build=build/fuzz
targets() { ls tests/fuzz/target_*.cpp | sed 's|.*/target_||; s|\.cpp$||'; }
if [ "${1:-}" = "--list" ]; then targets; exit 0; fi
if [ $# -lt 2 ] || [ $# -gt 3 ] || { [ $# -eq 3 ] && [ "$3" != "--no-build" ]; }; then
  sed -n '2,9p' "$0" >&2; exit 2
fi
target=$1 seconds=$2
if ! targets | grep -qx "$target"; then
  echo "fuzz.sh: no target '$target'; the targets are: $(targets | tr '\n' ' ')" >&2; exit 2
fi
case "$seconds" in ''|*[!0-9]*) echo "fuzz.sh: SECONDS must be a whole number, not '$seconds'" >&2; exit 2 ;; esac
if [ "${3:-}" != "--no-build" ]; then
  [ -f "$build/CMakeCache.txt" ] || cmake --preset fuzz >/dev/null
  cmake --build "$build" --target "fuzz_$target" -j"$(nproc)" >/dev/null
fi
bin="$build/tests/fuzz_$target"
[ -x "$bin" ] || { echo "fuzz.sh: $bin is not built (scripts/fuzz.sh builds it without --no-build)" >&2; exit 2; }
work="$build/fuzz/corpus/$target" findings="$build/fuzz/findings/$target" log="$build/fuzz/$target.log"
mkdir -p "$work" "$findings"
inputs=("$work" tests/fuzz/corpus/"$target")
[ -d tests/fuzz/crashes/"$target" ] && inputs+=(tests/fuzz/crashes/"$target")
# One thread per fuzzer (CI runs two at a time); leaks count as findings; a run over 10 s or
# 2 GiB is a finding too (a hang or a decompression bomb).
status=0
OMP_NUM_THREADS=1 ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$findings/" "${inputs[@]}" \
  >"$log" 2>&1 || status=$?
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
if [ "$status" -ne 0 ]; then
  found=$(sed -n 's/.*Test unit written to //p' "$log" | tail -1)
  echo "fuzz $target: FINDING after ${runs:-?} runs: ${found:-see $log}"
  grep -m1 -E "ERROR: |fuzz finding|runtime error|terminate called" "$log" || true
  echo "  replay: $build/tests/iotnas_fuzz_replay $target ${found:-FILE}"
  echo "  log:    $log"
  exit 1
fi
echo "fuzz $target: ${seconds} s, ${runs:-?} runs, ${speed:-?} exec/s, no finding"
