//! Signed captures of real Hivemapper Bee frames along a straight street, and device registration.

use anyhow::{Context as _, Result, anyhow, ensure};
use bytes::Bytes;
use roadhex_schemas::geo::destination;
use roadhex_schemas::ids::sha256_hex;
use roadhex_schemas::signing::{DeviceKeyFile, registration_message};
use roadhex_schemas::{Camera, CaptureId, CaptureManifest, FixType, FrameEntry, GnssSample, Mount};
use std::path::{Path, PathBuf};

/// Driving speed of every simulated car, m/s (one frame a second: a keyframe every 9 m).
pub(crate) const SPEED: f64 = 9.0;

pub(crate) fn shared_data() -> PathBuf {
    std::env::var_os("ROADHEX_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"))
}

/// The 70 Hivemapper Bee frames (2028×1024 JPEG) as (sha256, bytes), in drive order.
pub(crate) fn bee_frames() -> Result<Vec<(String, Bytes)>> {
    let dir = shared_data().join("dashcam_hivemapper_bee_sf/frames");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {} (set ROADHEX_SHARED_DATA)", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    paths.sort();
    ensure!(!paths.is_empty(), "no frames in {}", dir.display());
    paths
        .iter()
        .map(|p| {
            let b = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            Ok((sha256_hex(&b), Bytes::from(b)))
        })
        .collect()
}

/// One signed capture, ready to upload.
#[derive(Debug, Clone)]
pub(crate) struct Capture {
    pub(crate) id: String,
    pub(crate) device: String,
    pub(crate) signature: String,
    pub(crate) manifest: Bytes,
    /// (sha256, JPEG bytes) in manifest order.
    pub(crate) frames: Vec<(String, Bytes)>,
    /// Where and when the car is once the capture ends (the next capture starts there).
    pub(crate) end: (f64, f64),
    pub(crate) end_ms: i64,
}

/// Capture `seq` of `key`: `frames` one per second from `t0_ms`, driving north from `start` at
/// [`SPEED`], closed by the device 1 s after its last frame.
pub(crate) fn capture(
    key: &DeviceKeyFile,
    seq: u64,
    t0_ms: i64,
    start: (f64, f64),
    frames: Vec<(String, Bytes)>,
) -> Result<Capture> {
    let n = frames.len() as i64;
    let (mut lat, mut lon) = start;
    let mut telemetry = Vec::new();
    for i in 0..=(n + 1) {
        telemetry.push(GnssSample {
            t_ms: t0_ms + i * 1000,
            lat,
            lon,
            alt: 10.0,
            speed: SPEED,
            heading: 0.0,
            hdop: Some(0.9),
            satellites: Some(12),
            fix: Some(FixType::Fix3d),
        });
        (lat, lon) = destination(lat, lon, 0.0, SPEED);
    }
    let end_ms = t0_ms + (n + 1) * 1000;
    let m = CaptureManifest {
        version: 1,
        device_id: key.device_id.to_string(),
        sequence: seq,
        created_at: chrono::DateTime::from_timestamp_millis(end_ms + 1000)
            .ok_or_else(|| anyhow!("time out of range"))?,
        camera: Camera {
            width: 2028,
            height: 1024,
            focal_length_px: None,
            hfov_deg: Some(120.0),
            mount: Mount::Front,
            mount_height_m: 1.4,
        },
        telemetry,
        imu: Vec::new(),
        frames: frames
            .iter()
            .enumerate()
            .map(|(i, (sha, b))| FrameEntry {
                t_ms: t0_ms + 500 + i as i64 * 1000,
                sha256: sha.clone(),
                size: b.len() as u64,
            })
            .collect(),
    };
    let manifest = m.to_bytes();
    let signature = key.sign(&manifest).map_err(|e| anyhow!("signing a manifest: {e}"))?;
    Ok(Capture {
        id: CaptureId::from_manifest_bytes(&manifest).to_string(),
        device: key.device_id.to_string(),
        signature,
        manifest: manifest.into(),
        frames,
        end: (lat, lon),
        end_ms,
    })
}

/// The registration body for `key` answering challenge `nonce`.
pub(crate) fn registration(key: &DeviceKeyFile, contributor: &str, nonce: &str) -> Result<serde_json::Value> {
    let message = registration_message(nonce, contributor);
    Ok(serde_json::json!({
        "public_key": key.public_key,
        "contributor_id": contributor,
        "nonce": nonce,
        "signature": key.sign(&message).map_err(|e| anyhow!("signing a registration: {e}"))?,
    }))
}
