//! GoPro GPMF telemetry: the GPS streams (GPS5 on HERO5–10 and MAX, GPS9 on HERO11 and later)
//! of raw GPMF payloads, and of the `gpmd` track of a GoPro MP4.
//!
//! A payload is KLV: a FourCC key, a type byte, a struct size byte and a big-endian u16 repeat
//! count, then `size * repeat` bytes padded to 4. Type 0 nests more KLV (`DEVC` devices hold
//! `STRM` streams); in a stream, `SCAL`, `TYPE`, `GPSF`, `GPSU` and `GPSP` describe the samples
//! that follow them.

use chrono::NaiveDateTime;
use roadhex_schemas::geo::bearing_deg;
use roadhex_schemas::{FixType, GnssSample};
use thiserror::Error;

/// One GPS sample of a payload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GpmfFix {
    /// Unix ms (UTC) of this very sample: GPS9 carries one per sample, GPS5 none.
    pub t_ms: Option<i64>,
    /// The stream's GPSU (UTC, unix ms), taken as the time of its first sample.
    pub gpsu_ms: Option<i64>,
    /// Index of the sample in its stream and the stream's sample count: with the payload's
    /// duration they place a GPS5 sample in time.
    pub index: usize,
    pub count: usize,
    /// WGS84 degrees.
    pub lat: f64,
    pub lon: f64,
    /// Metres as the camera reports them (WGS84 ellipsoid; `GPSA` = `MSLV` on some models means
    /// mean sea level).
    pub alt: f64,
    /// Ground speed and 3D speed in m/s.
    pub speed_2d: f64,
    pub speed_3d: f64,
    /// Dilution of precision (GPSP / 100, or GPS9's DOP); 99.99 means unknown.
    pub dop: Option<f64>,
    pub fix: Option<FixType>,
}

#[derive(Debug, Error, Clone, PartialEq)]
pub enum GpmfError {
    #[error("GPMF payload is corrupt at byte {offset}: {reason}")]
    Malformed { offset: usize, reason: &'static str },
    #[error("GPMF {key} stream is unusable: {reason}")]
    InvalidStream { key: String, reason: String },
    #[error("file is not a readable MP4: {0}")]
    NotMp4(String),
    #[error("MP4 has no GoPro metadata (gpmd) track: upload the original camera file, not an edited export")]
    NoTrack,
    #[error("MP4 is truncated: a metadata sample lies past the end of the file ({end} > {len} bytes)")]
    Truncated { end: u64, len: usize },
    #[error("GoPro telemetry has no GPS fix: turn GPS on in the camera and wait for a lock before recording")]
    NoGps,
    #[error("GoPro GPS samples carry no time (GPSU or GPS9), so they cannot be placed in UTC")]
    NoTime,
}

impl GpmfError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed { .. } => "gpmf_malformed",
            Self::InvalidStream { .. } => "gpmf_invalid_stream",
            Self::NotMp4(_) => "gpmf_not_mp4",
            Self::NoTrack => "gpmf_no_track",
            Self::Truncated { .. } => "gpmf_truncated",
            Self::NoGps => "gpmf_no_gps",
            Self::NoTime => "gpmf_no_time",
        }
    }
}

/// Decodes the GPS samples of one raw GPMF payload (several concatenated payloads work too).
/// A payload without GPS gives an empty list.
pub fn parse_payload(bytes: &[u8]) -> Result<Vec<GpmfFix>, GpmfError> {
    payload(bytes, 0)
}

/// Decodes the GPS track of a GoPro MP4 into samples in UTC, without the samples taken
/// without a lock (GPSF 0).
pub fn parse_mp4(bytes: &[u8]) -> Result<Vec<GnssSample>, GpmfError> {
    mp4_track(bytes).map(|(samples, _)| samples)
}

/// Like [`parse_mp4`], plus the UTC time (Unix ms) of the MP4 timeline's zero, i.e. of the
/// video's first frame, when the GPS gave one.
pub fn mp4_track(bytes: &[u8]) -> Result<(Vec<GnssSample>, Option<i64>), GpmfError> {
    check_box_sizes(bytes)?;
    let context = mp4parse::read_mp4(&mut std::io::Cursor::new(bytes))
        .map_err(|e| GpmfError::NotMp4(format!("{e:?}")))?;
    // Payloads with their start and duration on the MP4 timeline, in ms.
    let mut payloads: Vec<(f64, f64, Vec<GpmfFix>)> = Vec::new();
    for track in context.tracks.iter().filter(|t| t.track_type == mp4parse::TrackType::Metadata) {
        let Some(table) = mp4parse::unstable::create_sample_table(track, 0.into()) else { continue };
        let timescale = track.timescale.map_or(0, |t| t.0);
        if timescale == 0 {
            continue;
        }
        let mut found = Vec::with_capacity(table.len());
        for sample in table.iter() {
            let (start, end) = (sample.start_offset.0, sample.end_offset.0);
            let data = usize::try_from(start)
                .ok()
                .zip(usize::try_from(end).ok())
                .and_then(|(s, e)| bytes.get(s..e))
                .ok_or(GpmfError::Truncated { end, len: bytes.len() })?;
            // GoPro also keeps other "meta" tracks (fdsc); GPMF payloads open with a device.
            if found.is_empty() && !data.starts_with(b"DEVC") {
                break;
            }
            let ms = |ticks: i64| ticks as f64 * 1000.0 / timescale as f64;
            let t0 = ms(sample.start_composition.0);
            let duration = (ms(sample.end_composition.0) - t0).max(0.0);
            found.push((t0, duration, payload(data, usize::try_from(start).unwrap_or(usize::MAX))?));
        }
        if !found.is_empty() {
            payloads = found;
            break;
        }
    }
    if payloads.is_empty() {
        return Err(GpmfError::NoTrack);
    }
    let locked = |f: &GpmfFix| f.fix != Some(FixType::NoFix) && f.lat.abs() <= 90.0 && f.lon.abs() <= 180.0;
    if !payloads.iter().flat_map(|p| &p.2).any(locked) {
        return Err(GpmfError::NoGps);
    }
    let offset = utc_offset(&payloads);
    let mut fixes: Vec<(i64, GpmfFix)> = Vec::new();
    for (t0, duration, list) in &payloads {
        for f in list.iter().filter(|f| locked(f)) {
            let spread = || {
                offset.map(|o| (o + t0 + duration * f.index as f64 / f.count.max(1) as f64).round() as i64)
            };
            if let Some(t) = f.t_ms.or_else(spread) {
                fixes.push((t, *f));
            }
        }
    }
    if fixes.is_empty() {
        return Err(GpmfError::NoTime);
    }
    fixes.sort_by_key(|(t, _)| *t);
    fixes.dedup_by_key(|(t, _)| *t);
    Ok((to_samples(&fixes), offset.map(|o| o.round() as i64)))
}

/// Refuses a file whose top-level boxes claim more bytes than it has. The demuxer sizes some
/// allocations from a box's declared length before reading it, so a 39-byte file claiming a
/// 4 GB `ftyp` would otherwise reserve 4 GB (found by fuzzing).
fn check_box_sizes(bytes: &[u8]) -> Result<(), GpmfError> {
    let len = bytes.len();
    let mut at = 0usize;
    while at + 8 <= len {
        let fourcc = &bytes[at + 4..at + 8];
        if !fourcc.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
            return Err(GpmfError::NotMp4(format!("no MP4 box at byte {at}")));
        }
        let word = |i: usize| bytes.get(i..i + 4).map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        let size = match word(at) {
            // Extends to the end of the file.
            0 => return Ok(()),
            1 => (u64::from(word(at + 8)) << 32) | u64::from(word(at + 12)),
            n => u64::from(n),
        };
        let end = (at as u64).saturating_add(size);
        if size < 8 || end > len as u64 {
            return Err(GpmfError::Truncated { end, len });
        }
        at = usize::try_from(end).unwrap_or(len);
    }
    Ok(())
}

/// The shift from the MP4 timeline to UTC: the median over payloads of GPSU minus the payload
/// start. GPSU lags or jumps now and then (the first one after a lock is often stale), while the
/// MP4 timeline is steady, so one robust shift for the whole file beats trusting each GPSU.
fn utc_offset(payloads: &[(f64, f64, Vec<GpmfFix>)]) -> Option<f64> {
    let per_payload = |want_lock: bool| -> Vec<f64> {
        payloads
            .iter()
            .filter_map(|(t0, _, list)| {
                let first = list
                    .iter()
                    .find(|f| !want_lock || matches!(f.fix, Some(FixType::Fix2d | FixType::Fix3d)))?;
                Some(first.gpsu_ms? as f64 - t0)
            })
            .collect()
    };
    // GPSU without a lock comes from the camera clock: use it only when nothing better exists.
    let mut offsets = per_payload(true);
    if offsets.is_empty() {
        offsets = per_payload(false);
    }
    offsets.sort_by(f64::total_cmp);
    offsets.get(offsets.len() / 2).copied()
}

/// GoPro reports speed but no course: heading comes from the move since the previous sample
/// (towards the next one for the first sample).
fn to_samples(fixes: &[(i64, GpmfFix)]) -> Vec<GnssSample> {
    let mut out = Vec::with_capacity(fixes.len());
    for (i, (t, f)) in fixes.iter().enumerate() {
        let pair = match (i.checked_sub(1).and_then(|j| fixes.get(j)), fixes.get(i + 1)) {
            (Some((_, prev)), _) => Some((prev, f)),
            (None, Some((_, next))) => Some((f, next)),
            (None, None) => None,
        };
        out.push(GnssSample {
            t_ms: *t,
            lat: f.lat,
            lon: f.lon,
            alt: f.alt,
            speed: f.speed_2d,
            heading: pair.map_or(0.0, |(a, b)| bearing_deg(a.lat, a.lon, b.lat, b.lon)),
            hdop: f.dop,
            satellites: None,
            fix: f.fix,
        });
    }
    out
}

/// One KLV item: key, type, struct size, repeat count, data and where the data starts.
#[derive(Debug, Clone, Copy)]
struct Klv<'a> {
    key: [u8; 4],
    kind: u8,
    size: usize,
    repeat: usize,
    data: &'a [u8],
    at: usize,
}

/// The KLV items of one nesting level; `base` is the offset of `bytes` for error messages.
fn items(bytes: &[u8], base: usize) -> Result<Vec<Klv<'_>>, GpmfError> {
    let mut out = Vec::new();
    let mut pos = 0;
    // Fewer than 8 bytes left is padding.
    while let Some(header) = bytes.get(pos..pos + 8) {
        let at = base.saturating_add(pos);
        let key = [header[0], header[1], header[2], header[3]];
        if key == [0; 4] {
            break;
        }
        if !key.iter().all(|b| b.is_ascii_alphanumeric() || *b == b' ') {
            return Err(GpmfError::Malformed { offset: at, reason: "key is not a FourCC" });
        }
        let (size, repeat) =
            (usize::from(header[5]), usize::from(u16::from_be_bytes([header[6], header[7]])));
        let len = size * repeat;
        let data = bytes
            .get(pos + 8..pos + 8 + len)
            .ok_or(GpmfError::Malformed { offset: at, reason: "item runs past the end of its container" })?;
        out.push(Klv { key, kind: header[4], size, repeat, data, at: at.saturating_add(8) });
        pos += 8 + len.div_ceil(4) * 4;
    }
    Ok(out)
}

fn payload(bytes: &[u8], base: usize) -> Result<Vec<GpmfFix>, GpmfError> {
    let mut out = Vec::new();
    for device in items(bytes, base)? {
        if &device.key != b"DEVC" || device.kind != 0 {
            continue;
        }
        for stream in items(device.data, device.at)? {
            if &stream.key == b"STRM" && stream.kind == 0 {
                read_stream(&items(stream.data, stream.at)?, &mut out)?;
            }
        }
    }
    Ok(out)
}

/// Collects the GPS5/GPS9 samples of one stream, with the sticky values before them.
fn read_stream(items: &[Klv<'_>], out: &mut Vec<GpmfFix>) -> Result<(), GpmfError> {
    let (mut scale, mut types, mut fix, mut gpsu, mut dop) = (Vec::new(), Vec::new(), None, None, None);
    for item in items {
        match &item.key {
            b"SCAL" => scale = numbers(item)?,
            b"TYPE" => types = item.data.iter().copied().take_while(|b| *b != 0).collect(),
            b"GPSF" => fix = numbers(item)?.first().map(|f| fix_type(*f)),
            b"GPSU" => gpsu = gpsu_ms(item.data),
            b"GPSP" => dop = numbers(item)?.first().map(|p| p / 100.0),
            b"GPS5" | b"GPS9" => {
                let rows = scaled(item, &types, &scale)?;
                let count = rows.len();
                for (index, r) in rows.iter().enumerate() {
                    let [lat, lon, alt, speed_2d, speed_3d, ..] = r[..] else {
                        return Err(invalid(item, "a GPS sample needs at least 5 fields".to_owned()));
                    };
                    let (t_ms, dop, fix) = if &item.key == b"GPS5" {
                        (None, dop, fix)
                    } else {
                        // GPS9 goes on with days since 2000, seconds of the day, DOP and fix.
                        let [_, _, _, _, _, days, secs, dop, fix, ..] = r[..] else {
                            return Err(invalid(item, "GPS9 needs 9 fields".to_owned()));
                        };
                        let t = 946_684_800_000.0 + days * 86_400_000.0 + secs * 1000.0;
                        (Some(t.round() as i64), Some(dop), Some(fix_type(fix)))
                    };
                    let gpsu_ms = gpsu;
                    out.push(GpmfFix {
                        t_ms,
                        gpsu_ms,
                        index,
                        count,
                        lat,
                        lon,
                        alt,
                        speed_2d,
                        speed_3d,
                        dop,
                        fix,
                    });
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// GPSF and GPS9 fix codes: 0 none, 2 2D, 3 3D.
fn fix_type(code: f64) -> FixType {
    match code as u32 {
        2 => FixType::Fix2d,
        3 => FixType::Fix3d,
        _ => FixType::NoFix,
    }
}

fn invalid(item: &Klv<'_>, reason: String) -> GpmfError {
    GpmfError::InvalidStream { key: String::from_utf8_lossy(&item.key).into_owned(), reason }
}

/// GPSU: `yymmddhhmmss.sss` UTC.
fn gpsu_ms(data: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(data.get(..16)?).ok()?;
    Some(NaiveDateTime::parse_from_str(s, "%y%m%d%H%M%S%.3f").ok()?.and_utc().timestamp_millis())
}

/// Size in bytes of one value of a GPMF type, for the numeric types.
fn type_size(kind: u8) -> Option<usize> {
    Some(match kind {
        b'b' | b'B' => 1,
        b's' | b'S' => 2,
        b'l' | b'L' | b'f' | b'q' => 4,
        b'j' | b'J' | b'd' | b'Q' => 8,
        _ => return None,
    })
}

fn value(kind: u8, b: &[u8]) -> Option<f64> {
    let arr4 = || -> Option<[u8; 4]> { b.try_into().ok() };
    let arr8 = || -> Option<[u8; 8]> { b.try_into().ok() };
    Some(match kind {
        b'b' => f64::from(i8::from_be_bytes([*b.first()?])),
        b'B' => f64::from(*b.first()?),
        b's' => f64::from(i16::from_be_bytes(b.try_into().ok()?)),
        b'S' => f64::from(u16::from_be_bytes(b.try_into().ok()?)),
        b'l' => f64::from(i32::from_be_bytes(arr4()?)),
        b'L' => f64::from(u32::from_be_bytes(arr4()?)),
        b'f' => f64::from(f32::from_be_bytes(arr4()?)),
        b'q' => f64::from(i32::from_be_bytes(arr4()?)) / 65_536.0,
        b'j' => i64::from_be_bytes(arr8()?) as f64,
        b'J' => u64::from_be_bytes(arr8()?) as f64,
        b'd' => f64::from_be_bytes(arr8()?),
        b'Q' => i64::from_be_bytes(arr8()?) as f64 / 4_294_967_296.0,
        _ => return None,
    })
}

/// All values of a simple numeric item, in order.
fn numbers(item: &Klv<'_>) -> Result<Vec<f64>, GpmfError> {
    let width = type_size(item.kind)
        .ok_or_else(|| invalid(item, format!("type {:?} is not numeric", item.kind as char)))?;
    Ok(item.data.chunks_exact(width).filter_map(|c| value(item.kind, c)).collect())
}

/// The samples of an item as rows of values divided by `SCAL` (one divisor for all fields or
/// one per field). A complex item (type `?`, as GPS9) has its field types in the stream's TYPE;
/// a plain one (GPS5) repeats its own type.
fn scaled(item: &Klv<'_>, complex: &[u8], scale: &[f64]) -> Result<Vec<Vec<f64>>, GpmfError> {
    let types = match (item.kind, type_size(item.kind)) {
        (b'?', _) => complex.to_vec(),
        (kind, Some(width)) => vec![kind; item.size / width],
        (kind, None) => return Err(invalid(item, format!("type {:?} is not numeric", kind as char))),
    };
    let widths: Vec<usize> = types
        .iter()
        .map(|t| {
            type_size(*t).ok_or_else(|| invalid(item, format!("unsupported field type {:?}", *t as char)))
        })
        .collect::<Result<_, _>>()?;
    if widths.is_empty() || widths.iter().sum::<usize>() != item.size {
        return Err(invalid(
            item,
            format!("{} bytes per sample do not fit the {} fields", item.size, widths.len()),
        ));
    }
    if scale.is_empty() || scale.iter().any(|s| *s == 0.0 || !s.is_finite()) {
        return Err(invalid(item, "missing or zero SCAL".to_owned()));
    }
    let mut rows = Vec::with_capacity(item.repeat);
    for row in item.data.chunks_exact(item.size) {
        let mut values = Vec::with_capacity(types.len());
        let mut at = 0;
        for (i, (t, w)) in types.iter().zip(&widths).enumerate() {
            let raw = row
                .get(at..at + w)
                .and_then(|b| value(*t, b))
                .ok_or_else(|| invalid(item, "short sample".to_owned()))?;
            let divisor = if scale.len() == 1 { scale.first() } else { scale.get(i) };
            values.push(raw / divisor.copied().unwrap_or(1.0));
            at += w;
        }
        rows.push(values);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {

    #[test]
    fn lying_box_sizes_are_refused_without_allocating() {
        // Fuzzer finds: an `ftyp` claiming 4 GB, and a 64-bit size claiming 7.9 EB.
        let small: &[u8] = b"\xed\xec\xec\xe8ftyp\x13\x13\x13\x13\x13\x13\x13\x13\x13\x13\x13\x13";
        // A junk first box followed by a lying `ftyp`: refused as not an MP4.
        let junk: &[u8] = b"\x00\x00\x00\x14ft0\x18\xf8\x22\x0f\xfb\xf1\x68\xb5\x7e\x00\xf1\x00\xfb\xb5\x68\x14\x00ftypm\xf9\x34\x2c";
        assert_eq!(parse_mp4(junk).expect_err("refused").code(), "gpmf_not_mp4");
        let large: &[u8] = b"\x00\x00\x00\x01ftypmp41\x20\x13\x10\x18mp41\x00\x37\x85\x3emdat";
        for bytes in [small, large] {
            assert_eq!(parse_mp4(bytes).expect_err("refused").code(), "gpmf_truncated");
        }
    }

    use super::*;
    use chrono::DateTime;

    fn data(name: &str) -> Vec<u8> {
        std::fs::read(roadhex_schemas::testdata::shared_data().join("gpmf_gopro").join(name))
            .unwrap_or_default()
    }

    fn utc(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).map(|t| t.timestamp_millis()).unwrap_or_default()
    }

    fn klv(key: &[u8; 4], kind: u8, size: u8, repeat: u16, data: &[u8]) -> Vec<u8> {
        let mut out = key.to_vec();
        out.extend([kind, size]);
        out.extend(repeat.to_be_bytes());
        out.extend(data);
        out.resize(out.len().div_ceil(4) * 4, 0);
        out
    }

    /// A container item holding `children` (already padded KLV).
    fn nest(key: &[u8; 4], children: &[u8]) -> Vec<u8> {
        klv(key, 0, 4, (children.len() / 4) as u16, children)
    }

    // Expected values were decoded by hand from the KLV bytes (big-endian i32 / SCAL).
    #[test]
    fn hero5_payload() {
        let fixes = parse_payload(&data("gpmf-parser/hero5.raw")).expect("parse");
        assert_eq!(fixes.len(), 18);
        let first = fixes[0];
        assert_eq!((first.index, first.count), (0, 18));
        assert!((first.lat - 33.126_496_9).abs() < 1e-9 && (first.lon + 117.327_354_2).abs() < 1e-9);
        assert!(
            (first.alt + 20.184).abs() < 1e-9
                && (first.speed_2d - 0.167).abs() < 1e-9
                && (first.speed_3d - 0.19).abs() < 1e-9
        );
        assert_eq!((first.fix, first.dop, first.t_ms), (Some(FixType::Fix3d), Some(6.06), None));
        assert_eq!(first.gpsu_ms, Some(utc("2017-04-17T17:31:03Z")));
        let last = fixes[17];
        assert!((last.lat - 33.126_497_3).abs() < 1e-9 && (last.lon + 117.327_357_9).abs() < 1e-9);
    }

    #[test]
    fn other_cameras_payloads() {
        let hero6 = parse_payload(&data("gpmf-parser/hero6.raw")).expect("hero6");
        assert_eq!(hero6.len(), 17);
        assert_eq!((hero6[0].fix, hero6[0].dop), (Some(FixType::NoFix), Some(99.99)));
        assert_eq!(hero6[0].gpsu_ms, Some(utc("2018-01-24T19:28:01.699Z")));
        assert!((hero6[0].lat - 33.126_554_2).abs() < 1e-9 && (hero6[0].lon + 117.327_129_9).abs() < 1e-9);

        // Seventeen payloads back to back, all with a 3D lock.
        let hero7 = parse_payload(&data("gopro-telemetry/hero7.raw")).expect("hero7");
        assert_eq!(hero7.len(), 308);
        assert!(hero7.iter().all(|f| f.fix == Some(FixType::Fix3d)));
        assert_eq!(hero7[0].gpsu_ms, Some(utc("2019-01-03T16:33:34.094Z")));
        let last = hero7[307];
        assert!(
            (last.lat - 42.342_342_9).abs() < 1e-9
                && (last.lon + 8.752_681).abs() < 1e-9
                && (last.alt - 56.686).abs() < 1e-9
        );
        assert_eq!((last.index, last.count, last.dop), (16, 17, Some(1.87)));

        assert_eq!(parse_payload(&data("gopro-telemetry/consecutive1.raw")).expect("c1").len(), 41);
        assert_eq!(parse_payload(&data("gopro-telemetry/consecutive2.raw")).expect("c2").len(), 59);
        // The Karma drone logs its own GPS (GPRI), not GPS5: no camera GPS here.
        assert!(parse_payload(&data("gpmf-parser/karma.raw")).expect("karma").is_empty());
    }

    #[test]
    fn gps9_has_a_time_per_sample() {
        let scal: Vec<u8> = [10_000_000i32, 10_000_000, 1000, 1000, 100, 1, 1000, 100, 1]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        let mut row = Vec::new();
        // 52.5 N, 13.25 E, 34.5 m, 10 m/s, 10.1 m/s, day 8766 (2024-01-01), 12:00:00.250, DOP 1.2, 3D.
        for v in [525_000_000i32, 132_500_000, 34_500, 10_000, 1010, 8766, 43_200_250] {
            row.extend(v.to_be_bytes());
        }
        row.extend(120u16.to_be_bytes());
        row.extend(3u16.to_be_bytes());
        let stream = [
            klv(b"TYPE", b'c', 1, 9, b"lllllllSS"),
            klv(b"SCAL", b'l', 4, 9, &scal),
            klv(b"GPS9", b'?', 32, 1, &row),
        ]
        .concat();
        let fixes = parse_payload(&nest(b"DEVC", &nest(b"STRM", &stream))).expect("parse");
        assert_eq!(fixes.len(), 1);
        let f = fixes[0];
        assert_eq!(f.t_ms, Some(utc("2024-01-01T12:00:00.250Z")));
        assert!(
            (f.lat - 52.5).abs() < 1e-12 && (f.lon - 13.25).abs() < 1e-12 && (f.alt - 34.5).abs() < 1e-12
        );
        assert_eq!((f.speed_2d, f.speed_3d, f.dop, f.fix), (10.0, 10.1, Some(1.2), Some(FixType::Fix3d)));
    }

    #[test]
    fn gopro_max_mp4() {
        // exiftool -ee: 11 payloads, 191 GPS5 samples, GPSP 154 (one 177), 3D fix; GPSU per
        // payload 23:45:14.000 (stale, before the lock settled), then 16.470, 17.460 … 25.435.
        let s = parse_mp4(&data("gpmf-parser/max-heromode.mp4")).expect("parse");
        assert_eq!(s.len(), 191);
        assert!(s.windows(2).all(|w| w[0].t_ms < w[1].t_ms));
        assert!((s[0].lat - 33.126_77).abs() < 1e-9 && (s[0].lon + 117.327_343_6).abs() < 1e-9);
        assert!((s[0].alt + 22.959).abs() < 1e-9 && (s[0].speed - 1.046).abs() < 1e-9);
        assert_eq!((s[0].hdop, s[0].fix, s[0].satellites), (Some(1.54), Some(FixType::Fix3d), None));
        let last = s[190];
        assert!((last.lat - 33.126_667_4).abs() < 1e-9 && (last.lon + 117.327_273_4).abs() < 1e-9);
        // First samples of payloads 2..11 (exiftool's order) against their GPSU.
        let starts = [17, 35, 54, 72, 90, 109, 127, 145, 163, 181];
        let gpsu = [16_470, 17_460, 18_450, 19_440, 20_430, 21_420, 22_410, 23_400, 24_445, 25_435];
        let minute = utc("2019-11-18T23:45:00Z");
        let mut worst = 0;
        for (i, g) in starts.iter().zip(gpsu) {
            worst = worst.max((s[*i].t_ms - minute - g).abs());
        }
        eprintln!("max-heromode.mp4: {} samples, payload starts vs GPSU worst {worst} ms", s.len());
        assert!(worst <= 60, "{worst}");
        // The camera moves south-east at about 1.2 m/s; derived headings agree with that.
        let east_south = s.iter().filter(|p| (90.0..=180.0).contains(&p.heading)).count();
        assert!(east_south > s.len() / 2, "{east_south}");
    }

    #[test]
    fn refusals() {
        assert_eq!(parse_mp4(b"").expect_err("must be refused").code(), "gpmf_not_mp4");
        assert_eq!(
            parse_mp4(&data("gpmf-parser/hero5.raw")).expect_err("must be refused").code(),
            "gpmf_not_mp4"
        );
        let video = std::fs::read(
            roadhex_schemas::testdata::shared_data().join("dashcam_udacity/vehicle_detection/test_video.mp4"),
        )
        .unwrap_or_default();
        assert_eq!(parse_mp4(&video).expect_err("must be refused").code(), "gpmf_no_track");
        let mp4 = data("gpmf-parser/max-heromode.mp4");
        // A cut file is caught by its box sizes before the demuxer reads it.
        assert_eq!(
            parse_mp4(&mp4[..mp4.len() - 100_000]).expect_err("must be refused").code(),
            "gpmf_truncated"
        );

        let bad = [b"DEVC".as_slice(), &[0, 4, 0, 9]].concat();
        assert_eq!(parse_payload(&bad).expect_err("must be refused").code(), "gpmf_malformed");
        let no_scale = nest(b"DEVC", &nest(b"STRM", &klv(b"GPS5", b'l', 20, 1, &[0; 20])));
        assert_eq!(parse_payload(&no_scale).expect_err("must be refused").code(), "gpmf_invalid_stream");
        assert!(parse_payload(&[]).expect("empty").is_empty());
    }

    #[test]
    fn mangled_payloads_never_panic() {
        let base = data("gopro-telemetry/hero7.raw");
        let mut seed = 0x1234_5678_9abc_def1u64;
        for _ in 0..300 {
            let mut b = base.get(..8192).unwrap_or_default().to_vec();
            for _ in 0..6 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                if let Some(x) = b.get_mut((seed % 8192) as usize) {
                    *x = (seed >> 24) as u8;
                }
            }
            let _ = parse_payload(&b);
        }
        let mp4 = data("gpmf-parser/max-heromode.mp4");
        for cut in [0, 8, 100, 1000, 100_000, 1_000_000, 3_000_000] {
            let _ = parse_mp4(mp4.get(..cut).unwrap_or_default());
        }
        // Damage the sample tables and headers in the moov box.
        let moov = mp4.windows(4).rposition(|w| w == b"moov").unwrap_or_default();
        let span = (mp4.len() - moov) as u64;
        for _ in 0..60 {
            let mut b = mp4.clone();
            for _ in 0..4 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                if let Some(x) = b.get_mut(moov + (seed % span) as usize) {
                    *x = (seed >> 24) as u8;
                }
            }
            let _ = parse_mp4(&b);
        }
    }
}
