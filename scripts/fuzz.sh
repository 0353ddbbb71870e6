#!/usr/bin/env bash
# Fuzzes Herald's parsers with libFuzzer under ASan + UBSan (tests/fuzz/README.md).
#
#   scripts/fuzz.sh --ci             the CI run: 20 s per target, after replaying
#                                    every regression input (what scripts/test.sh runs)
#   scripts/fuzz.sh SECONDS [T...]   SECONDS per target, e.g. 600 for a long run
#   scripts/fuzz.sh --list           the targets
#
# Builds the targets with clang into build-fuzz/ (BUILD_DIR= to change), runs
# them HERALD_FUZZ_JOBS (default 2) at a time, and prints the executions per
# target. What a run finds is in build-fuzz/fuzz-work/artifacts/TARGET/; the
# corpus it grows is kept in build-fuzz/fuzz-work/corpus/TARGET/ for the next
# run. Exit status 0 only if no target crashed, leaked or timed out.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD_DIR:-$root/build-fuzz}"
jobs="${HERALD_FUZZ_JOBS:-2}"
targets=(proto validate record config redact template mail)

usage () {
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
}

seconds=""
selected=()
while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h) usage; exit 0 ;;
    --list) printf '%s\n' "${targets[@]}"; exit 0 ;;
    --ci) seconds=20 ;;
    ''|*[!0-9]*)
      known=0
      for t in "${targets[@]}"; do [ "$t" = "$1" ] && known=1; done
      if [ $known -eq 0 ]; then
        echo "fuzz.sh: unknown target or option '$1' (targets: ${targets[*]})" >&2
        exit 64
      fi
      selected+=("$1") ;;
    *) seconds="$1" ;;
  esac
  shift
done
if [ -z "$seconds" ]; then
  usage >&2
  echo "fuzz.sh: say how long: --ci, or SECONDS per target" >&2
  exit 64
fi
[ ${#selected[@]} -eq 0 ] && selected=("${targets[@]}")

"$root/scripts/deps.sh"
compiler="$(command -v clang || true)"
if [ -z "$compiler" ]; then
  echo "fuzz.sh: clang not found (scripts/deps.sh installs it)" >&2
  exit 69
fi

echo "fuzz: configuring $build (clang, libFuzzer, ASan + UBSan)"
mkdir -p "$build"
cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER="$compiler" -DHERALD_FUZZ=ON \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo > "$build/configure.log" 2>&1 \
  || { cat "$build/configure.log"; echo "fuzz: cmake configure failed" >&2; exit 1; }
echo "fuzz: compiling (log: $build/build.log)"
if ! cmake --build "$build" --target herald_fuzz -j"$(nproc)" > "$build/build.log" 2>&1; then
  grep -E -B2 -A12 'error|Error' "$build/build.log" | head -80
  echo "fuzz: compilation failed (full log: $build/build.log)" >&2
  exit 1
fi

pattern="^fuzz\\.($(IFS='|'; echo "${selected[*]}"))\$"
echo "fuzz: ${#selected[@]} targets, $seconds s each, $jobs at a time"
status=0
HERALD_FUZZ_SECONDS="$seconds" ctest --test-dir "$build" -R "$pattern" -j"$jobs" \
  --timeout $((seconds + 600)) --output-on-failure > "$build/fuzz-ctest.log" 2>&1 || status=$?

echo "== executions per target ($seconds s each)"
total=0
for t in "${selected[@]}"; do
  result="$build/fuzz-work/results/$t"
  if [ -f "$result" ]; then
    cat "$result"
    n=$(sed -n 's/^fuzz [a-z]*: \([0-9][0-9]*\) executions.*/\1/p' "$result")
    total=$((total + ${n:-0}))
  else
    echo "fuzz $t: no result (see $build/fuzz-ctest.log)"
    status=1
  fi
done
echo "== $total executions in all"
if [ $status -ne 0 ]; then
  grep -E -A70 'fuzz [a-z]+: (FAILED|a regression)' "$build/fuzz-ctest.log" | head -150 || true
  echo "fuzz: FAILED (log: $build/fuzz-ctest.log; inputs: $build/fuzz-work/artifacts/)" >&2
  exit 1
fi
echo "fuzz: no crash, leak or timeout"
