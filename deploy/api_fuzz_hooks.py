"""Schemathesis hooks for `make api-fuzz` (deploy/api_fuzz.sh): they do what only a device can.

Schemathesis generates every request from the spec; these hooks then add what needs a device's
private key, as the companion app would:
- POST /v1/devices (positive cases): a fresh ed25519 key and its proof-of-possession signature
  over the generated nonce and contributor id (the challenge link fills in a real nonce).
- POST /v1/captures: the named device's key (a pre-registered one when the name is unknown) signs
  the exact body bytes. Every other positive case sends a real one-frame manifest of that device
  instead of the generated one, so captures open and the links reach upload, commit and status.
- PUT .../frames/{sha256}: when the hash names a real frame, every other case sends its bytes.
- zone and privacy routes with device headers: signed as that device (request message, time).
Everything else, and every negative case's body, goes out as generated.
"""

import base64
import hashlib
import itertools
import json
import os
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import requests
import schemathesis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from schemathesis import GenerationMode

BASE = os.environ["ROADHEX_FUZZ_URL"].rstrip("/")
FRAME_DIR = Path(os.environ.get("ROADHEX_SHARED_DATA", "../shared/data")) / "dashcam_udacity/lanelines_p1"
FRAMES = {hashlib.sha256(b).hexdigest(): b for b in (p.read_bytes() for p in sorted(FRAME_DIR.glob("*.jpg")))}

schemathesis.serializer.alias("application/sql", "text/plain")


class Device:
    def __init__(self):
        self.key = Ed25519PrivateKey.generate()
        self.public = self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.id = hashlib.sha256(self.public).hexdigest()[:32]
        self.sequence = itertools.count(1)

    def sign(self, message: bytes) -> str:
        return base64.b64encode(self.key.sign(message)).decode()


DEVICES: dict[str, Device] = {}
LOCK = threading.Lock()
TURN = itertools.count()


def register(contributor: str, nonce: str | None = None) -> dict:
    """A registration body for a fresh key, over `nonce` or a new challenge."""
    device = Device()
    if nonce is None:
        nonce = requests.post(f"{BASE}/v1/devices/challenge", timeout=10).json()["nonce"]
    with LOCK:
        DEVICES[device.id] = device
    message = f"roadhex-register-v1\n{nonce}\n{contributor}".encode()
    return {
        "public_key": device.public.hex(),
        "contributor_id": contributor,
        "nonce": nonce,
        "signature": device.sign(message),
    }


def default_device() -> Device:
    """A registered device for requests that name none the hooks know."""
    with LOCK:
        if "default" in DEVICES:
            return DEVICES["default"]
    body = register("fuzz-driver")
    requests.post(f"{BASE}/v1/devices", json=body, timeout=10).raise_for_status()
    device = next(d for d in DEVICES.values() if d.public.hex() == body["public_key"])
    with LOCK:
        DEVICES["default"] = device
    return device


def real_manifest(device: Device) -> bytes:
    """One Udacity frame (960x540) on a 10 m/s straight drive with good fixes."""
    sha, jpeg = list(FRAMES.items())[next(TURN) % len(FRAMES)]
    t0 = int(time.time() * 1000) - 600_000
    telemetry = [
        {
            "t_ms": t0 + i * 1000,
            "lat": 45.27 + i * 10 / 111_320,
            "lon": 13.72,
            "alt": 200.0,
            "speed": 10.0,
            "heading": 0.0,
            "hdop": 0.8,
            "satellites": 10,
            "fix": "3d",
        }
        for i in range(6)
    ]
    manifest = {
        "version": 1,
        "device_id": device.id,
        "sequence": next(device.sequence) + 1_000_000,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "camera": {"width": 960, "height": 540, "hfov_deg": 100.0, "mount": "front", "mount_height_m": 1.4},
        "telemetry": telemetry,
        "frames": [{"t_ms": t0 + 2000, "sha256": sha, "size": len(jpeg)}],
    }
    return json.dumps(manifest).encode()


def device_for(name: str | None) -> Device:
    with LOCK:
        known = DEVICES.get(name or "")
    return known or default_device()


class DeviceAuth(requests.auth.AuthBase):
    """Signs the prepared request: the bytes it covers are only final here."""

    def __init__(self, route: str, positive: bool):
        self.route, self.positive = route, positive

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        body = r.body or b""
        if isinstance(body, str):
            body = body.encode()
        method, route, headers = r.method, self.route, r.headers
        if (method, route) == ("POST", "/v1/captures") and "x-roadhex-device" in headers:
            device = device_for(headers["x-roadhex-device"])
            if self.positive and next(TURN) % 2 == 0:
                body = real_manifest(device)
            headers["x-roadhex-device"] = device.id
            headers["x-roadhex-signature"] = device.sign(body)
        elif method == "PUT" and route.endswith("/frames/{sha256}"):
            sha = urlsplit(r.url).path.rsplit("/", 1)[-1]
            if self.positive and sha in FRAMES and next(TURN) % 2 == 0:
                body = FRAMES[sha]
        elif route.startswith(("/v1/zones", "/v1/contributors/{id}/privacy")) and "x-roadhex-device" in headers:
            device = device_for(headers["x-roadhex-device"])
            now = int(time.time())
            digest = hashlib.sha256(body).hexdigest()
            message = f"roadhex-request-v1\n{method}\n{urlsplit(r.url).path}\n{now}\n{digest}".encode()
            headers.pop("Authorization", None)
            headers["x-roadhex-device"] = device.id
            headers["x-roadhex-time"] = str(now)
            headers["x-roadhex-signature"] = device.sign(message)
        if body != (r.body or b""):
            r.body = body
            headers["Content-Length"] = str(len(body))
        return r


@schemathesis.hook
def before_call(context, case, kwargs):
    positive = case._meta is None or case._meta.generation.mode == GenerationMode.POSITIVE
    if (case.method.upper(), case.path) == ("POST", "/v1/devices") and positive and isinstance(case.body, dict):
        # The nonce stays as generated (or as the challenge link filled it in).
        contributor, nonce = case.body.get("contributor_id"), case.body.get("nonce")
        case.body = register(str(contributor), str(nonce))
    kwargs["auth"] = DeviceAuth(case.path, positive)
