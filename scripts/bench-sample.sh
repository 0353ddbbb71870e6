#!/usr/bin/env bash
# The sample's own speed: etc/herald.yaml as shipped (the file driver, the
# workers it lists, under `herald up`), in a temp dir with its ports moved to
# free ones on 127.0.0.1, end to end: from the first `herald publish -f` of N
# orders to the last of their 3 N tasks done (`herald status`). With
# --prefetch P each channel gets `prefetch: P` (0: a worker's credit is its
# capacity, as before prefetch existed); several values run turn about.
#
# usage: scripts/bench-sample.sh [--events N] [--prefetch LIST] [--rounds R] [--keep] [--no-build]
#   --events N       orders per run (default 20000)
#   --prefetch LIST  comma-separated values, "default" for the sample's own
#                    (default: 0,default)
#   --rounds R       turns per value (default 2)
#   --keep           keep the temp dirs
#   --no-build       use the binaries in BUILD_DIR (default build/) as they are
# Builds Herald first (scripts/build.sh). Results are in BENCHMARKS.md.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"
events=20000 prefetch="0,default" rounds=2 keep=0 build_first=1
usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --events) events="${2:?--events needs a number}"; shift 2 ;;
    --prefetch) prefetch="${2:?--prefetch needs a list}"; shift 2 ;;
    --rounds) rounds="${2:?--rounds needs a number}"; shift 2 ;;
    --keep) keep=1; shift ;;
    --no-build) build_first=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench-sample: unknown option '$1' (see --help)" >&2; exit 64 ;;
  esac
done
[[ "$events" =~ ^[1-9][0-9]*$ ]] || { echo "bench-sample: --events: not a positive number: '$events'" >&2; exit 64; }
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "bench-sample: --rounds: not a positive number: '$rounds'" >&2; exit 64; }
IFS=, read -r -a values <<< "$prefetch"
for p in "${values[@]}"; do
  [[ "$p" = default || "$p" =~ ^(0|[1-9][0-9]*)$ ]] \
    || { echo "bench-sample: --prefetch: '$p' is neither a number nor 'default'" >&2; exit 64; }
done
if [ "$build_first" = 1 ]; then BUILD_DIR="$build" "$root/scripts/build.sh" >&2; fi
bin="$build/bin"
[ -x "$bin/herald" ] || { echo "bench-sample: no $bin/herald (build first, or set BUILD_DIR)" >&2; exit 66; }
py=/usr/bin/python3

up_pid=""
tmp=""
cleanup() {
  if [ -n "$up_pid" ] && kill -0 "$up_pid" 2>/dev/null; then
    kill -TERM "$up_pid" 2>/dev/null || true
    wait "$up_pid" 2>/dev/null || true
  fi
  if [ -n "$tmp" ] && [ "$keep" = 0 ]; then rm -rf "$tmp"; fi
}
trap cleanup EXIT

done_count() {
  "$bin/herald" status -c "$1" --json 2>/dev/null \
    | "$py" -c 'import json,sys; print(sum(c.get("done", 0) for c in json.load(sys.stdin)["channels"]))' 2>/dev/null \
    || echo 0
}

# one run: prints "orders/s"
run() {
  local p="$1" n="$2"
  tmp="$(mktemp -d "${TMPDIR:-/tmp}/herald-bench-sample.XXXXXX")"
  read -r p1 p2 p3 < <("$py" -c 'import socket
s=[socket.socket() for _ in range(3)]
[x.bind(("127.0.0.1", 0)) for x in s]
print(*[x.getsockname()[1] for x in s])')
  sed -e "s#tcp://127.0.0.1:5570#tcp://127.0.0.1:$p1#; s#tcp://127.0.0.1:5571#tcp://127.0.0.1:$p2#" \
      -e "s#tcp://127.0.0.1:5572#tcp://127.0.0.1:$p3#; s#var/#$tmp/var/#g" \
      "$root/etc/herald.yaml" > "$tmp/herald.yaml"
  if [ "$p" != default ]; then
    sed -i -e "s#^\(    driver: file.*\)#\1\n    prefetch: $p#" "$tmp/herald.yaml"
  fi
  "$py" - "$n" > "$tmp/orders.jsonl" <<'PY'
import json, sys
for i in range(int(sys.argv[1])):
    print(json.dumps({"order_id": 100000 + i, "customer": {"email": "ann%d@example.com" % i, "name": "Ann"},
                      "items": [{"sku": "BOOK-1", "qty": 1, "price": "12.50"}], "total": "12.50"}))
PY
  (cd "$root" && exec "$bin/herald" up -c "$tmp/herald.yaml") > "$tmp/up.log" 2>&1 &
  up_pid=$!
  local want_workers
  want_workers=$(grep -o 'workers: *{[^}]*}' "$tmp/herald.yaml" | grep -o '[0-9]\+' | paste -sd+ | bc)
  local deadline=$((SECONDS + 30))
  until [ "$("$bin/herald" status -c "$tmp/herald.yaml" --json 2>/dev/null \
           | "$py" -c 'import json,sys; print(sum(c.get("workers", 0) for c in json.load(sys.stdin)["channels"]))' \
           2>/dev/null || echo 0)" = "$want_workers" ]; do
    [ $SECONDS -lt $deadline ] || { echo "bench-sample: the workers did not register (log: $tmp/up.log)" >&2; exit 70; }
    sleep 0.1
  done
  local t0 t1
  t0=$(date +%s.%N)
  (cd "$root" && "$bin/herald" publish -c "$tmp/herald.yaml" -t order.confirmed -f "$tmp/orders.jsonl" --quiet) >&2
  deadline=$((SECONDS + 600))
  until [ "$(done_count "$tmp/herald.yaml")" -ge $((3 * n)) ]; do
    [ $SECONDS -lt $deadline ] || { echo "bench-sample: tasks not done after 600 s (log: $tmp/up.log)" >&2; exit 70; }
    sleep 0.05
  done
  t1=$(date +%s.%N)
  kill -TERM "$up_pid"; wait "$up_pid" 2>/dev/null || true
  up_pid=""
  [ "$keep" = 1 ] && echo "bench-sample: kept $tmp" >&2
  [ "$keep" = 1 ] || rm -rf "$tmp"
  tmp=""
  echo "$n / ($t1 - $t0)" | bc
}

commit="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "bench-sample: commit $commit, $(nproc) CPUs; etc/herald.yaml, $events orders a run, prefetch ${values[*]}, $rounds round(s)"
for ((r = 1; r <= rounds; r++)); do
  for p in "${values[@]}"; do
    echo "round $r/$rounds  prefetch $p: running..." >&2
    rate=$(run "$p" "$events")
    echo "round $r/$rounds  prefetch $p: $rate orders/s end to end"
  done
done
