#!/usr/bin/env bash
# Installs what the web map and its headless-browser test need: Debian's chromium (the test's browser)
# and the npm packages pinned in deploy/web/package-lock.json (maplibre-gl, whose dist/ the server
# serves under /web/, and playwright-core, which drives chromium in tests/web/map_test.mjs), into
# ${ROADHEX_WEB_DIR:-~/.cache/roadhex/web}. Idempotent: an install whose lockfile equals ours is kept
# as it is. Prints one line.
set -euo pipefail

WEB_DIR="${ROADHEX_WEB_DIR:-$HOME/.cache/roadhex/web}"
SRC="$(cd "$(dirname "$0")" && pwd)/web"
did=()

# Node.js >= 20 (playwright-core's floor; Debian 12's own nodejs is 18, so it is not installed here).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "web: node and npm not found; install Node.js 20 or newer and re-run" >&2
  exit 1
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "web: node $(node --version) is older than 20" >&2
  exit 1
fi

# Debian's chromium (apt-get update runs only when it is missing).
if ! dpkg-query -W -f='${Status}' chromium 2>/dev/null | grep -q "install ok installed"; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  log=$(mktemp)
  if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium; } >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "web: installing chromium failed" >&2
    exit 1
  fi
  rm -f "$log"
  did+=(chromium)
fi

if [ -d "$WEB_DIR/node_modules" ] && cmp -s "$SRC/package-lock.json" "$WEB_DIR/package-lock.json" \
  && cmp -s "$SRC/package.json" "$WEB_DIR/package.json"; then
  :
else
  mkdir -p "$WEB_DIR"
  cp "$SRC/package.json" "$SRC/package-lock.json" "$WEB_DIR/"
  # A failed install drops the copied lockfile, so the next run retries instead of skipping.
  if ! (cd "$WEB_DIR" && npm ci --no-audit --no-fund --loglevel=error >/dev/null); then
    rm -f "$WEB_DIR/package-lock.json"
    echo "web: npm ci failed in $WEB_DIR" >&2
    exit 1
  fi
  did+=("npm ci")
fi

for f in maplibre-gl/dist/maplibre-gl.js maplibre-gl/dist/maplibre-gl.css playwright-core/package.json; do
  [ -f "$WEB_DIR/node_modules/$f" ] || { echo "web: $WEB_DIR/node_modules/$f missing after install" >&2; exit 1; }
done
if ((${#did[@]})); then
  echo "web: installed ${did[*]} ($WEB_DIR)"
else
  echo "web: ok ($WEB_DIR)"
fi
