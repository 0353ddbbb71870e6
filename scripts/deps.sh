#!/usr/bin/env bash
# Installs the Debian packages Herald needs to build, test and run, if any is missing.
set -euo pipefail
# libsystemd-dev: the broker's sd_notify; systemd: systemd-analyze for the
# install test (man-db: its man page check); python3-zmq: the Python example and
# hostile-peer tests; groff-base: the man page test.
# redis-server and libhiredis-dev are for scripts/bench-peers.sh, which starts its own
# redis-server on a free port (on a machine with systemd, Debian's package also enables
# a system service on port 6379, which the bench does not use).
# clang, libclang-rt-dev (libFuzzer and the sanitizer runtimes) and llvm
# (llvm-symbolizer, for readable reports): the fuzz targets (scripts/fuzz.sh).
# libmicrohttpd-dev: the broker's HTTP endpoint; libsodium-dev: SHA-256 of HTTP
# tokens; prometheus: promtool checks /metrics; php-cli, php-curl and nodejs: the
# HTTP examples (examples/php, examples/node), run by test_examples.py.
# chromium (headless) and python3-websocket (its DevTools protocol): the admin
# page's browser test, test_admin_page.py.
# libpq-dev: the PostgreSQL store; postgresql: its tests start their own server
# (initdb into a temporary directory, as the postgres user; Debian's package
# also makes a cluster and a service on port 5432, which the tests do not use).
packages=(cmake make gcc pkg-config libzmq3-dev libcurl4-openssl-dev libyaml-dev
          libcriterion-dev libsqlite3-dev libjansson-dev sqlite3 openssl python3 python3-aiosmtpd
          libsystemd-dev systemd man-db python3-zmq groff-base binutils
          redis-server libhiredis-dev clang libclang-rt-dev llvm
          libmicrohttpd-dev libsodium-dev prometheus php-cli php-curl nodejs
          chromium python3-websocket libpq-dev postgresql)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#packages[@]} packages present"
  exit 0
fi
echo "deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
echo "deps: installed"
