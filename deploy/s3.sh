#!/usr/bin/env bash
# Installs s3s-fs (a pure-Rust S3 server over a directory, from crates.io) for the S3 tests.
# Idempotent. The tests start it on loopback themselves; nothing runs here.
set -euo pipefail
ROOT="${ROADHEX_S3S_ROOT:-$HOME/.cache/roadhex/s3s}"
VERSION=0.14.1 # 0.17 needs Rust 1.96
if [ -x "$ROOT/bin/s3s-fs" ] && "$ROOT/bin/s3s-fs" --version 2>/dev/null | grep -q "$VERSION"; then
  exit 0
fi
echo "setup: installing s3s-fs $VERSION into $ROOT"
# A private target dir: the workspace's build cache stays untouched.
env -u CARGO_TARGET_DIR cargo install --quiet --locked s3s-fs --version "$VERSION" --features binary --root "$ROOT"
