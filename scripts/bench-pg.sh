#!/usr/bin/env bash
# The load shapes of scripts/bench-peers.sh (1,000 outstanding; 8 processes x
# 1 outstanding; ACK latency p50/p99 at 1 outstanding; end to end with noop
# workers) on the embedded store, one broker on PostgreSQL and two brokers on
# one PostgreSQL database, in one command on a fresh Debian machine: installs
# what is missing (scripts/deps.sh: postgresql, libpq-dev), builds Herald
# (scripts/build.sh), then runs bench/bench_pg.py with the arguments given
# (see --help; --quick: about 15 s). It starts its own PostgreSQL in a
# temporary directory, as the postgres user, so it runs as root.
# Results are in BENCHMARKS.md ("PostgreSQL store").
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"
for arg in "$@"; do
  if [ "$arg" = "--help" ] || [ "$arg" = "-h" ]; then
    exec /usr/bin/python3 "$root/bench/bench_pg.py" --help
  fi
done
"$root/scripts/deps.sh"
BUILD_DIR="$build" "$root/scripts/build.sh"
commit="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
dirty="$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null | head -1)"
echo "bench-pg: commit $commit${dirty:+ (with uncommitted changes)}, $(nproc) CPUs, $(uname -r)"
exec /usr/bin/python3 "$root/bench/bench_pg.py" --bin-dir "$build/bin" "$@"
