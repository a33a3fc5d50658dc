#!/usr/bin/env bash
# Installs Debian's PostgreSQL and PostGIS if missing (idempotent) and prints the server's bin dir.
# Used by `make bench` (tiles_bench runs PostGIS ST_AsMVT beside roadhex's tile server).
# All progress goes to stderr; stdout is only the bin dir.
set -euo pipefail

PG_MAJOR="${PG_MAJOR:-15}"
PKGS=(postgresql "postgresql-${PG_MAJOR}" "postgresql-${PG_MAJOR}-postgis-3")
BIN="/usr/lib/postgresql/${PG_MAJOR}/bin"

missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if ((${#missing[@]})); then
    if [[ $EUID -ne 0 ]]; then
        echo "postgis.sh: missing ${missing[*]}; run as root to install" >&2
        exit 1
    fi
    echo "postgis.sh: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

for f in initdb pg_ctl postgres; do
    [[ -x "$BIN/$f" ]] || { echo "postgis.sh: $BIN/$f not found" >&2; exit 1; }
done
[[ -f "/usr/share/postgresql/${PG_MAJOR}/extension/postgis.control" ]] \
    || { echo "postgis.sh: the postgis extension is not installed" >&2; exit 1; }
id postgres >/dev/null 2>&1 || { echo "postgis.sh: no postgres user" >&2; exit 1; }

echo "$BIN"
