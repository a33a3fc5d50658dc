#!/usr/bin/env bash
# Creates the Python venv that tests and benchmarks use as independent references (DuckDB, pyarrow),
# from deploy/py-requirements.txt (versions and wheel hashes pinned). Idempotent: a venv whose
# stamp matches the requirements file is kept as it is. Prints nothing on the fast path.
set -euo pipefail

VENV="${ROADHEX_PY:-$HOME/.cache/roadhex/py}"
REQ="$(cd "$(dirname "$0")" && pwd)/py-requirements.txt"
want=$(sha256sum "$REQ" | awk '{print $1}')

if [ -x "$VENV/bin/python" ] && [ "$(cat "$VENV/.stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
echo "pytools: installing duckdb and pyarrow into $VENV"
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --require-hashes --only-binary=:all: -r "$REQ"
echo "$want" >"$VENV/.stamp"
