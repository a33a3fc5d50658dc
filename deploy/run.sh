#!/usr/bin/env bash
# `make run`: the node on ./data (embedded store and queue, no external services), with a demo
# drive uploaded through the real API once it is up. Ctrl-C stops it.
set -euo pipefail
BIN="${CARGO_TARGET_DIR:-$HOME/.cache/roadhex/target}/debug/roadhex"
LISTEN="${ROADHEX_LISTEN:-127.0.0.1:8080}"
URL="http://$LISTEN"
SHARED="${ROADHEX_SHARED_DATA:-../shared/data}"

FLIGHT="${ROADHEX_FLIGHT_LISTEN:-127.0.0.1:50051}"
# Analysts' SQL (HTTP and Flight SQL) needs a token; a fresh one per run unless given.
export ROADHEX_SQL_TOKEN="${ROADHEX_SQL_TOKEN:-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')}"

"$BIN" serve --data "${ROADHEX_DATA:-./data}" --listen "$LISTEN" --flight-listen "$FLIGHT" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null' EXIT INT TERM
for _ in $(seq 100); do
  curl -fsS "$URL/healthz" >/dev/null 2>&1 && break
  kill -0 $server 2>/dev/null || { echo "run: the node failed to start" >&2; exit 1; }
  sleep 0.1
done
"$BIN" demo --server "$URL" --work ./data-demo --shared-data "$SHARED"
echo "run: node at $URL (web map: $URL/, API: $URL/openapi.json), Flight SQL at grpc://$FLIGHT. Ctrl-C to stop."
echo "run: privacy: the first and last 200 m of each drive are never published, and a drive's last capture waits 2 min for a next one (docs/privacy.md)."
echo "run: SQL token $ROADHEX_SQL_TOKEN — try: roadhex sql --server $URL \"SELECT count(*) FROM frames\""
wait $server
