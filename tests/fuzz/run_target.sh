#!/usr/bin/env bash
# Runs one libFuzzer target (the ctest entry fuzz.NAME; scripts/fuzz.sh runs them all):
#   1. replays every input kept in tests/fuzz/regressions/NAME/: each must pass;
#   2. fuzzes for HERALD_FUZZ_SECONDS (default 20; 0 = only run the corpus once)
#      from the seeds in tests/fuzz/corpus/NAME/ and what earlier runs found
#      (WORK/corpus/NAME/, kept between runs), with tests/fuzz/dict/NAME.dict.
# Prints one line, also written to WORK/results/NAME:
#   fuzz NAME: N executions in S s, R regressions replayed, corpus C, no crash
# On a crash, a leak or a timeout it prints the report and where the input is
# (WORK/artifacts/NAME/), and exits 1.
# Usage: run_target.sh BINARY NAME TESTS_FUZZ_DIR WORK_DIR
set -uo pipefail
if [ $# -ne 4 ] || [ "$1" = "--help" ]; then
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
  [ "${1:-}" = "--help" ] && exit 0
  exit 64
fi
bin=$1 name=$2 src=$3 work=$4
seconds=${HERALD_FUZZ_SECONDS:-20}
case $seconds in ''|*[!0-9]*) echo "run_target.sh: HERALD_FUZZ_SECONDS must be a number of seconds, got '$seconds'" >&2; exit 64;; esac
seeds=$src/corpus/$name
regressions=$src/regressions/$name
corpus=$work/corpus/$name
artifacts=$work/artifacts/$name
log=$work/logs/$name.log
mkdir -p "$corpus" "$artifacts" "$work/logs" "$work/results"
rm -f "$work/results/$name"
# Leaks are failures too; UBSan reports stop the run (the build also sets
# -fno-sanitize-recover=all).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

fail () {
  echo "fuzz $name: $1" | tee "$work/results/$name"
  echo "---- last lines of $2"
  tail -n 60 "$2"
  echo "----"
  exit 1
}

replayed=0
if [ -d "$regressions" ]; then
  mapfile -t kept < <(find "$regressions" -type f ! -name 'README*' | sort)
  replayed=${#kept[@]}
  if [ "$replayed" -gt 0 ] && ! "$bin" "${kept[@]}" > "$log.replay" 2>&1; then
    fail "a regression input fails again (see $log.replay)" "$log.replay"
  fi
fi

dirs=("$corpus")
[ -d "$seeds" ] && dirs+=("$seeds")
[ -d "$regressions" ] && dirs+=("$regressions")
options=(-timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "-artifact_prefix=$artifacts/")
[ -f "$src/dict/$name.dict" ] && options+=("-dict=$src/dict/$name.dict")
if [ "$seconds" -eq 0 ]; then
  options+=(-runs=0)
else
  options+=("-max_total_time=$seconds")
fi
start=$(date +%s)
"$bin" "${options[@]}" "${dirs[@]}" > "$log" 2>&1
rc=$?
elapsed=$(( $(date +%s) - start ))
executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
size=$(find "$corpus" -type f | wc -l)
if [ $rc -ne 0 ]; then
  artifact=$(grep -o "Test unit written to .*" "$log" | tail -n 1 | sed 's/Test unit written to //')
  fail "FAILED after ${executions:-?} executions in ${elapsed} s: ${artifact:-no input saved} (reproduce: $bin ${artifact:-INPUT}; keep it: cp it to $regressions/)" "$log"
fi
echo "fuzz $name: ${executions:-0} executions in ${elapsed} s, $replayed regressions replayed, corpus $size, no crash" \
  | tee "$work/results/$name"
