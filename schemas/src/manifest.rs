//! The capture manifest (format version 1): what a device signs and uploads before its frames.
//!
//! The device signs the manifest's exact bytes; the server verifies those bytes before it parses
//! them (see [`crate::signing`]), then parses with [`CaptureManifest::parse`], which also runs
//! [`CaptureManifest::validate`].

use crate::error::ManifestError;
use crate::ids::is_sha256_hex;
use crate::limits::{
    MANIFEST_VERSION, MAX_FRAME_BYTES, MAX_FRAMES, MAX_IMAGE_SIDE, MAX_TELEMETRY_SAMPLES, MIN_FRAME_BYTES,
    MIN_IMAGE_SIDE,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptureManifest {
    /// Always 1 for this format.
    pub version: u32,
    /// Device id (see [`crate::DeviceId`]); must match the key that signed the manifest.
    pub device_id: String,
    /// Per-device capture sequence number; strictly increasing across a device's captures.
    pub sequence: u64,
    /// When the device closed the capture.
    pub created_at: DateTime<Utc>,
    pub camera: Camera,
    /// GNSS samples in time order.
    pub telemetry: Vec<GnssSample>,
    /// Optional IMU samples in time order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub imu: Vec<ImuSample>,
    /// One entry per frame, in capture order.
    pub frames: Vec<FrameEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Camera {
    /// Image width in pixels; every frame must have it.
    pub width: u32,
    /// Image height in pixels; every frame must have it.
    pub height: u32,
    /// Focal length in pixels, when calibrated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub focal_length_px: Option<f64>,
    /// Horizontal field of view in degrees, when the focal length is not known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hfov_deg: Option<f64>,
    pub mount: Mount,
    /// Camera height above the road in metres.
    pub mount_height_m: f64,
}

impl Camera {
    /// Focal length in pixels from whichever of the two the device gave.
    pub fn focal_px(&self) -> Option<f64> {
        self.focal_length_px
            .or_else(|| self.hfov_deg.map(|fov| f64::from(self.width) / 2.0 / (fov.to_radians() / 2.0).tan()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mount {
    Front,
    Side,
}

impl Mount {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Front => "front",
            Self::Side => "side",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum FixType {
    #[serde(rename = "none")]
    NoFix,
    #[serde(rename = "2d")]
    Fix2d,
    #[serde(rename = "3d")]
    Fix3d,
}

impl FixType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoFix => "none",
            Self::Fix2d => "2d",
            Self::Fix3d => "3d",
        }
    }
}

/// One GNSS solution.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GnssSample {
    /// Unix time in milliseconds (GNSS time).
    pub t_ms: i64,
    /// WGS84 degrees.
    pub lat: f64,
    pub lon: f64,
    /// Metres above the ellipsoid.
    pub alt: f64,
    /// Ground speed in m/s.
    pub speed: f64,
    /// Course over ground in degrees clockwise from true north.
    pub heading: f64,
    /// Horizontal dilution of precision, when the receiver reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hdop: Option<f64>,
    /// Satellites used in the solution, when reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub satellites: Option<u8>,
    /// Fix type, when reported. Sources such as phone GPX tracks report none of these three;
    /// the gates then judge the sample by what is known (speed, jumps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<FixType>,
}

/// One IMU sample: acceleration in g, rotation rate in deg/s.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImuSample {
    pub t_ms: i64,
    pub acc_x: f64,
    pub acc_y: f64,
    pub acc_z: f64,
    pub gyro_x: f64,
    pub gyro_y: f64,
    pub gyro_z: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FrameEntry {
    /// Unix time in milliseconds at which the frame was exposed.
    pub t_ms: i64,
    /// Lowercase hex SHA-256 of the JPEG bytes.
    pub sha256: String,
    /// JPEG size in bytes.
    pub size: u64,
}

impl CaptureManifest {
    /// Parses and validates manifest bytes. Call only after the signature over them checked out.
    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestError> {
        // Peek at the version first so a future format gets a precise refusal.
        #[derive(Deserialize)]
        struct Version {
            version: u32,
        }
        let v: Version =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Malformed(e.to_string()))?;
        if v.version != MANIFEST_VERSION {
            return Err(ManifestError::UnsupportedVersion(v.version));
        }
        let m: Self = serde_json::from_slice(bytes).map_err(|e| ManifestError::Malformed(e.to_string()))?;
        m.validate()?;
        Ok(m)
    }

    /// Canonical bytes the client signs and sends.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing plain structs of numbers and strings cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Structural checks that need no other state.
    pub fn validate(&self) -> Result<(), ManifestError> {
        self.validate_camera()?;
        if self.frames.is_empty() {
            return Err(ManifestError::NoFrames);
        }
        if self.frames.len() > MAX_FRAMES {
            return Err(ManifestError::TooManyFrames { n: self.frames.len(), max: MAX_FRAMES });
        }
        if self.telemetry.is_empty() {
            return Err(ManifestError::NoTelemetry);
        }
        if self.telemetry.len() > MAX_TELEMETRY_SAMPLES {
            return Err(ManifestError::TooManySamples {
                n: self.telemetry.len(),
                max: MAX_TELEMETRY_SAMPLES,
            });
        }
        self.validate_telemetry()?;
        self.validate_frames()
    }

    fn validate_camera(&self) -> Result<(), ManifestError> {
        let c = &self.camera;
        let side = MIN_IMAGE_SIDE..=MAX_IMAGE_SIDE;
        if !side.contains(&c.width) || !side.contains(&c.height) {
            return Err(ManifestError::InvalidCamera(format!(
                "{}x{} pixels; each side must be {MIN_IMAGE_SIDE}..={MAX_IMAGE_SIDE}",
                c.width, c.height
            )));
        }
        if let Some(f) = c.focal_length_px
            && !(f.is_finite() && f > 0.0)
        {
            return Err(ManifestError::InvalidCamera(format!("focal length {f} px")));
        }
        if let Some(fov) = c.hfov_deg
            && !(fov.is_finite() && fov > 1.0 && fov < 180.0)
        {
            return Err(ManifestError::InvalidCamera(format!("horizontal field of view {fov}°")));
        }
        if !(c.mount_height_m.is_finite() && (0.0..=10.0).contains(&c.mount_height_m)) {
            return Err(ManifestError::InvalidCamera(format!(
                "mount height {} m (want 0..=10)",
                c.mount_height_m
            )));
        }
        Ok(())
    }

    fn validate_telemetry(&self) -> Result<(), ManifestError> {
        let mut prev: Option<i64> = None;
        for (index, s) in self.telemetry.iter().enumerate() {
            let bad = |what: &str| ManifestError::InvalidSample { index, what: what.to_owned() };
            if !(s.lat.is_finite() && (-90.0..=90.0).contains(&s.lat)) {
                return Err(bad("latitude outside -90..=90"));
            }
            if !(s.lon.is_finite() && (-180.0..=180.0).contains(&s.lon)) {
                return Err(bad("longitude outside -180..=180"));
            }
            if !s.alt.is_finite() || !s.speed.is_finite() || s.speed < 0.0 {
                return Err(bad("altitude or speed not a finite number (speed must be ≥ 0)"));
            }
            if !s.heading.is_finite() || s.hdop.is_some_and(|h| !h.is_finite() || h < 0.0) {
                return Err(bad("heading or hdop not a finite number (hdop must be ≥ 0)"));
            }
            if let Some(p) = prev
                && s.t_ms <= p
            {
                return Err(ManifestError::TelemetryNotMonotonic { index, t_ms: s.t_ms, prev_ms: p });
            }
            prev = Some(s.t_ms);
        }
        Ok(())
    }

    fn validate_frames(&self) -> Result<(), ManifestError> {
        let (start_ms, end_ms) = self.telemetry_span();
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut prev: Option<i64> = None;
        for (index, f) in self.frames.iter().enumerate() {
            if !is_sha256_hex(&f.sha256) {
                return Err(ManifestError::InvalidFrameHash { index });
            }
            if let Some(&first) = seen.get(f.sha256.as_str()) {
                return Err(ManifestError::DuplicateFrame { index, first });
            }
            seen.insert(&f.sha256, index);
            if !(MIN_FRAME_BYTES..=MAX_FRAME_BYTES).contains(&f.size) {
                return Err(ManifestError::FrameSizeOutOfRange {
                    index,
                    size: f.size,
                    min: MIN_FRAME_BYTES,
                    max: MAX_FRAME_BYTES,
                });
            }
            if let Some(p) = prev
                && f.t_ms <= p
            {
                return Err(ManifestError::FramesNotMonotonic { index, t_ms: f.t_ms, prev_ms: p });
            }
            prev = Some(f.t_ms);
            if f.t_ms < start_ms || f.t_ms > end_ms {
                return Err(ManifestError::FrameOutsideTelemetry { index, t_ms: f.t_ms, start_ms, end_ms });
            }
        }
        Ok(())
    }

    /// First and last telemetry time (ms). Defined once `validate` passed.
    pub fn telemetry_span(&self) -> (i64, i64) {
        let start = self.telemetry.first().map_or(0, |s| s.t_ms);
        let end = self.telemetry.last().map_or(0, |s| s.t_ms);
        (start, end)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample(t_ms: i64, lat: f64, lon: f64) -> GnssSample {
        GnssSample {
            t_ms,
            lat,
            lon,
            alt: 10.0,
            speed: 10.0,
            heading: 0.0,
            hdop: Some(1.0),
            satellites: Some(9),
            fix: Some(FixType::Fix3d),
        }
    }

    pub(crate) fn manifest() -> CaptureManifest {
        CaptureManifest {
            version: 1,
            device_id: "0".repeat(32),
            sequence: 1,
            created_at: DateTime::from_timestamp_millis(1_700_000_000_000).unwrap_or_default(),
            camera: Camera {
                width: 1280,
                height: 720,
                focal_length_px: None,
                hfov_deg: Some(90.0),
                mount: Mount::Front,
                mount_height_m: 1.4,
            },
            telemetry: (0..10).map(|i| sample(i * 1000, 45.0 + i as f64 * 9e-5, 13.0)).collect(),
            imu: vec![],
            frames: (0..5)
                .map(|i| FrameEntry { t_ms: i * 1000 + 500, sha256: format!("{i:064x}"), size: 60_000 })
                .collect(),
        }
    }

    #[test]
    fn round_trips_and_validates() {
        let m = manifest();
        let parsed = CaptureManifest::parse(&m.to_bytes()).expect("valid manifest");
        assert_eq!(parsed, m);
        assert!((m.camera.focal_px().unwrap_or(0.0) - 640.0).abs() < 1e-6);
    }

    #[test]
    fn refusals_have_codes() {
        let mut m = manifest();
        m.version = 2;
        assert_eq!(CaptureManifest::parse(&m.to_bytes()).unwrap_err().code(), "manifest_unsupported_version");
        let mut m = manifest();
        m.telemetry[3].t_ms = m.telemetry[2].t_ms;
        assert_eq!(m.validate().unwrap_err().code(), "telemetry_not_monotonic");
        let mut m = manifest();
        m.frames[4].t_ms = 99_000;
        assert_eq!(m.validate().unwrap_err().code(), "frame_time_outside_telemetry");
        let mut m = manifest();
        m.frames[1].size = 10;
        assert_eq!(m.validate().unwrap_err().code(), "frame_size_out_of_range");
        let mut m = manifest();
        m.frames[2].sha256 = m.frames[0].sha256.clone();
        assert_eq!(m.validate().unwrap_err().code(), "frame_duplicate");
        let mut m = manifest();
        m.camera.width = 100_000;
        assert_eq!(m.validate().unwrap_err().code(), "camera_invalid");
        assert_eq!(CaptureManifest::parse(b"{\"version\":1}").unwrap_err().code(), "manifest_malformed");
        assert_eq!(CaptureManifest::parse(b"nope").unwrap_err().code(), "manifest_malformed");
    }
}
