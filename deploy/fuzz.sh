#!/usr/bin/env bash
# `make fuzz`: every parser fuzz target for a bounded time, seeded from ../shared/data.
# Prints executions and crashes per target; a crash leaves its input in fuzz/artifacts/<target>/
# and makes this script exit non-zero (turn each into a regression test).
set -uo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${FUZZ_SECONDS:-60}"
SHARED="${ROADHEX_SHARED_DATA:-../shared/data}"
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/roadhex/fuzz-target}"
# cargo-fuzz needs nightly-only flags; the stable toolchain accepts them with RUSTC_BOOTSTRAP.
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

seed() { # target, files...
  local dir="fuzz/corpus/$1"; shift
  mkdir -p "$dir"
  for f in "$@"; do [ -f "$f" ] && cp -n "$f" "$dir/" 2>/dev/null; done
}
seed jpeg_header "$SHARED"/dashcam_udacity/lanelines_p1/*.jpg "$SHARED"/exif_mapillary_tools/images/*
seed exif "$SHARED"/exif_mapillary_tools/images/* "$SHARED"/exif_mapillary_tools/*.jpg "$SHARED"/exif_mapillary_tools/unit/*
seed nmea "$SHARED"/nmea_gpsd/*.log
seed gpx "$SHARED"/gpx_tracks/gpxpy/*.gpx
seed gpmf "$SHARED"/gpmf_gopro/*/*.raw "$SHARED"/gpmf_gopro/*/*.mp4
seed manifest
seed framekm

status=0
printf '%-12s %14s %8s\n' target executions crashes
for t in ${FUZZ_TARGETS:-manifest jpeg_header nmea gpx gpmf exif framekm}; do
  log="fuzz/artifacts/$t.log"
  mkdir -p "fuzz/artifacts/$t"
  (cd fuzz && cargo fuzz run "$t" "corpus/$t" -- -max_total_time="$SECONDS_PER_TARGET" \
      -rss_limit_mb=2048 -max_len=1048576 -artifact_prefix="artifacts/$t/") >"$log" 2>&1
  execs=$(grep -oE 'Done [0-9]+ runs' "$log" | awk '{print $2}' | tail -1)
  [ -n "$execs" ] || execs=$(grep -oE '^#[0-9]+' "$log" | tr -d '#' | tail -1)
  crashes=$(find "fuzz/artifacts/$t" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' \) | wc -l)
  printf '%-12s %14s %8s\n' "$t" "${execs:-failed}" "$crashes"
  [ "$crashes" -eq 0 ] && [ -n "$execs" ] || status=1
  [ -n "$execs" ] || tail -20 "$log" >&2
done
exit $status
