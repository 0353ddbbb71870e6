#!/usr/bin/env bash
# Herald side by side with Redis 7 streams (appendfsync always) and the
# machine's floor (ZeroMQ ROUTER + one write + fdatasync per batch; end to end:
# the same, fanned out to three workers whose answers are written the same
# way), on the same load shapes, in one command on a fresh Debian machine:
# installs what is missing (scripts/deps.sh: redis-server, libhiredis-dev),
# builds Herald (scripts/build.sh), then runs build/bin/herald_bench_peers
# with the arguments given (see --help; --quick: well under a minute).
# Results are in BENCHMARKS.md.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"
for arg in "$@"; do
  if [ "$arg" = "--help" ] || [ "$arg" = "-h" ]; then
    if [ -x "$build/bin/herald_bench_peers" ]; then
      exec "$build/bin/herald_bench_peers" --help
    fi
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
  fi
done
"$root/scripts/deps.sh"
BUILD_DIR="$build" "$root/scripts/build.sh"
commit="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
dirty="$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null | head -1)"
echo "bench-peers: commit $commit${dirty:+ (with uncommitted changes)}, $(nproc) CPUs, $(uname -r)"
exec "$build/bin/herald_bench_peers" "$@"
