#!/usr/bin/env bash
# Installs what is missing, builds Herald, runs the dispatcher with the sample
# configuration (etc/herald.yaml: file drivers, no outside services) and
# publishes a sample order, then shows the three deliveries it produced.
# Herald keeps running until Ctrl-C (HERALD_DEMO_EXIT=1: stop after showing).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/deps.sh
BUILD_DIR="$root/build" scripts/build.sh
bin="$root/build/bin"

echo "demo: starting 'herald up -c etc/herald.yaml' (broker + 4 workers)"
"$bin/herald" up -c etc/herald.yaml &
up=$!
trap 'kill -TERM $up 2>/dev/null; wait $up 2>/dev/null || true' EXIT

# Wait until the broker answers (bounded), then publish.
for _ in $(seq 1 100); do
  "$bin/herald" status -c etc/herald.yaml --timeout 200 >/dev/null 2>&1 && break
  kill -0 $up 2>/dev/null || { echo "demo: herald up exited early" >&2; exit 1; }
done
order_id=$(( $(date +%s) % 1000000 ))
data=$(sed "s/\"order_id\": 1042/\"order_id\": $order_id/" etc/sample-order.json)
echo "demo: publishing order.confirmed for order $order_id"
event_id=$("$bin/herald" publish -c etc/herald.yaml --type order.confirmed --data "$data")
echo "demo: ACKed, event id $event_id"

echo "demo: waiting for the three deliveries"
for _ in $(seq 1 100); do
  state=$("$bin/herald" track -c etc/herald.yaml "$event_id" --json 2>/dev/null || true)
  [ "$(grep -o '"state": *"done"' <<<"$state" | wc -l)" -ge 3 ] && break
  sleep 0.1
done
"$bin/herald" track -c etc/herald.yaml "$event_id"
for channel in email inventory courier; do
  file=$(ls -t var/outbox/$channel/ | head -1)
  echo
  echo "---- var/outbox/$channel/$file"
  head -40 "var/outbox/$channel/$file"
done
echo
"$bin/herald" status -c etc/herald.yaml
if [ "${HERALD_DEMO_EXIT:-0}" = "1" ]; then
  exit 0
fi
echo
echo "demo: Herald is running. Publish more with:"
echo "  build/bin/herald publish -c etc/herald.yaml --type order.confirmed --data '{\"order_id\": 7, \"customer\": {\"email\": \"you@example.com\"}, \"items\": [{\"sku\": \"A-1\", \"qty\": 1}]}'"
echo "demo: Ctrl-C stops it."
wait $up
