#!/usr/bin/env bash
# Installs the Debian packages Herald needs to build, test and run, if any is missing.
set -euo pipefail
packages=(cmake make gcc pkg-config libzmq3-dev libcurl4-openssl-dev libyaml-dev
          libcriterion-dev libsqlite3-dev libjansson-dev sqlite3 openssl python3 python3-aiosmtpd
          python3-zmq)
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
