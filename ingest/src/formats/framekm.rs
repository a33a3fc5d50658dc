//! Hivemapper FrameKM bundles (metadata format versions 1.9 and 1.10): a raw concatenation of
//! JPEGs plus a metadata JSON whose per-frame `bytes` is the only way to split the bundle.
//! Units as the firmware writes them: `speed` in km/h, `t` in Unix ms, accelerations in g.

use roadhex_schemas::{GnssSample, ImuSample};
use serde::Deserialize;
use std::ops::Range;
use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum FrameKmError {
    #[error("FrameKM metadata is not valid JSON: {0}")]
    Metadata(String),
    #[error("FrameKM metadata version {0:?} is not supported (1.9 and 1.10 are)")]
    UnsupportedVersion(String),
    #[error("FrameKM metadata lists no frames")]
    NoFrames,
    #[error("bundle.numFrames says {declared} but the metadata lists {listed} frames")]
    FrameCountMismatch { declared: usize, listed: usize },
    #[error("bundle is {actual} bytes but the frames' sizes add up to {expected}")]
    SizeMismatch { expected: u64, actual: u64 },
    #[error("frame {index} (bytes {start}..{end}) is not a whole JPEG (SOI/EOI missing)")]
    NotJpeg { index: usize, start: usize, end: usize },
    #[error("frame {index}: {what}")]
    BadFrame { index: usize, what: String },
}

impl FrameKmError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Metadata(_) => "framekm_metadata_invalid",
            Self::UnsupportedVersion(_) => "framekm_unsupported_version",
            Self::NoFrames => "framekm_empty",
            Self::FrameCountMismatch { .. } => "framekm_frame_count_mismatch",
            Self::SizeMismatch { .. } => "framekm_size_mismatch",
            Self::NotJpeg { .. } => "framekm_frame_not_jpeg",
            Self::BadFrame { .. } => "framekm_frame_invalid",
        }
    }
}

#[derive(Debug, Deserialize)]
struct Metadata {
    bundle: Bundle,
    frames: Vec<MetaFrame>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bundle {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    num_frames: Option<usize>,
    version: String,
    #[serde(default)]
    device_type: Option<String>,
    #[serde(default)]
    keyframe_distance: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct MetaFrame {
    bytes: u64,
    lat: f64,
    lon: f64,
    #[serde(default)]
    alt: f64,
    #[serde(default)]
    hdop: Option<f64>,
    /// km/h.
    #[serde(default)]
    speed: Option<f64>,
    t: i64,
    #[serde(default)]
    satellites: Option<u8>,
    #[serde(default)]
    acc_x: Option<f64>,
    #[serde(default)]
    acc_y: Option<f64>,
    #[serde(default)]
    acc_z: Option<f64>,
    #[serde(default)]
    gyro_x: Option<f64>,
    #[serde(default)]
    gyro_y: Option<f64>,
    #[serde(default)]
    gyro_z: Option<f64>,
}

/// One frame of a bundle: where its JPEG lies in the bundle, and the GNSS fix taken with it.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameKmFrame {
    pub range: Range<usize>,
    pub sample: GnssSample,
    pub imu: Option<ImuSample>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FrameKm {
    pub name: Option<String>,
    pub version: String,
    pub device_type: Option<String>,
    pub keyframe_distance_m: Option<f64>,
    pub frames: Vec<FrameKmFrame>,
}

fn read_metadata(metadata: &[u8]) -> Result<Metadata, FrameKmError> {
    let meta: Metadata =
        serde_json::from_slice(metadata).map_err(|e| FrameKmError::Metadata(e.to_string()))?;
    if !matches!(meta.bundle.version.as_str(), "1.9" | "1.10") {
        return Err(FrameKmError::UnsupportedVersion(meta.bundle.version));
    }
    if meta.frames.is_empty() {
        return Err(FrameKmError::NoFrames);
    }
    Ok(meta)
}

/// The GNSS fixes of a FrameKM metadata file alone (what `telemetry inspect` shows).
pub fn parse_metadata(metadata: &[u8]) -> Result<Vec<GnssSample>, FrameKmError> {
    let meta = read_metadata(metadata)?;
    let mut samples = Vec::with_capacity(meta.frames.len());
    for (index, f) in meta.frames.iter().enumerate() {
        samples.push(sample_of(index, f)?.0);
    }
    super::derive_motion(&mut samples);
    Ok(samples)
}

fn sample_of(index: usize, f: &MetaFrame) -> Result<(GnssSample, Option<ImuSample>), FrameKmError> {
    let bad = |what: &str| FrameKmError::BadFrame { index, what: what.to_owned() };
    let on_globe = (-90.0..=90.0).contains(&f.lat) && (-180.0..=180.0).contains(&f.lon);
    if !on_globe {
        return Err(bad("position outside the globe"));
    }
    let sample = GnssSample {
        t_ms: f.t,
        lat: f.lat,
        lon: f.lon,
        alt: if f.alt.is_finite() { f.alt } else { 0.0 },
        // NaN marks "not reported"; derive_motion fills it from positions.
        speed: f.speed.filter(|s| s.is_finite() && *s >= 0.0).map_or(f64::NAN, |kmh| kmh / 3.6),
        heading: f64::NAN,
        hdop: f.hdop.filter(|h| h.is_finite() && *h >= 0.0),
        satellites: f.satellites,
        // The firmware keeps only fixes that passed its 3D-lock filter, but the file does not
        // say so per frame: leave it unreported rather than assert it.
        fix: None,
    };
    let imu = match (f.acc_x, f.acc_y, f.acc_z, f.gyro_x, f.gyro_y, f.gyro_z) {
        (Some(acc_x), Some(acc_y), Some(acc_z), Some(gyro_x), Some(gyro_y), Some(gyro_z)) => {
            Some(ImuSample { t_ms: f.t, acc_x, acc_y, acc_z, gyro_x, gyro_y, gyro_z })
        }
        _ => None,
    };
    Ok((sample, imu))
}

/// Splits a bundle by its metadata and checks that sizes add up and every piece is a JPEG.
pub fn parse(bundle: &[u8], metadata: &[u8]) -> Result<FrameKm, FrameKmError> {
    let meta = read_metadata(metadata)?;
    if let Some(declared) = meta.bundle.num_frames
        && declared != meta.frames.len()
    {
        return Err(FrameKmError::FrameCountMismatch { declared, listed: meta.frames.len() });
    }
    let expected: u64 = meta.frames.iter().map(|f| f.bytes).sum();
    if expected != bundle.len() as u64 {
        return Err(FrameKmError::SizeMismatch { expected, actual: bundle.len() as u64 });
    }
    let mut frames = Vec::with_capacity(meta.frames.len());
    let mut start = 0usize;
    for (index, f) in meta.frames.iter().enumerate() {
        let end = start + usize::try_from(f.bytes).unwrap_or(usize::MAX);
        let piece = &bundle[start..end];
        let whole =
            piece.len() >= 4 && piece[..2] == [0xFF, 0xD8] && piece[piece.len() - 2..] == [0xFF, 0xD9];
        if !whole {
            return Err(FrameKmError::NotJpeg { index, start, end });
        }
        let (sample, imu) = sample_of(index, f)?;
        frames.push(FrameKmFrame { range: start..end, sample, imu });
        start = end;
    }
    let mut samples: Vec<GnssSample> = frames.iter().map(|f| f.sample).collect();
    super::derive_motion(&mut samples);
    for (f, s) in frames.iter_mut().zip(samples) {
        f.sample = s;
    }
    Ok(FrameKm {
        name: meta.bundle.name,
        version: meta.bundle.version,
        device_type: meta.bundle.device_type,
        keyframe_distance_m: meta.bundle.keyframe_distance,
        frames,
    })
}

/// Writes frames and their fixes as a FrameKM (bundle bytes, metadata JSON), the way the firmware
/// packs them; used to produce fixtures and to round-trip imports.
pub fn write(name: &str, version: &str, frames: &[(Vec<u8>, GnssSample)]) -> (Vec<u8>, Vec<u8>) {
    let mut bundle = Vec::new();
    let mut meta = Vec::new();
    for (jpeg, s) in frames {
        meta.push(serde_json::json!({
            "bytes": jpeg.len(), "lat": s.lat, "lon": s.lon, "alt": s.alt, "hdop": s.hdop,
            "speed": s.speed * 3.6, "t": s.t_ms, "satellites": s.satellites,
            "acc_x": 0.0, "acc_y": 0.0, "acc_z": 1.0, "gyro_x": 0.0, "gyro_y": 0.0, "gyro_z": 0.0
        }));
        bundle.extend_from_slice(jpeg);
    }
    let meta = serde_json::json!({
        "bundle": {"name": name, "numFrames": frames.len(), "size": bundle.len(), "deviceType": "hdc",
                   "quality": 80, "keyframeDistance": 8, "resolution": "2k", "version": version},
        "frames": meta
    });
    (bundle, meta.to_string().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` distinct variants of a real JPEG, 8 m apart at 28.8 km/h.
    fn fixture(n: usize, version: &str) -> (Vec<u8>, Vec<u8>) {
        let base = std::fs::read(
            roadhex_schemas::testdata::shared_data().join("dashcam_udacity/lanelines_p1/solidWhiteRight.jpg"),
        )
        .unwrap_or_default();
        let frames: Vec<(Vec<u8>, GnssSample)> = (0..n)
            .map(|i| {
                // A comment segment after SOI makes each frame's bytes distinct.
                let mut jpeg = base[..2].to_vec();
                jpeg.extend([0xFF, 0xFE, 0x00, 0x04, i as u8, 0x00]);
                jpeg.extend_from_slice(&base[2..]);
                let (lat, lon) = roadhex_schemas::geo::destination(37.5484, -122.3156, 45.0, 8.0 * i as f64);
                let t_ms = 1_715_307_044_998 + 1000 * i as i64;
                let s = GnssSample {
                    t_ms,
                    lat,
                    lon,
                    alt: -72.0,
                    speed: 8.0,
                    heading: 45.0,
                    hdop: Some(1.8),
                    satellites: Some(9),
                    fix: None,
                };
                (jpeg, s)
            })
            .collect();
        write(&format!("km_20240510_021044_{n}_0"), version, &frames)
    }

    #[test]
    fn splits_and_converts_units() {
        for version in ["1.9", "1.10"] {
            let (bundle, meta) = fixture(5, version);
            let km = parse(&bundle, &meta).expect("parse");
            assert_eq!(km.frames.len(), 5);
            assert_eq!(km.frames[4].range.end, bundle.len());
            assert!((km.frames[0].sample.speed - 8.0).abs() < 1e-9, "28.8 km/h is 8 m/s");
            assert!((km.frames[1].sample.heading - 45.0).abs() < 0.5);
            assert!(km.frames[0].imu.is_some());
            assert!(roadhex_schemas::jpeg::inspect(&bundle[km.frames[2].range.clone()]).is_ok());
        }
    }

    #[test]
    fn refusals() {
        let (bundle, meta) = fixture(3, "1.9");
        assert_eq!(parse(&bundle[..bundle.len() - 1], &meta).unwrap_err().code(), "framekm_size_mismatch");
        assert_eq!(parse(&bundle, b"{").unwrap_err().code(), "framekm_metadata_invalid");
        let (_, old) = fixture(3, "1.4");
        assert_eq!(parse(&bundle, &old).unwrap_err().code(), "framekm_unsupported_version");
        let mut shifted = bundle.clone();
        shifted.rotate_left(1);
        assert_eq!(parse(&shifted, &meta).unwrap_err().code(), "framekm_frame_not_jpeg");
        let mut v: serde_json::Value = serde_json::from_slice(&meta).expect("json");
        v["bundle"]["numFrames"] = 4.into();
        let wrong = serde_json::to_vec(&v).expect("bytes");
        assert_eq!(parse(&bundle, &wrong).unwrap_err().code(), "framekm_frame_count_mismatch");
    }
}
