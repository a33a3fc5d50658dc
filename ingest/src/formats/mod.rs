//! Telemetry importers: pure functions from a file's bytes to GNSS samples, one module per format,
//! each with its own error type.

pub mod exif;
pub mod framekm;
pub mod gpmf;
pub mod gpx;
pub mod nmea;
#[cfg(feature = "video")]
pub mod video;

use roadhex_schemas::GnssSample;
use roadhex_schemas::geo::{bearing_deg, haversine_m};
use thiserror::Error;

/// A telemetry source, recognised by content (not by file name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Gpx,
    Nmea,
    /// An MP4 (GoPro) with a GPMF `gpmd` track.
    Mp4,
    /// A raw GPMF payload (starts with a `DEVC` KLV).
    Gpmf,
    /// A JPEG whose EXIF holds one GPS fix.
    Jpeg,
    /// Hivemapper FrameKM metadata JSON (its fixes, without the bundle).
    FrameKmMetadata,
}

#[derive(Debug, Error)]
pub enum FormatError {
    #[error(
        "file is not a telemetry format roadhex reads (GPX, NMEA, GoPro MP4/GPMF, JPEG EXIF, FrameKM metadata)"
    )]
    Unknown,
    #[error("{0}")]
    Gpx(#[from] gpx::GpxError),
    #[error("{0}")]
    Nmea(#[from] nmea::NmeaError),
    #[error("{0}")]
    Gpmf(#[from] gpmf::GpmfError),
    #[error("{0}")]
    Exif(#[from] exif::ExifError),
    #[error("{0}")]
    FrameKm(#[from] framekm::FrameKmError),
}

impl FormatError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unknown => "format_unknown",
            Self::Gpx(e) => e.code(),
            Self::Nmea(e) => e.code(),
            Self::Gpmf(e) => e.code(),
            Self::Exif(e) => e.code(),
            Self::FrameKm(e) => e.code(),
        }
    }
}

/// Recognises a telemetry file by its first bytes.
pub fn detect(bytes: &[u8]) -> Option<Format> {
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let start = body.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(body.len());
    let text = &body[start..];
    if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        return Some(Format::Mp4);
    }
    if bytes.starts_with(b"DEVC") {
        return Some(Format::Gpmf);
    }
    if bytes.starts_with(&[0xFF, 0xD8]) {
        return Some(Format::Jpeg);
    }
    if text.starts_with(b"<") {
        let head = String::from_utf8_lossy(&text[..text.len().min(4096)]).to_ascii_lowercase();
        return head.contains("<gpx").then_some(Format::Gpx);
    }
    if text.starts_with(b"{") {
        let head = String::from_utf8_lossy(&text[..text.len().min(4096)]).into_owned();
        return (head.contains("\"bundle\"") || head.contains("\"frames\""))
            .then_some(Format::FrameKmMetadata);
    }
    // NMEA: a sentence start within the first lines (logs may open with comments).
    let head = &text[..text.len().min(4096)];
    head.split(|&b| b == b'\n')
        .take(20)
        .any(|l| l.starts_with(b"$") || l.starts_with(b"!"))
        .then_some(Format::Nmea)
}

/// Reads GNSS samples from any supported telemetry file, sorted by time.
pub fn read_track(bytes: &[u8]) -> Result<Vec<GnssSample>, FormatError> {
    let mut samples = match detect(bytes).ok_or(FormatError::Unknown)? {
        Format::Gpx => gpx::parse(bytes)?,
        Format::Nmea => nmea::parse(bytes)?.samples,
        Format::Mp4 => gpmf::parse_mp4(bytes)?,
        Format::Gpmf => gpmf_samples(&gpmf::parse_payload(bytes)?),
        Format::Jpeg => vec![exif::geotag(bytes)?],
        Format::FrameKmMetadata => framekm::parse_metadata(bytes)?,
    };
    samples.sort_by_key(|s| s.t_ms);
    samples.dedup_by_key(|s| s.t_ms);
    derive_motion(&mut samples);
    Ok(samples)
}

/// Samples of raw GPMF payloads. GPS5 samples carry no time of their own: without the MP4's
/// sample table they are spread over the payload's nominal one second after its GPSU.
fn gpmf_samples(fixes: &[gpmf::GpmfFix]) -> Vec<GnssSample> {
    fixes
        .iter()
        .filter_map(|f| {
            let spread = |gpsu: i64| gpsu + (f.index as i64 * 1000) / (f.count.max(1) as i64);
            Some(GnssSample {
                t_ms: f.t_ms.or(f.gpsu_ms.map(spread))?,
                lat: f.lat,
                lon: f.lon,
                alt: f.alt,
                speed: f.speed_2d,
                heading: f64::NAN,
                hdop: f.dop,
                satellites: None,
                fix: f.fix,
            })
        })
        .collect()
}

/// Fills speed and heading from consecutive positions where a source did not report them
/// (`NaN` marks "not reported"). The last sample repeats its predecessor's values.
pub fn derive_motion(samples: &mut [GnssSample]) {
    for i in 0..samples.len() {
        let (a, b) = match (samples.get(i), samples.get(i + 1)) {
            (Some(a), Some(b)) => (*a, *b),
            (Some(a), None) if i > 0 => (samples[i - 1], *a),
            _ => continue,
        };
        let dt = (b.t_ms - a.t_ms) as f64 / 1000.0;
        let s = &mut samples[i];
        if s.speed.is_nan() {
            s.speed = if dt > 0.0 { haversine_m(a.lat, a.lon, b.lat, b.lon) / dt } else { 0.0 };
        }
        if s.heading.is_nan() {
            s.heading = bearing_deg(a.lat, a.lon, b.lat, b.lon);
        }
    }
    for s in samples.iter_mut() {
        if s.speed.is_nan() {
            s.speed = 0.0;
        }
        if s.heading.is_nan() {
            s.heading = 0.0;
        }
    }
}
