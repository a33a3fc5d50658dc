//! One test per refusal: each asserts the status, the machine-readable code, and that the store
//! holds exactly what it held before the request.

use crate::support::*;
use roadhex_schemas::ids::sha256_hex;
use roadhex_schemas::signing::DeviceKeyFile;

struct Setup {
    _tmp: tempfile::TempDir,
    server: Server,
    key: DeviceKeyFile,
    frames: Vec<(Vec<u8>, String)>,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().expect("tmp");
    let server = Server::start(&tmp.path().join("data"), &[]);
    let key = server.register_device("carol");
    Setup { _tmp: tmp, server, key, frames: frames() }
}

/// Runs a request that must be refused and must leave the store untouched.
fn refused(
    s: &Setup,
    status: u16,
    code: &str,
    request: impl FnOnce() -> reqwest::blocking::Response,
) -> serde_json::Value {
    let before = files(&s.server.data);
    let body = assert_refused(request(), status, code);
    assert_eq!(files(&s.server.data), before, "{code}: the store changed");
    body
}

/// Opens a capture for `manifest` and returns its id.
fn open(s: &Setup, m: &roadhex_schemas::CaptureManifest) -> String {
    let resp = s.server.post_manifest(&s.key, &m.to_bytes());
    assert_eq!(resp.status(), 201);
    resp.json::<serde_json::Value>().expect("json")["capture_id"].as_str().expect("id").to_owned()
}

#[test]
fn unknown_device() {
    let s = setup();
    let stranger = DeviceKeyFile::generate();
    let m = manifest(&stranger, 1, &s.frames);
    refused(&s, 401, "device_unknown", || s.server.post_manifest(&stranger, &m.to_bytes()));
}

#[test]
fn bad_signature() {
    let s = setup();
    let bytes = manifest(&s.key, 1, &s.frames).to_bytes();
    let sig = s.key.sign(b"other bytes").expect("sign");
    refused(&s, 401, "signature_invalid", || s.server.post_signed(s.key.device_id.as_str(), &sig, &bytes));
    refused(&s, 401, "signature_malformed", || {
        s.server.post_signed(s.key.device_id.as_str(), "bm90IGEgc2ln", &bytes)
    });
}

#[test]
fn revoked_device() {
    let s = setup();
    let url = format!("{}/v1/devices/{}/revoke", s.server.url, s.key.device_id);
    refused(&s, 401, "unauthorized", || {
        s.server.http().post(&url).bearer_auth("wrong").send().expect("revoke")
    });
    let resp = s.server.http().post(&url).bearer_auth(OPERATOR_TOKEN).send().expect("revoke");
    assert_eq!(resp.status(), 200);
    let m = manifest(&s.key, 1, &s.frames);
    refused(&s, 403, "device_revoked", || s.server.post_manifest(&s.key, &m.to_bytes()));
}

#[test]
fn weak_or_invalid_key_registration() {
    let s = setup();
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let weak = hex::encode(identity);
    let sign = |_: &[u8]| b64(&[0u8; 64]);
    assert_refused(s.server.register(&weak, "mallory", sign), 401, "public_key_weak");
    assert_refused(s.server.register("abcd", "mallory", sign), 401, "public_key_invalid");
    // A real key, but the signature is not over this challenge.
    let k = DeviceKeyFile::generate();
    assert_refused(s.server.register(&k.public_key, "mallory", sign), 401, "signature_invalid");
    assert!(!s.server.data.join(format!("registry/devices/{}.json", k.device_id)).exists());
}

#[test]
fn replayed_sequence() {
    let s = setup();
    open(&s, &manifest(&s.key, 1, &s.frames));
    let mut other = manifest(&s.key, 1, &s.frames);
    other.created_at += chrono::Duration::seconds(1);
    refused(&s, 409, "sequence_replayed", || s.server.post_manifest(&s.key, &other.to_bytes()));
}

#[test]
fn non_increasing_sequence() {
    let s = setup();
    open(&s, &manifest(&s.key, 5, &s.frames));
    let older = manifest(&s.key, 3, &s.frames);
    refused(&s, 409, "sequence_not_increasing", || s.server.post_manifest(&s.key, &older.to_bytes()));
}

#[test]
fn manifest_too_large() {
    let s = setup();
    let huge = vec![b' '; 5 * 1024 * 1024];
    refused(&s, 413, "manifest_too_large", || s.server.post_manifest(&s.key, &huge));
}

#[test]
fn manifest_malformed() {
    let s = setup();
    refused(&s, 400, "manifest_malformed", || {
        s.server.post_manifest(&s.key, b"{\"version\": 1, \"frames\": [")
    });
    let mut m = serde_json::to_value(manifest(&s.key, 1, &s.frames)).expect("json");
    m["version"] = 7.into();
    let bytes = serde_json::to_vec(&m).expect("bytes");
    refused(&s, 422, "manifest_unsupported_version", || s.server.post_manifest(&s.key, &bytes));
}

#[test]
fn device_mismatch() {
    let s = setup();
    let other = DeviceKeyFile::generate();
    let m = manifest(&other, 1, &s.frames);
    // Signed by the registered key but naming another device inside.
    refused(&s, 422, "device_mismatch", || s.server.post_manifest(&s.key, &m.to_bytes()));
}

#[test]
fn telemetry_not_monotonic() {
    let s = setup();
    let mut m = manifest(&s.key, 1, &s.frames);
    m.telemetry[4].t_ms = m.telemetry[3].t_ms - 1;
    refused(&s, 422, "telemetry_not_monotonic", || s.server.post_manifest(&s.key, &m.to_bytes()));
}

#[test]
fn frame_time_outside_telemetry() {
    let s = setup();
    let mut m = manifest(&s.key, 1, &s.frames);
    if let Some(last) = m.frames.last_mut() {
        last.t_ms = m.telemetry.last().map_or(0, |t| t.t_ms) + 60_000;
    }
    refused(&s, 422, "frame_time_outside_telemetry", || s.server.post_manifest(&s.key, &m.to_bytes()));
}

#[test]
fn capture_too_long() {
    let s = setup();
    let mut m = manifest(&s.key, 1, &s.frames);
    m.telemetry = street_track(T0, 1_100, 10.0);
    m.frames = (0..1_001)
        .map(|i| roadhex_schemas::FrameEntry {
            t_ms: T0 + 1_000 + i * 1_000,
            sha256: format!("{i:064x}"),
            size: 60_000,
        })
        .collect();
    refused(&s, 422, "capture_too_long", || s.server.post_manifest(&s.key, &m.to_bytes()));
}

#[test]
fn frame_size_outside_limits() {
    let s = setup();
    let mut m = manifest(&s.key, 1, &s.frames);
    m.frames[0].size = 10_000;
    refused(&s, 422, "frame_size_out_of_range", || s.server.post_manifest(&s.key, &m.to_bytes()));
    m.frames[0].size = 3_000_000;
    refused(&s, 422, "frame_size_out_of_range", || s.server.post_manifest(&s.key, &m.to_bytes()));
}

#[test]
fn no_valid_frames() {
    let s = setup();
    let mut m = manifest(&s.key, 1, &s.frames);
    for t in &mut m.telemetry {
        t.hdop = Some(9.0);
    }
    let body = refused(&s, 422, "no_valid_frames", || s.server.post_manifest(&s.key, &m.to_bytes()));
    assert!(body["message"].as_str().is_some_and(|m| m.contains("HDOP")), "{body}");
}

#[test]
fn gate_drops_one_frame_with_its_reason() {
    let s = setup();
    let mut m = manifest(&s.key, 1, &s.frames);
    // Frame 2 sits between samples 3 and 4 (times T0+4 s): give those too few satellites.
    m.frames[2].t_ms += 500;
    m.telemetry[4].satellites = Some(2);
    let resp = s.server.post_manifest(&s.key, &m.to_bytes());
    assert_eq!(resp.status(), 201);
    let opened: serde_json::Value = resp.json().expect("json");
    assert_eq!(opened["missing"].as_array().map(Vec::len), Some(5), "{opened}");
    assert_eq!(opened["dropped"][0]["code"], "gnss_few_satellites");
    let id = opened["capture_id"].as_str().expect("id");
    refused(&s, 409, "frame_dropped", || s.server.put_frame(id, &s.frames[2].1, s.frames[2].0.clone()));
    let status = s.server.status(id);
    assert_eq!(status["frames"][2]["state"], "dropped");
    assert_eq!(status["frames"][2]["reason"]["code"], "gnss_few_satellites");
}

#[test]
fn frame_hash_mismatch() {
    let s = setup();
    let id = open(&s, &manifest(&s.key, 1, &s.frames));
    refused(&s, 422, "frame_hash_mismatch", || {
        s.server.put_frame(&id, &s.frames[0].1, s.frames[1].0.clone())
    });
    refused(&s, 404, "frame_not_in_manifest", || {
        s.server.put_frame(&id, &sha256_hex(b"x"), s.frames[1].0.clone())
    });
}

#[test]
fn frame_not_a_jpeg() {
    let s = setup();
    let mut frames = s.frames.clone();
    let junk = vec![0x42u8; 30_000];
    frames[0] = (junk.clone(), sha256_hex(&junk));
    let id = open(&s, &manifest(&s.key, 1, &frames));
    refused(&s, 422, "frame_not_jpeg", || s.server.put_frame(&id, &frames[0].1, junk.clone()));
    // A real JPEG cut short loses its EOI marker.
    let mut cut = s.frames[1].0.clone();
    cut.truncate(cut.len() - 100);
    frames[1] = (cut.clone(), sha256_hex(&cut));
    let mut m = manifest(&s.key, 2, &frames);
    m.created_at += chrono::Duration::seconds(1);
    let id = open(&s, &m);
    refused(&s, 422, "frame_not_jpeg", || s.server.put_frame(&id, &frames[1].1, cut.clone()));
}

#[test]
fn frame_absurd_dimensions() {
    let s = setup();
    // A header claiming 60000x60000 pixels (a decompression bomb), padded to a plausible size.
    let mut bomb = vec![0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x0B, 8, 0xEA, 0x60, 0xEA, 0x60, 1, 1, 0x11, 0];
    bomb.extend([0xFF, 0xFE, 0x75, 0x32]);
    bomb.extend(std::iter::repeat_n(0x20u8, 0x7530));
    bomb.extend([0xFF, 0xDA, 0x00, 0x02, 0xFF, 0xD9]);
    let mut frames = s.frames.clone();
    frames[0] = (bomb.clone(), sha256_hex(&bomb));
    let id = open(&s, &manifest(&s.key, 1, &frames));
    refused(&s, 422, "frame_dimensions_invalid", || s.server.put_frame(&id, &frames[0].1, bomb.clone()));
    // A camera that no dashcam has is refused with the manifest.
    let mut m = manifest(&s.key, 2, &s.frames);
    m.camera.width = 100_000;
    refused(&s, 422, "camera_invalid", || s.server.post_manifest(&s.key, &m.to_bytes()));
}

#[test]
fn commit_with_missing_frames() {
    let s = setup();
    let id = open(&s, &manifest(&s.key, 1, &s.frames));
    assert_eq!(s.server.put_frame(&id, &s.frames[0].1, s.frames[0].0.clone()).status(), 201);
    let body = refused(&s, 409, "frames_missing", || s.server.commit(&id));
    assert_eq!(body["details"]["missing"].as_array().map(Vec::len), Some(5));
    assert_eq!(s.server.status(&id)["state"], "receiving");
}

#[test]
fn rate_limited_per_device() {
    let tmp = tempfile::tempdir().expect("tmp");
    let server = Server::start(&tmp.path().join("data"), &["--device-rate", "0.01", "--device-burst", "1"]);
    let key = server.register_device("erin");
    let bytes = manifest(&key, 1, &frames()).to_bytes();
    assert_eq!(server.post_manifest(&key, &bytes).status(), 201);
    let resp = server.post_manifest(&key, &bytes);
    assert!(resp.headers().get("retry-after").is_some());
    assert_refused(resp, 429, "rate_limited");
    // Another device is not affected.
    let other = server.register_device("frank");
    assert_eq!(server.post_manifest(&other, &manifest(&other, 1, &frames()).to_bytes()).status(), 201);
}
