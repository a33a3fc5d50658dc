#!/usr/bin/env bash
# Container health check of a roadhex process (the image's HEALTHCHECK, deploy/compose.yaml):
# GET PATH (default /healthz) on the port of ROADHEX_LISTEN over loopback; healthy on HTTP 200.
# Plain bash (/dev/tcp): the runtime image has no curl. Run by tests/e2e/deploy.rs against real
# processes. A process without an HTTP role (vision alone) has no listener: do not use it there.
set -euo pipefail
path="${1:-/healthz}"
listen="${ROADHEX_LISTEN:-127.0.0.1:8080}"
port="${listen##*:}"
host="${listen%:*}"
host="${host#[}"
host="${host%]}"
case "$host" in "" | 0.0.0.0) host=127.0.0.1 ;; "::") host=::1 ;; esac
exec 3<>"/dev/tcp/$host/$port"
printf 'GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$path" "$host" >&3
status=""
IFS= read -r -t 4 status <&3 || true
case "$status" in
  "HTTP/1."?" 200"*) exit 0 ;;
esac
echo "roadhex-healthcheck: GET $path on $host:$port answered: ${status:-nothing}" >&2
exit 1
