#!/usr/bin/env bash
# The fault suite, long version: builds Herald (and the fault library) and
# runs every tests/integration/test_fault_*.py with long durations, printing
# progress and each test's counts. CI runs the same tests short (ctest -R fault).
#
#   scripts/fault-soak.sh                  # everything, about 30 minutes
#   scripts/fault-soak.sh crash_broker     # only the tests whose names match
#
# Environment (defaults in brackets):
#   HERALD_FAULT_DURATION   load seconds of the crash tests [600]
#   HERALD_FAULT_OVERLOAD   load seconds of the overload test [60]
#   HERALD_FAULT_REPEAT     runs of each short test (fsync, disk, corrupt,
#                           clients, clock) [3]
#   HERALD_FAULT_RATE       lines/s per producer in the crash tests [50]
#   HERALD_FAULT_SEED       replay a run's random kill schedule
#   BUILD_DIR               build directory [build-fault]
#   HERALD_SKIP_BUILD=1     use BUILD_DIR as it is
# Logs of every run: $BUILD_DIR/fault-soak/<test>-<n>.log. Exit status 0
# only if every run passed.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD_DIR:-$root/build-fault}"
duration="${HERALD_FAULT_DURATION:-600}"
overload="${HERALD_FAULT_OVERLOAD:-60}"
repeat="${HERALD_FAULT_REPEAT:-3}"
rate="${HERALD_FAULT_RATE:-50}"
filter="${1:-}"
python=/usr/bin/python3

if [ "${HERALD_SKIP_BUILD:-0}" != "1" ]; then
  BUILD_DIR="$build" "$root/scripts/build.sh" || exit 1
fi
if [ ! -f "$build/bin/libherald_faultinject.so" ]; then
  echo "fault-soak: $build/bin/libherald_faultinject.so not built (is tests/fault in the build?);" \
       "the tests compile it themselves"
fi
logs="$build/fault-soak"
mkdir -p "$logs"
export HERALD_BIN_DIR="$build/bin" HERALD_SOURCE_DIR="$root"

failed=()
passed=0
started=$(date +%s)

# run NAME RUNS [VAR=VALUE ...]: runs test_fault_NAME.py RUNS times
run() {
  local name="$1" runs="$2"; shift 2
  if [ -n "$filter" ] && [[ "$name" != *"$filter"* ]]; then
    return
  fi
  local i
  for ((i = 1; i <= runs; i++)); do
    local log="$logs/$name-$i.log"
    local t0; t0=$(date +%s)
    printf '== %-14s run %d/%d (%s) ... ' "$name" "$i" "$runs" "${*:-defaults}"
    if env "$@" "$python" "$root/tests/integration/test_fault_$name.py" > "$log" 2>&1; then
      passed=$((passed + 1))
      echo "ok ($(( $(date +%s) - t0 ))s)"
    else
      failed+=("$name-$i")
      echo "FAILED ($(( $(date +%s) - t0 ))s): $log"
      grep -E '^FAIL' "$log" | head -10 | sed 's/^/     /'
    fi
    grep -E '^#    (counts|figures|.*: worker crashes|load over)' "$log" | sed 's/^#    /     /' | cut -c1-400
  done
}

echo "fault-soak: crash tests ${duration}s each, overload ${overload}s, short tests x${repeat}; logs in $logs"
run ack_fsync     "$repeat" HERALD_FAULT_ROUNDS=20
run corrupt_store "$repeat"
run disk_full     "$repeat"
run clock         "$repeat"
run clients       "$repeat"
run overload      1 HERALD_FAULT_DURATION="$overload"
run crash_worker  1 HERALD_FAULT_DURATION="$duration" HERALD_FAULT_RATE="$rate"
run crash_broker  1 HERALD_FAULT_DURATION="$duration" HERALD_FAULT_RATE="$rate"

echo "fault-soak: $passed passed, ${#failed[@]} failed in $(( $(date +%s) - started ))s"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fault-soak: failed: ${failed[*]}"
  exit 1
fi
