//! The demo drive `make run` uploads: the Hivemapper Bee frames from shared/data when present
//! (a real San Francisco drive with per-frame GNSS sidecars), else a drive rendered here.

use super::build::{BuildOptions, Input, build};
use super::upload::{UploadOptions, UploadResult, upload};
use super::{keys, register};
use crate::error::{IngestError, Result};
use crate::formats::{derive_motion, gpx};
use chrono::{DateTime, Utc};
use roadhex_schemas::gates::GateConfig;
use roadhex_schemas::geo::destination;
use roadhex_schemas::{GnssSample, Mount};
use std::path::{Path, PathBuf};

const CONTRIBUTOR: &str = "demo-driver";

/// Builds and uploads the demo drive once; later runs find `demo.done` and do nothing.
pub async fn run(server: &str, work: &Path, shared_data: Option<&Path>) -> Result<Vec<UploadResult>> {
    let done = work.join("demo.done");
    if done.exists() {
        return Ok(Vec::new());
    }
    std::fs::create_dir_all(work).map_err(|e| IngestError::io(work, e))?;
    let key_file = work.join("demo-device.key");
    let key = if key_file.exists() { keys::load(&key_file)? } else { keys::generate(&key_file)? };
    register(server, &key, CONTRIBUTOR).await?;
    let bee = shared_data.map(|d| d.join("dashcam_hivemapper_bee_sf/frames")).filter(|d| d.is_dir());
    let track = work.join("demo-track.gpx");
    let (frames_dir, start, interval_ms, hfov) = match bee {
        Some(dir) => {
            write_track(&track, bee_track(&dir)?)?;
            (dir, None, None, 120.0)
        }
        None => {
            let dir = work.join("demo-frames");
            let start = DateTime::<Utc>::from_timestamp_millis(1_763_900_000_000).unwrap_or_default();
            write_track(&track, render_drive(&dir, start)?)?;
            (dir, Some(start), Some(1_000), 90.0)
        }
    };
    let out = work.join("demo-captures");
    if out.exists() {
        std::fs::remove_dir_all(&out).map_err(|e| IngestError::io(&out, e))?;
    }
    let report = build(&BuildOptions {
        key_file,
        input: Input::Folder { frames_dir, track: Some(track), start, interval_ms },
        out,
        focal_length_px: None,
        hfov_deg: Some(hfov),
        mount: Mount::Front,
        mount_height_m: 1.4,
        gates: GateConfig::default(),
        zones: Vec::new(),
    })?;
    let dirs: Vec<PathBuf> = report.captures.iter().map(|c| c.dir.clone()).collect();
    let opts = UploadOptions { server: server.to_owned(), parallel: 4, attempts: 5, progress: false };
    let results = upload(&opts, &dirs).await;
    if results.iter().all(|r| r.error.is_none()) {
        std::fs::write(&done, b"").map_err(|e| IngestError::io(&done, e))?;
    }
    Ok(results)
}

fn write_track(path: &Path, samples: Vec<GnssSample>) -> Result<()> {
    std::fs::write(path, gpx::write(&samples)).map_err(|e| IngestError::io(path, e))
}

/// The track of the Bee fixture, from its per-frame JSON sidecars (`time`, `lat`, `lon`).
fn bee_track(dir: &Path) -> Result<Vec<GnssSample>> {
    let mut samples = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| IngestError::io(dir, e))? {
        let path = entry.map_err(|e| IngestError::io(dir, e))?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|e| IngestError::io(&path, e))?;
        let v: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| IngestError::Build(format!("{}: {e}", path.display())))?;
        let (Some(t_ms), Some(lat), Some(lon)) = (v["time"].as_i64(), v["lat"].as_f64(), v["lon"].as_f64())
        else {
            continue;
        };
        samples.push(GnssSample {
            t_ms,
            lat,
            lon,
            alt: 0.0,
            speed: f64::NAN,
            heading: f64::NAN,
            hdop: None,
            satellites: None,
            fix: None,
        });
    }
    samples.sort_by_key(|s| s.t_ms);
    derive_motion(&mut samples);
    Ok(samples)
}

/// Renders 60 road-like frames (1280x720) along a 600 m drive at 10 m/s and returns its track.
fn render_drive(dir: &Path, start: DateTime<Utc>) -> Result<Vec<GnssSample>> {
    std::fs::create_dir_all(dir).map_err(|e| IngestError::io(dir, e))?;
    let (mut lat, mut lon) = (45.2670, 13.7060);
    let mut samples = Vec::new();
    for i in 0..61i64 {
        let heading = 60.0 + 20.0 * (i as f64 / 15.0).sin();
        samples.push(GnssSample {
            t_ms: start.timestamp_millis() + i * 1_000,
            lat,
            lon,
            alt: 120.0,
            speed: 10.0,
            heading,
            hdop: Some(0.9),
            satellites: Some(11),
            fix: Some(roadhex_schemas::FixType::Fix3d),
        });
        (lat, lon) = destination(lat, lon, heading, 10.0);
        if i < 60 {
            let path = dir.join(format!("frame-{i:04}.jpg"));
            std::fs::write(&path, render_frame(i as u32)?).map_err(|e| IngestError::io(&path, e))?;
        }
    }
    Ok(samples)
}

fn render_frame(seed: u32) -> Result<Vec<u8>> {
    let (w, h) = (1280u32, 720u32);
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let noise = (state % 40) as u8;
        let horizon = h / 2;
        if y < horizon {
            image::Rgb([110 + noise, 150 + noise, 210u8.saturating_add(noise)])
        } else {
            // A road narrowing towards the horizon, with a dashed centre line.
            let half = (y - horizon) * w / (2 * (h - horizon)) + 20;
            let dx = x.abs_diff(w / 2);
            let line = dx < 6 && ((y + seed * 40) / 40).is_multiple_of(2);
            match (dx < half, line) {
                (_, true) => image::Rgb([240, 240, 230]),
                (true, false) => image::Rgb([70 + noise, 70 + noise, 75 + noise]),
                (false, false) => image::Rgb([60 + noise, 120 + noise, 50 + noise]),
            }
        }
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(&img)
        .map_err(|e| IngestError::Build(format!("rendering a demo frame: {e}")))?;
    Ok(out)
}
