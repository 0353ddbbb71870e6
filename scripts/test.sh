#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds Herald twice (normal,
# then with AddressSanitizer + UndefinedBehaviorSanitizer) and runs every test
# under ctest in both builds (the benchmarks' short runs, label "bench", only in
# the normal one: under the sanitizers they take longest and their figures mean
# nothing); between the two, a short fuzz run of every parser (scripts/fuzz.sh
# --ci: a clang build in build-fuzz/, every regression input replayed, then 20 s
# per target). Each phase prints how long it took, the whole run its total.
# Exit status 0 only if everything passed.
#   HERALD_SKIP_SANITIZE=1   run only the normal build
#   HERALD_SKIP_FUZZ=1       skip the fuzz run
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/deps.sh"

started=$SECONDS
phase () { echo "== $1 (at $((SECONDS - started)) s)"; }
phase "normal build"
BUILD_DIR="$root/build" "$root/scripts/build.sh"
phase "tests (normal build)"
ctest --test-dir "$root/build" --output-on-failure -j2 --timeout 600

if [ "${HERALD_SKIP_FUZZ:-0}" != "1" ]; then
  phase "fuzz (libFuzzer, ASan + UBSan, 20 s per target)"
  "$root/scripts/fuzz.sh" --ci
fi

if [ "${HERALD_SKIP_SANITIZE:-0}" != "1" ]; then
  phase "sanitizer build (ASan + UBSan)"
  BUILD_DIR="$root/build-asan" "$root/scripts/build.sh" -DHERALD_SANITIZE=ON
  phase "tests (sanitizer build, without the benchmarks)"
  # Criterion keeps a test's exit status even when LeakSanitizer reports at
  # exit, so the whole output is also searched for sanitizer reports. The
  # fault tests' loads last 12 s here (HERALD_FAULT_DURATION; 15-20 s in the
  # normal build): their kill and power-cut counts scale with it (at least 6
  # broker kills), and the run stays within 20 minutes on 2 cores.
  HERALD_FAULT_DURATION="${HERALD_FAULT_DURATION:-12}" \
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir "$root/build-asan" --output-on-failure -j2 --timeout 900 -LE bench \
          --output-log "$root/build-asan/ctest-output.log"
  if grep -E -n 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$root/build-asan/ctest-output.log"; then
    echo "== sanitizer reports found (see $root/build-asan/ctest-output.log)" >&2
    exit 1
  fi
fi
echo "== all tests passed (in $((SECONDS - started)) s)"
