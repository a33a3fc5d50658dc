#!/usr/bin/env bash
# `make api-fuzz`: Schemathesis against the /openapi.json of a real node (every role, loopback, temp
# data dir): every operation through the examples, coverage and fuzzing phases, then stateful runs
# along the spec's links (register -> open capture -> upload -> commit -> status, and the rest).
# API_FUZZ_SECONDS (default 150) bounds the run; fuzzing and stateful testing repeat until it is
# spent. Prints the summary and exits non-zero on any server error or spec violation.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${ROADHEX_API_FUZZ_PY:-$HOME/.cache/roadhex/api-fuzz}"
REQ="$PWD/deploy/api-fuzz-requirements.txt"
BIN="${CARGO_TARGET_DIR:-$HOME/.cache/roadhex/target}/debug/roadhex"
export ROADHEX_SHARED_DATA="${ROADHEX_SHARED_DATA:-$(cd .. && pwd)/shared/data}"

want=$(sha256sum "$REQ" | awk '{print $1}')
if ! [ -x "$VENV/bin/schemathesis" ] || [ "$(cat "$VENV/.stamp" 2>/dev/null)" != "$want" ]; then
  echo "api-fuzz: installing schemathesis into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --require-hashes --only-binary=:all: -r "$REQ"
  echo "$want" >"$VENV/.stamp"
fi

work=$(mktemp -d)
token=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
# Trimming off: the hooks' one-frame drives are shorter than 200 m. Every generated registration
# comes from loopback, so the per-address registration limit is raised.
ROADHEX_TRIM_DEFAULT_M=0 ROADHEX_TRIM_MIN_M=0 ROADHEX_ADDRESS_BURST=1000000 RUST_LOG=warn \
  "$BIN" serve --data "$work/data" --listen 127.0.0.1:0 --operator-token "$token" \
  >"$work/stdout" 2>"$work/stderr" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 300); do
  grep -q '^listening on ' "$work/stdout" 2>/dev/null && break
  kill -0 $server 2>/dev/null || { cat "$work/stderr" >&2; echo "api-fuzz: the node failed to start" >&2; exit 1; }
  sleep 0.1
done
url=$(sed -n 's/^listening on //p' "$work/stdout")

export ROADHEX_FUZZ_URL="$url" ROADHEX_OPERATOR_TOKEN="$token" PYTHONPATH="$PWD/deploy"
status=0
# From the temp dir: Schemathesis keeps its caches in the working directory.
(cd "$work" && "$VENV/bin/schemathesis" --config-file "$OLDPWD/deploy/api-fuzz.toml" run "$url/openapi.json" \
  --phases examples,coverage,fuzzing,stateful --max-time "${API_FUZZ_SECONDS:-150}" \
  --report junit --report-junit-path "$work/junit.xml" --no-color >"$work/report.txt" 2>&1) || status=$?
# The failures and the summary (Schemathesis prints them last), and how far the links went.
sed -n '/^=* \(ERRORS\|FAILURES\|WARNINGS\|SUMMARY\) =*$/,$p' "$work/report.txt"
grep -E '^ +(Scenarios|API Links):' "$work/report.txt" || true
kill -0 $server 2>/dev/null || { echo "api-fuzz: the node died during the run" >&2; status=1; }
errors() { sed 's/\x1b\[[0-9;]*m//g' "$work/stderr" | grep ' ERROR ' || true; }
logged=$(errors | wc -l)
echo "api-fuzz: errors the node logged: $logged"
[ "$logged" -eq 0 ] || { errors | head -20 >&2; status=1; }
exit $status
