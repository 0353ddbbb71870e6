#!/usr/bin/env bash
# Builds Herald into BUILD_DIR (default build/). Extra arguments go to cmake.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"
mkdir -p "$build"
echo "build: configuring $build"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" > "$build/configure.log" 2>&1 \
  || { cat "$build/configure.log"; echo "build: cmake configure failed" >&2; exit 1; }
echo "build: compiling (log: $build/build.log)"
if ! cmake --build "$build" -j"$(nproc)" > "$build/build.log" 2>&1; then
  grep -E -B2 -A12 'error|Error' "$build/build.log" | head -80
  echo "build: compilation failed (full log: $build/build.log)" >&2
  exit 1
fi
echo "build: done ($build/bin)"
