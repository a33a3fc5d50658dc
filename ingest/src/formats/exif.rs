//! EXIF GPS of one photo: position, altitude, time, orientation and DOP. Reads JPEG (and the
//! other containers kamadak-exif knows); when the EXIF block has no GPS position, the
//! `exif:GPS*` properties of a JPEG's XMP packet are used (Adobe and GIMP write them there).
//! A broken EXIF block is reported as an error of this one file, never a panic.

use ::exif::{In, Reader, Tag, Value};
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use thiserror::Error;

/// The GPS fix of one photo.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExifFix {
    /// Unix ms (UTC): GPSDateStamp + GPSTimeStamp when both are there (GPS time is UTC),
    /// else DateTimeOriginal as in [`datetime_original_ms`].
    pub t_ms: Option<i64>,
    /// WGS84 degrees, north and east positive.
    pub lat: f64,
    pub lon: f64,
    /// Metres, negative below the reference (GPSAltitudeRef 1).
    pub alt: Option<f64>,
    /// EXIF orientation 1–8 of the primary image.
    pub orientation: Option<u16>,
    /// GPSDOP as written by the camera.
    pub dop: Option<f64>,
}

#[derive(Debug, Error, Clone, PartialEq)]
pub enum ExifError {
    #[error("not an image format with EXIF (JPEG, TIFF, HEIF, PNG, WebP): {0}")]
    NotImage(String),
    #[error("image has no EXIF block and no XMP GPS: geotag the photo or send a GPS track with it")]
    NoExif,
    #[error("EXIF block is unreadable ({0}): re-export the photo with intact metadata")]
    Malformed(String),
    #[error(
        "EXIF has no GPS position (GPSLatitude/GPSLongitude): enable location on the camera or send a GPS track"
    )]
    NoGps,
    #[error("EXIF {tag} is invalid: {reason}")]
    InvalidGps { tag: &'static str, reason: String },
}

impl ExifError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotImage(_) => "exif_not_image",
            Self::NoExif => "exif_missing",
            Self::Malformed(_) => "exif_malformed",
            Self::NoGps => "exif_no_gps",
            Self::InvalidGps { .. } => "exif_invalid_gps",
        }
    }
}

/// Reads the GPS fix of a photo.
pub fn parse(bytes: &[u8]) -> Result<ExifFix, ExifError> {
    let exif = read(bytes);
    let ok = exif.as_ref().ok();
    let xmp = || xmp_packet(bytes).and_then(xmp_gps);
    let (lat, lon, alt, gps_time) = match ok.map_or(Ok(None), exif_gps) {
        Ok(Some(g)) => g,
        Ok(None) => xmp().ok_or_else(|| exif.as_ref().err().cloned().unwrap_or(ExifError::NoGps))?,
        Err(e) => xmp().ok_or(e)?,
    };
    Ok(ExifFix {
        t_ms: gps_time.or_else(|| ok.and_then(original_ms)),
        lat,
        lon,
        alt,
        orientation: ok
            .and_then(|e| e.get_field(Tag::Orientation, In::PRIMARY))
            .and_then(|f| f.value.get_uint(0))
            .and_then(|o| u16::try_from(o).ok())
            .filter(|o| (1..=8).contains(o)),
        dop: ok.and_then(|e| floats(e, Tag::GPSDOP)).and_then(|v| v.first().copied()).filter(|d| *d >= 0.0),
    })
}

/// DateTimeOriginal plus SubSecTimeOriginal as unix ms: UTC unless OffsetTimeOriginal gives
/// the zone. `None` when the photo has no readable DateTimeOriginal.
pub fn datetime_original_ms(bytes: &[u8]) -> Option<i64> {
    original_ms(&read(bytes).ok()?)
}

fn read(bytes: &[u8]) -> Result<::exif::Exif, ExifError> {
    let mut reader = Reader::new();
    reader.continue_on_error(true);
    // Keep whatever fields were readable from a partly broken block.
    reader
        .read_from_container(&mut std::io::Cursor::new(bytes))
        .or_else(|e| e.distill_partial_result(|_| {}))
        .map_err(|e| match e {
            ::exif::Error::NotFound(_) => ExifError::NoExif,
            ::exif::Error::InvalidFormat(m) if m == "Unknown image format" => {
                ExifError::NotImage(m.to_owned())
            }
            other => ExifError::Malformed(other.to_string()),
        })
}

type Gps = (f64, f64, Option<f64>, Option<i64>);

/// Position, altitude and GPS time from the GPS IFD; `None` without GPSLatitude/GPSLongitude.
fn exif_gps(e: &::exif::Exif) -> Result<Option<Gps>, ExifError> {
    let lat = e.get_field(Tag::GPSLatitude, In::PRIMARY);
    let lon = e.get_field(Tag::GPSLongitude, In::PRIMARY);
    if lat.is_none() || lon.is_none() {
        return Ok(None);
    }
    let lat = coordinate(e, Tag::GPSLatitude, Tag::GPSLatitudeRef, "GPSLatitude", 90.0, b'S')?;
    let lon = coordinate(e, Tag::GPSLongitude, Tag::GPSLongitudeRef, "GPSLongitude", 180.0, b'W')?;
    let below = e.get_field(Tag::GPSAltitudeRef, In::PRIMARY).and_then(|f| f.value.get_uint(0)) == Some(1);
    let alt = floats(e, Tag::GPSAltitude)
        .and_then(|v| v.first().copied())
        .filter(|a| a.is_finite())
        .map(|a| if below { -a } else { a });
    Ok(Some((lat, lon, alt, gps_time(e))))
}

/// Degrees from 1–3 rationals (degrees, minutes, seconds) and the hemisphere reference;
/// a missing reference counts as north/east.
fn coordinate(
    e: &::exif::Exif,
    tag: Tag,
    ref_tag: Tag,
    name: &'static str,
    max: f64,
    negative: u8,
) -> Result<f64, ExifError> {
    let invalid = |reason: String| ExifError::InvalidGps { tag: name, reason };
    let parts = floats(e, tag).ok_or_else(|| invalid("not a list of rationals".to_owned()))?;
    let deg = match parts.as_slice() {
        [d] => *d,
        [d, m] => d + m / 60.0,
        [d, m, s, ..] => d + m / 60.0 + s / 3600.0,
        [] => return Err(invalid("empty".to_owned())),
    };
    if !deg.is_finite() || !(0.0..=max).contains(&deg.abs()) {
        return Err(invalid(format!("{deg} is not a coordinate (zero denominator or out of range)")));
    }
    let hemisphere = e.get_field(ref_tag, In::PRIMARY).and_then(|f| match &f.value {
        Value::Ascii(v) => v.first().and_then(|s| s.first().copied()),
        _ => None,
    });
    Ok(if hemisphere.map(|h| h.to_ascii_uppercase()) == Some(negative) { -deg.abs() } else { deg })
}

/// Numeric values of a field as f64, whatever numeric type the writer chose.
fn floats(e: &::exif::Exif, tag: Tag) -> Option<Vec<f64>> {
    let v = &e.get_field(tag, In::PRIMARY)?.value;
    Some(match v {
        Value::Rational(r) => r.iter().map(|x| x.to_f64()).collect(),
        Value::SRational(r) => r.iter().map(|x| x.to_f64()).collect(),
        Value::Double(d) => d.clone(),
        Value::Float(f) => f.iter().map(|x| f64::from(*x)).collect(),
        Value::Byte(_) | Value::Short(_) | Value::Long(_) => v.iter_uint()?.map(f64::from).collect(),
        _ => return None,
    })
}

fn ascii(e: &::exif::Exif, tag: Tag) -> Option<&str> {
    match &e.get_field(tag, In::PRIMARY)?.value {
        Value::Ascii(v) => std::str::from_utf8(v.first()?).ok().map(str::trim),
        _ => None,
    }
}

/// GPSDateStamp (`YYYY:MM:DD`) + GPSTimeStamp (h, m, s rationals) as unix ms.
fn gps_time(e: &::exif::Exif) -> Option<i64> {
    let date = NaiveDate::parse_from_str(ascii(e, Tag::GPSDateStamp)?, "%Y:%m:%d").ok()?;
    let hms = floats(e, Tag::GPSTimeStamp)?;
    let [h, m, s] = hms.as_slice() else { return None };
    let secs = h * 3600.0 + m * 60.0 + s;
    if !(0.0..86_401.0).contains(&secs) {
        return None;
    }
    Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis() + (secs * 1000.0).round() as i64)
}

fn original_ms(e: &::exif::Exif) -> Option<i64> {
    let text = ascii(e, Tag::DateTimeOriginal)?;
    let local = NaiveDateTime::parse_from_str(text, "%Y:%m:%d %H:%M:%S%.f").ok()?;
    let mut ms = local.and_utc().timestamp_millis();
    // Some cameras put the fraction into DateTimeOriginal itself ("…:33.847").
    if !text.contains('.')
        && let Some(sub) = ascii(e, Tag::SubSecTimeOriginal)
    {
        // SubSecTime holds the digits after the decimal point: "5" is 500 ms, "683670" 683 ms.
        let digits: String =
            sub.chars().take_while(char::is_ascii_digit).chain("000".chars()).take(3).collect();
        ms += digits.parse::<i64>().unwrap_or(0);
    }
    // A blank or garbled offset is no offset.
    if let Some(minutes) = ascii(e, Tag::OffsetTimeOriginal).and_then(offset_minutes) {
        ms -= minutes * 60_000;
    }
    Some(ms)
}

/// `±HH:MM` to minutes east of UTC.
fn offset_minutes(s: &str) -> Option<i64> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, s.get(1..)?),
        b'-' => (-1, s.get(1..)?),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 14 && m < 60).then_some(sign * (h * 60 + m))
}

/// The XMP packet of a JPEG: the APP1 segment named by Adobe's namespace.
fn xmp_packet(bytes: &[u8]) -> Option<&str> {
    const XMP: &[u8] = b"http://ns.adobe.com/xap/1.0/\0";
    let mut pos = 2;
    if bytes.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    loop {
        let marker = *bytes.get(pos + 1)?;
        if *bytes.get(pos)? != 0xFF || marker == 0xDA || marker == 0xD9 {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([*bytes.get(pos + 2)?, *bytes.get(pos + 3)?]));
        let segment = bytes.get(pos + 4..pos + 2 + len.max(2))?;
        if marker == 0xE1
            && let Some(packet) = segment.strip_prefix(XMP)
        {
            return std::str::from_utf8(packet).ok();
        }
        pos += 2 + len;
    }
}

/// The value of an `exif:` property, written as an attribute or as an element.
fn xmp_property<'a>(xmp: &'a str, name: &str) -> Option<&'a str> {
    for (open, close) in [("=\"", '"'), ("='", '\''), (">", '<')] {
        let key = format!("exif:{name}{open}");
        if let Some(start) = xmp.find(&key) {
            let rest = xmp.get(start + key.len()..)?;
            return rest.split(close).next().map(str::trim);
        }
    }
    None
}

fn xmp_gps(xmp: &str) -> Option<Gps> {
    let lat = xmp_coordinate(xmp_property(xmp, "GPSLatitude")?, 90.0)?;
    let lon = xmp_coordinate(xmp_property(xmp, "GPSLongitude")?, 180.0)?;
    let below = xmp_property(xmp, "GPSAltitudeRef") == Some("1");
    let alt = xmp_property(xmp, "GPSAltitude").and_then(xmp_number).map(|a| if below { -a } else { a });
    let time = xmp_property(xmp, "GPSTimeStamp")
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp_millis());
    Some((lat, lon, alt, time))
}

/// XMP GPSCoordinate: `DDD,MM,SSk` or `DDD,MM.mmk` with k one of N, S, E, W.
fn xmp_coordinate(s: &str, max: f64) -> Option<f64> {
    let hemisphere = s.chars().last()?;
    let parts: Vec<f64> = s
        .get(..s.len() - hemisphere.len_utf8())?
        .split(',')
        .map(|p| p.trim().parse().ok())
        .collect::<Option<_>>()?;
    let deg = match parts.as_slice() {
        [d] => *d,
        [d, m] => d + m / 60.0,
        [d, m, s] => d + m / 60.0 + s / 3600.0,
        _ => return None,
    };
    if !deg.is_finite() || !(0.0..=max).contains(&deg) {
        return None;
    }
    match hemisphere {
        'N' | 'E' => Some(deg),
        'S' | 'W' => Some(-deg),
        _ => None,
    }
}

/// An XMP rational (`136169/100`) or decimal.
fn xmp_number(s: &str) -> Option<f64> {
    let v = match s.split_once('/') {
        Some((n, d)) => n.trim().parse::<f64>().ok()? / d.trim().parse::<f64>().ok()?,
        None => s.parse().ok()?,
    };
    v.is_finite().then_some(v)
}

/// The GPS fix in a photo's EXIF as a sample (speed and heading left for `derive_motion`).
pub fn geotag(bytes: &[u8]) -> Result<roadhex_schemas::GnssSample, ExifError> {
    let fix = parse(bytes)?;
    let t_ms = fix.t_ms.ok_or(ExifError::NoGps)?;
    Ok(roadhex_schemas::GnssSample {
        t_ms,
        lat: fix.lat,
        lon: fix.lon,
        alt: fix.alt.unwrap_or(0.0),
        speed: f64::NAN,
        heading: f64::NAN,
        hdop: fix.dop,
        satellites: None,
        fix: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(path: &str) -> Vec<u8> {
        std::fs::read(roadhex_schemas::testdata::shared_data().join(path)).unwrap_or_default()
    }

    fn utc(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).map(|t| t.timestamp_millis()).unwrap_or_default()
    }

    #[test]
    fn sony_action_cam() {
        // README: 45°31'0.85" N, 122°34'21.95" W (seconds rounded to 0.01"), 2018:06:08 20:24:11Z;
        // exiftool -n: 45.5169030555556, -122.572765, alt 70.3, DOP 1.78.
        let f = parse(&data("exif_mapillary_tools/images/DSC00001.JPG")).expect("parse");
        assert!((f.lat - (45.0 + 31.0 / 60.0 + 0.85 / 3600.0)).abs() < 3e-6, "{}", f.lat);
        assert!((f.lon + (122.0 + 34.0 / 60.0 + 21.95 / 3600.0)).abs() < 3e-6, "{}", f.lon);
        assert!((f.lat - 45.516_903_055_555_6).abs() < 1e-9 && (f.lon + 122.572_765).abs() < 1e-9);
        assert_eq!(f.t_ms, Some(utc("2018-06-08T20:24:11Z")));
        assert_eq!((f.alt, f.dop, f.orientation), (Some(70.3), Some(1.78), Some(1)));
        // The camera clock (13:24:10 at -07:00) runs a second behind GPS.
        let original = datetime_original_ms(&data("exif_mapillary_tools/images/DSC00001.JPG"));
        assert_eq!(original, Some(utc("2018-06-08T20:24:10Z")));
    }

    #[test]
    fn htc_phone() {
        // README: 35°54'45.06" N, 14°29'55.70" E, 2011:07:15 09:14:39Z; exiftool: alt 69, orientation 2.
        let bytes = data("exif_mapillary_tools/unit/test_exif.jpg");
        let f = parse(&bytes).expect("parse");
        assert!((f.lat - (35.0 + 54.0 / 60.0 + 45.06 / 3600.0)).abs() < 1e-6, "{}", f.lat);
        assert!((f.lon - (14.0 + 29.0 / 60.0 + 55.70 / 3600.0)).abs() < 1e-6, "{}", f.lon);
        assert_eq!(f.t_ms, Some(utc("2011-07-15T09:14:39Z")));
        assert_eq!((f.alt, f.orientation, f.dop), (Some(69.0), Some(2), None));
        // DateTimeOriginal carries its fraction inline: "2018:06:26 17:46:33.847".
        assert_eq!(datetime_original_ms(&bytes), Some(utc("2018-06-26T17:46:33.847Z")));
    }

    #[test]
    fn adobe_xmp_coordinates() {
        // exiftool -n: XMP GPSLatitude -0.0702668333, GPSLongitude 34.3819351667, GPSAltitude 1361.69.
        let f = parse(&data("exif_mapillary_tools/adobe_coords.jpg")).expect("parse");
        assert!((f.lat + 0.070_266_833_3).abs() < 1e-9, "{}", f.lat);
        assert!((f.lon - 34.381_935_166_7).abs() < 1e-9, "{}", f.lon);
        assert_eq!(f.alt, Some(1361.69));
        // No GPS time: DateTimeOriginal 2019:07:16 10:26:11 without an offset is taken as UTC.
        assert_eq!(f.t_ms, Some(utc("2019-07-16T10:26:11Z")));
        assert_eq!(f.orientation, Some(1));
    }

    #[test]
    fn broken_blocks_are_errors_not_panics() {
        // exiftool reads lat 48.0810453, lon -1.6678411 from these; no GPS time, so the
        // camera's DateTimeOriginal (+ SubSecTimeOriginal 683670) dates them.
        for (name, when) in [
            ("corrupt_exif.jpg", "2016-07-07T21:42:20.683Z"),
            ("corrupt_exif_2.jpg", "2016-08-31T08:29:26.683Z"),
            ("fixed_exif.jpg", "2016-07-07T21:42:20.683Z"),
            ("fixed_exif_2.jpg", "2016-08-31T08:29:26.683Z"),
        ] {
            let f = parse(&data(&format!("exif_mapillary_tools/unit/{name}"))).expect(name);
            assert!(
                (f.lat - 48.081_045_3).abs() < 1e-6 && (f.lon + 1.667_841_1).abs() < 1e-6,
                "{name}: {f:?}"
            );
            assert_eq!((f.t_ms, f.alt), (Some(utc(when)), None), "{name}");
        }
        for name in [
            "corrupt_exif_large_thumbnail.jpg",
            "corrupt_exif_trusted_wrong_type.jpg",
            "corrupt_exif_wrong_type.jpg",
            "empty_exif.jpg",
        ] {
            let err = parse(&data(&format!("exif_mapillary_tools/unit/{name}"))).expect_err(name);
            eprintln!("{name}: {} ({err})", err.code());
            assert!(matches!(err.code(), "exif_no_gps" | "exif_malformed" | "exif_missing"), "{name}: {err}");
        }
        assert_eq!(parse(b"").expect_err("must be refused").code(), "exif_not_image");
        assert_eq!(parse(b"not an image at all").expect_err("must be refused").code(), "exif_not_image");
        assert_eq!(parse(&[0xFF, 0xD8, 0xFF, 0xD9]).expect_err("must be refused").code(), "exif_missing");
        // EXIF (orientation, size) and XMP, but no GPS in either.
        assert_eq!(
            parse(&data("dashcam_udacity/lanelines_p1/solidWhiteRight.jpg"))
                .expect_err("must be refused")
                .code(),
            "exif_no_gps"
        );
    }

    #[test]
    fn truncated_and_mangled_files_never_panic() {
        let base = data("exif_mapillary_tools/unit/test_exif.jpg");
        for cut in (0..base.len().min(4096)).step_by(7) {
            let _ = parse(base.get(..cut).unwrap_or_default());
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..300 {
            let mut b = base.get(..2048).unwrap_or_default().to_vec();
            for _ in 0..8 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let i = (seed % 2048) as usize;
                if let Some(x) = b.get_mut(i) {
                    *x = (seed >> 40) as u8;
                }
            }
            let _ = parse(&b);
            let _ = datetime_original_ms(&b);
        }
    }

    /// Hivemapper Bee frames are named `<unix_ms>_<lat>_<lon>.jpg` with full-precision values.
    #[test]
    fn hivemapper_frames_agree_with_their_names() {
        let dir = roadhex_schemas::testdata::shared_data().join("dashcam_hivemapper_bee_sf/frames");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .expect("frames")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".jpg"))
            .collect();
        names.sort();
        assert_eq!(names.len(), 70);
        let (mut worst_m, mut same_time, mut same_json) = (0.0f64, 0, 0);
        for name in &names {
            let stem = name.trim_end_matches(".jpg");
            let parts: Vec<f64> = stem.split('_').filter_map(|p| p.parse().ok()).collect();
            let [t, lat, lon] = parts.as_slice() else { panic!("{name}") };
            let bytes = std::fs::read(dir.join(name)).expect("frame");
            let f = parse(&bytes).expect(name);
            worst_m = worst_m.max(roadhex_schemas::geo::haversine_m(f.lat, f.lon, *lat, *lon));
            same_time += usize::from(f.t_ms == Some(*t as i64));
            assert!(f.dop.is_some_and(|d| d > 0.0) && f.alt.is_some_and(|a| a < 0.0), "{name}");
            let json: serde_json::Value = std::fs::read(dir.join(format!("{stem}.json")))
                .ok()
                .and_then(|j| serde_json::from_slice(&j).ok())
                .unwrap_or_default();
            let near = |key: &str, v: f64| json[key].as_f64().is_some_and(|j| (j - v).abs() < 1e-9);
            same_json +=
                usize::from(json["time"].as_i64() == f.t_ms && near("lat", *lat) && near("lon", *lon));
        }
        eprintln!(
            "hivemapper: {} frames, EXIF vs name worst {:.2} mm, time equal {same_time}, sidecar agrees {same_json}",
            names.len(),
            worst_m * 1000.0
        );
        assert!(worst_m < 0.01, "{worst_m}");
        assert_eq!((same_time, same_json), (names.len(), names.len()));
    }
}
