//! NMEA 0183 logs: GGA, RMC, GLL, VTG, GSA, GSV and ZDA from any talker (GP, GN, GL, GA, BD, GB,
//! QZ…), checksums required. Sentences sharing a time of day form one epoch and become one sample;
//! the untimed ones (VTG, GSA, GSV) join the epoch in progress. Dates come from RMC or ZDA.
//!
//! GPS week rollover: the date is taken as the receiver sends it. A receiver with the 10-bit week
//! bug reports dates a multiple of 1024 weeks early, but a parser of bytes has no trusted clock to
//! tell that from an old log (gpsd guesses from its build date and so shifts correct 2014 logs to
//! 2034). Callers that know roughly when a capture was made (its upload time) can apply
//! [`unroll_week_rollover`].

use chrono::{Days, NaiveDate};
use roadhex_schemas::geo::{bearing_deg, haversine_m};
use roadhex_schemas::{FixType, GnssSample};
use thiserror::Error;

const DAY_MS: u32 = 86_400_000;
const KNOT_MS: f64 = 1852.0 / 3600.0;
/// One GPS week-number era: 1024 weeks.
pub const GPS_ERA_MS: i64 = 1024 * 7 * 86_400_000;

#[derive(Debug, Clone, PartialEq)]
pub struct NmeaTrack {
    /// One sample per epoch with a valid fix, strictly increasing in time.
    pub samples: Vec<GnssSample>,
    /// Lines that are not a well-formed sentence, or a supported sentence with unreadable fields.
    /// Comment (`#`) and blank lines and unsupported sentence types are not counted.
    pub skipped_lines: usize,
    /// Sentences whose checksum did not match (or that had none).
    pub bad_checksums: usize,
    /// Fixes dropped because no RMC or ZDA date followed or preceded them.
    pub undated_fixes: usize,
    /// Epochs in which the receiver said it had no fix (GGA quality 0, RMC/GLL status V, GSA mode 1).
    pub no_fix_epochs: usize,
}

#[derive(Debug, Error, Clone, PartialEq)]
pub enum NmeaError {
    #[error(
        "no valid NMEA sentence found ({skipped_lines} malformed lines, {bad_checksums} bad checksums): \
         upload a text NMEA 0183 log with $..*hh sentences"
    )]
    NotNmea { skipped_lines: usize, bad_checksums: usize },
    #[error(
        "NMEA log has no position fix ({no_fix_epochs} epochs without fix): record with the receiver locked"
    )]
    NoFix { no_fix_epochs: usize },
    #[error(
        "{undated_fixes} fixes have no date: the log needs RMC or ZDA sentences (enable them on the receiver)"
    )]
    NoDate { undated_fixes: usize },
}

impl NmeaError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotNmea { .. } => "nmea_not_nmea",
            Self::NoFix { .. } => "nmea_no_fix",
            Self::NoDate { .. } => "nmea_no_date",
        }
    }
}

/// Moves `t_ms` forward by whole 1024-week eras while it lies more than half an era (about
/// 9.8 years) before `reference_ms`, undoing the GPS week rollover of old receivers.
pub fn unroll_week_rollover(t_ms: i64, reference_ms: i64) -> i64 {
    let behind = reference_ms.saturating_sub(t_ms);
    if behind <= GPS_ERA_MS / 2 {
        return t_ms;
    }
    let eras = behind.saturating_add(GPS_ERA_MS / 2) / GPS_ERA_MS;
    t_ms.saturating_add(eras.saturating_mul(GPS_ERA_MS))
}

/// Parses an NMEA 0183 log. Bad lines are counted and skipped; only a log with no usable
/// sample at all is an error.
pub fn parse(bytes: &[u8]) -> Result<NmeaTrack, NmeaError> {
    let mut p = Parser::default();
    for line in bytes.split(|b| *b == b'\n' || *b == b'\r') {
        p.line(line);
    }
    p.flush();
    let Parser { mut fixes, held, skipped_lines, bad_checksums, no_fix_epochs, sentences, .. } = p;
    let undated_fixes = held.len();
    if fixes.is_empty() {
        return Err(if sentences == 0 {
            NmeaError::NotNmea { skipped_lines, bad_checksums }
        } else if undated_fixes > 0 {
            NmeaError::NoDate { undated_fixes }
        } else {
            NmeaError::NoFix { no_fix_epochs }
        });
    }
    fixes.sort_by_key(|f| f.t_ms);
    fixes.dedup_by(|later, first| {
        if later.t_ms != first.t_ms {
            return false;
        }
        first.speed = first.speed.or(later.speed);
        first.heading = first.heading.or(later.heading);
        first.hdop = first.hdop.or(later.hdop);
        first.satellites = first.satellites.or(later.satellites);
        first.fix = first.fix.or(later.fix);
        true
    });
    Ok(NmeaTrack { samples: to_samples(&fixes), skipped_lines, bad_checksums, undated_fixes, no_fix_epochs })
}

/// A dated fix whose speed and heading may still be unknown.
#[derive(Debug, Clone, Copy)]
struct Fix {
    t_ms: i64,
    lat: f64,
    lon: f64,
    alt: f64,
    speed: Option<f64>,
    heading: Option<f64>,
    hdop: Option<f64>,
    satellites: Option<u8>,
    fix: Option<FixType>,
}

/// Fills unreported speed and heading from the move since the previous fix (towards the next
/// one for the first fix), as gpsd does.
fn to_samples(fixes: &[Fix]) -> Vec<GnssSample> {
    let mut out = Vec::with_capacity(fixes.len());
    for (i, f) in fixes.iter().enumerate() {
        let pair = match (i.checked_sub(1).and_then(|j| fixes.get(j)), fixes.get(i + 1)) {
            (Some(prev), _) => Some((prev, f)),
            (None, Some(next)) => Some((f, next)),
            (None, None) => None,
        };
        let derived_speed = || {
            pair.map_or(0.0, |(a, b)| {
                let dt = (b.t_ms - a.t_ms) as f64 / 1000.0;
                if dt > 0.0 { haversine_m(a.lat, a.lon, b.lat, b.lon) / dt } else { 0.0 }
            })
        };
        let derived_heading = || pair.map_or(0.0, |(a, b)| bearing_deg(a.lat, a.lon, b.lat, b.lon));
        out.push(GnssSample {
            t_ms: f.t_ms,
            lat: f.lat,
            lon: f.lon,
            alt: f.alt,
            speed: f.speed.unwrap_or_else(derived_speed),
            heading: f.heading.unwrap_or_else(derived_heading),
            hdop: f.hdop,
            satellites: f.satellites,
            fix: f.fix,
        });
    }
    out
}

/// Everything reported for one time of day.
#[derive(Debug, Default)]
struct Epoch {
    tod_ms: Option<u32>,
    date: Option<NaiveDate>,
    /// Position and the rank of its source (GGA 3, RMC 2, GLL 1), so GGA wins.
    pos: Option<(f64, f64, u8)>,
    alt: Option<f64>,
    speed: Option<f64>,
    heading: Option<f64>,
    hdop_gga: Option<f64>,
    hdop_gsa: Option<f64>,
    sats_gga: Option<u32>,
    sats_gsa: Option<u32>,
    in_view: Vec<([u8; 2], u32)>,
    fix: Option<FixType>,
    no_fix: bool,
}

/// A fix waiting for a date.
#[derive(Debug)]
struct Held {
    tod_ms: u32,
    fix: Fix,
}

#[derive(Debug, Default)]
struct Parser {
    epoch: Epoch,
    date: Option<NaiveDate>,
    last_tod: Option<u32>,
    fixes: Vec<Fix>,
    held: Vec<Held>,
    sentences: usize,
    skipped_lines: usize,
    bad_checksums: usize,
    no_fix_epochs: usize,
}

/// The data of one sentence, already validated.
#[derive(Debug, Default)]
struct Part {
    tod_ms: Option<u32>,
    date: Option<NaiveDate>,
    pos: Option<(f64, f64, u8)>,
    alt: Option<f64>,
    speed: Option<f64>,
    heading: Option<f64>,
    hdop_gga: Option<f64>,
    hdop_gsa: Option<f64>,
    sats_gga: Option<u32>,
    sats_gsa: Option<u32>,
    in_view: Option<u32>,
    fix: Option<FixType>,
    no_fix: bool,
}

/// A supported sentence with a field that cannot be read.
#[derive(Debug)]
struct Malformed;

type Field<T> = Result<T, Malformed>;

impl Parser {
    fn line(&mut self, raw: &[u8]) {
        let line = raw.trim_ascii();
        if line.is_empty() || line.starts_with(b"#") {
            return;
        }
        // Loggers sometimes glue noise before a sentence: start at its `$`.
        let Some(start) = line.iter().position(|b| *b == b'$') else {
            self.skipped_lines += 1;
            return;
        };
        let sentence = &line[start + 1..];
        let Some(star) = sentence.iter().rposition(|b| *b == b'*') else {
            self.bad_checksums += 1;
            return;
        };
        let (body, sum) = (&sentence[..star], &sentence[star + 1..]);
        let want = std::str::from_utf8(sum).ok().and_then(|s| u8::from_str_radix(s, 16).ok());
        if sum.len() != 2 || want != Some(body.iter().fold(0u8, |acc, b| acc ^ b)) {
            self.bad_checksums += 1;
            return;
        }
        let Ok(body) = std::str::from_utf8(body) else {
            self.skipped_lines += 1;
            return;
        };
        let fields: Vec<&str> = body.split(',').collect();
        let address = fields.first().copied().unwrap_or_default().as_bytes();
        // Proprietary ($P…) and query sentences carry nothing we read.
        if address.len() != 5 || address.first() == Some(&b'P') || !address.iter().all(u8::is_ascii_uppercase)
        {
            self.sentences += 1;
            return;
        }
        let talker = [address[0], address[1]];
        let part = match &address[2..] {
            b"GGA" => gga(&fields),
            b"RMC" => rmc(&fields),
            b"GLL" => gll(&fields),
            b"VTG" => vtg(&fields),
            b"GSA" => gsa(&fields),
            b"GSV" => gsv(&fields),
            b"ZDA" => zda(&fields),
            _ => {
                self.sentences += 1;
                return;
            }
        };
        match part {
            Ok(part) => {
                self.sentences += 1;
                self.add(talker, part);
            }
            Err(Malformed) => self.skipped_lines += 1,
        }
    }

    fn add(&mut self, talker: [u8; 2], part: Part) {
        if let Some(tod) = part.tod_ms {
            match self.epoch.tod_ms {
                Some(current) if current != tod => self.flush(),
                _ => {}
            }
            self.epoch.tod_ms = Some(tod);
        }
        let e = &mut self.epoch;
        e.date = part.date.or(e.date);
        if let Some(pos) = part.pos
            && e.pos.is_none_or(|(_, _, rank)| pos.2 > rank)
        {
            e.pos = Some(pos);
        }
        e.alt = part.alt.or(e.alt);
        e.speed = part.speed.or(e.speed);
        e.heading = part.heading.or(e.heading);
        e.hdop_gga = part.hdop_gga.or(e.hdop_gga);
        e.hdop_gsa = part.hdop_gsa.or(e.hdop_gsa);
        e.sats_gga = part.sats_gga.or(e.sats_gga);
        // Multi-constellation receivers send one GSA per system: their used satellites add up.
        if let Some(n) = part.sats_gsa {
            e.sats_gsa = Some(e.sats_gsa.unwrap_or(0).saturating_add(n));
        }
        if let Some(n) = part.in_view {
            match e.in_view.iter_mut().find(|(t, _)| *t == talker) {
                Some(entry) => entry.1 = n,
                None => e.in_view.push((talker, n)),
            }
        }
        e.fix = match (e.fix, part.fix) {
            (Some(FixType::Fix3d), _) | (_, Some(FixType::Fix3d)) => Some(FixType::Fix3d),
            (Some(FixType::Fix2d), _) | (_, Some(FixType::Fix2d)) => Some(FixType::Fix2d),
            (a, b) => a.or(b),
        };
        e.no_fix |= part.no_fix;
    }

    /// Closes the epoch in progress: dates it and keeps it if it holds a valid fix.
    fn flush(&mut self) {
        let e = std::mem::take(&mut self.epoch);
        let Some(tod) = e.tod_ms else { return };
        let date = match e.date {
            Some(d) => {
                self.resolve_held(d, tod);
                Some(d)
            }
            // Past midnight without a new RMC/ZDA yet.
            None => match (self.date, self.last_tod) {
                (Some(d), Some(last)) if tod + DAY_MS / 2 < last => d.checked_add_days(Days::new(1)),
                (d, _) => d,
            },
        };
        self.date = date.or(self.date);
        self.last_tod = Some(tod);
        if e.no_fix || e.fix == Some(FixType::NoFix) {
            self.no_fix_epochs += 1;
            return;
        }
        let Some((lat, lon, _)) = e.pos else { return };
        let satellites = e
            .sats_gga
            .or(e.sats_gsa)
            .or_else(|| {
                (!e.in_view.is_empty())
                    .then(|| e.in_view.iter().fold(0u32, |acc, (_, n)| acc.saturating_add(*n)))
            })
            .map(|n| u8::try_from(n).unwrap_or(u8::MAX));
        let fix = Fix {
            t_ms: 0,
            lat,
            lon,
            alt: e.alt.unwrap_or(0.0),
            speed: e.speed,
            heading: e.heading,
            hdop: e.hdop_gga.or(e.hdop_gsa),
            satellites,
            fix: e.fix,
        };
        match date.and_then(|d| unix_ms(d, tod)) {
            Some(t_ms) => self.fixes.push(Fix { t_ms, ..fix }),
            None => self.held.push(Held { tod_ms: tod, fix }),
        }
    }

    /// Dates the fixes seen before the first date: the same day, or the day before when their
    /// time of day is later (they were logged before midnight).
    fn resolve_held(&mut self, date: NaiveDate, tod: u32) {
        for h in std::mem::take(&mut self.held) {
            let day = if h.tod_ms > tod { date.checked_sub_days(Days::new(1)) } else { Some(date) };
            match day.and_then(|d| unix_ms(d, h.tod_ms)) {
                Some(t_ms) => self.fixes.push(Fix { t_ms, ..h.fix }),
                None => self.held.push(h),
            }
        }
    }
}

fn unix_ms(date: NaiveDate, tod_ms: u32) -> Option<i64> {
    Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis() + i64::from(tod_ms))
}

fn field<'a>(fields: &[&'a str], i: usize) -> &'a str {
    fields.get(i).copied().unwrap_or_default().trim()
}

/// An optional number: empty is `None`, garbage is malformed.
fn num(fields: &[&str], i: usize) -> Field<Option<f64>> {
    let s = field(fields, i);
    if s.is_empty() {
        return Ok(None);
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite()).map(Some).ok_or(Malformed)
}

/// `hhmmss[.sss]` to milliseconds since midnight; empty is `None`.
fn time_of_day(fields: &[&str], i: usize) -> Field<Option<u32>> {
    let s = field(fields, i);
    if s.is_empty() {
        return Ok(None);
    }
    let (hms, frac) = s.split_once('.').unwrap_or((s, ""));
    if hms.len() != 6 || !hms.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(Malformed);
    }
    let two = |k: usize| hms.get(k..k + 2).and_then(|d| d.parse::<u32>().ok()).ok_or(Malformed);
    let (h, m, sec) = (two(0)?, two(2)?, two(4)?);
    if h > 23 || m > 59 || sec > 60 {
        return Err(Malformed);
    }
    let ms = if frac.is_empty() {
        0.0
    } else {
        format!("0.{frac}").parse::<f64>().map_err(|_| Malformed)? * 1000.0
    };
    Ok(Some(((h * 60 + m) * 60 + sec) * 1000 + (ms.round() as u32).min(999)))
}

/// `ddmm.mmmm` / `dddmm.mmmm` plus hemisphere to signed degrees; both empty is `None`.
fn coord(fields: &[&str], i: usize, max_deg: f64) -> Field<Option<f64>> {
    let (value, hemi) = (field(fields, i), field(fields, i + 1));
    if value.is_empty() && hemi.is_empty() {
        return Ok(None);
    }
    let v: f64 = value.parse().map_err(|_| Malformed)?;
    let deg = (v / 100.0).trunc();
    let min = v - deg * 100.0;
    let abs = deg + min / 60.0;
    if !(0.0..60.0).contains(&min) || !(0.0..=max_deg).contains(&abs) {
        return Err(Malformed);
    }
    match hemi {
        "N" | "E" => Ok(Some(abs)),
        "S" | "W" => Ok(Some(-abs)),
        _ => Err(Malformed),
    }
}

fn position(fields: &[&str], i: usize, rank: u8) -> Field<Option<(f64, f64, u8)>> {
    Ok(match (coord(fields, i, 90.0)?, coord(fields, i + 2, 180.0)?) {
        (Some(lat), Some(lon)) => Some((lat, lon, rank)),
        (None, None) => None,
        _ => return Err(Malformed),
    })
}

fn speed_knots(fields: &[&str], i: usize) -> Field<Option<f64>> {
    Ok(num(fields, i)?.filter(|v| *v >= 0.0).map(|kn| kn * KNOT_MS))
}

fn course(fields: &[&str], i: usize) -> Field<Option<f64>> {
    Ok(num(fields, i)?.map(|c| c.rem_euclid(360.0)))
}

/// FAA mode indicator (NMEA 2.3+): `N` means the data is not valid.
fn mode_invalid(fields: &[&str], i: usize) -> bool {
    field(fields, i) == "N"
}

fn count(fields: &[&str], i: usize) -> Field<Option<u32>> {
    let s = field(fields, i);
    if s.is_empty() {
        return Ok(None);
    }
    s.parse().map(Some).map_err(|_| Malformed)
}

fn gga(f: &[&str]) -> Field<Part> {
    let quality = count(f, 6)?;
    let alt = num(f, 9)?;
    Ok(Part {
        tod_ms: time_of_day(f, 1)?,
        pos: position(f, 2, 3)?,
        no_fix: quality == Some(0),
        sats_gga: count(f, 7)?,
        hdop_gga: num(f, 8)?,
        // GGA gives height above mean sea level plus the geoid separation: their sum is the
        // ellipsoidal height the schema wants. Without a separation, MSL is the best we have.
        alt: alt.map(|a| a + num(f, 11).ok().flatten().unwrap_or(0.0)),
        ..Part::default()
    })
}

fn rmc(f: &[&str]) -> Field<Part> {
    let date = match field(f, 9) {
        "" => None,
        d => Some(ddmmyy(d)?),
    };
    Ok(Part {
        tod_ms: time_of_day(f, 1)?,
        no_fix: field(f, 2) != "A" || mode_invalid(f, 12),
        pos: position(f, 3, 2)?,
        speed: speed_knots(f, 7)?,
        heading: course(f, 8)?,
        date,
        ..Part::default()
    })
}

/// RMC's `ddmmyy`; two-digit years 80–99 are 1980–1999 (GPS began in 1980).
fn ddmmyy(s: &str) -> Field<NaiveDate> {
    if s.len() != 6 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Malformed);
    }
    let two = |k: usize| s.get(k..k + 2).and_then(|d| d.parse::<u32>().ok()).ok_or(Malformed);
    let yy = two(4)? as i32;
    let year = if yy >= 80 { 1900 + yy } else { 2000 + yy };
    NaiveDate::from_ymd_opt(year, two(2)?, two(0)?).ok_or(Malformed)
}

fn gll(f: &[&str]) -> Field<Part> {
    Ok(Part {
        pos: position(f, 1, 1)?,
        tod_ms: time_of_day(f, 5)?,
        // Status appeared in NMEA 2.0; older GLL has none and means a fix.
        no_fix: field(f, 6) == "V" || mode_invalid(f, 7),
        ..Part::default()
    })
}

fn vtg(f: &[&str]) -> Field<Part> {
    // NMEA 2.0+: track,T,track,M,knots,N,kmh,K[,mode]; older receivers omit the unit letters.
    let labelled = field(f, 2) == "T";
    let (track, knots, kmh, mode) = if labelled { (1, 5, 7, 9) } else { (1, 3, 4, 5) };
    if mode_invalid(f, mode) {
        return Ok(Part::default());
    }
    let speed = match speed_knots(f, knots)? {
        Some(s) => Some(s),
        None => num(f, kmh)?.filter(|v| *v >= 0.0).map(|v| v / 3.6),
    };
    Ok(Part { speed, heading: course(f, track)?, ..Part::default() })
}

fn gsa(f: &[&str]) -> Field<Part> {
    let fix = match field(f, 2) {
        "1" => Some(FixType::NoFix),
        "2" => Some(FixType::Fix2d),
        "3" => Some(FixType::Fix3d),
        "" => None,
        _ => return Err(Malformed),
    };
    let used = (3..=14).filter(|&i| !field(f, i).is_empty()).count() as u32;
    Ok(Part { fix, sats_gsa: (used > 0).then_some(used), hdop_gsa: num(f, 16)?, ..Part::default() })
}

fn gsv(f: &[&str]) -> Field<Part> {
    Ok(Part { in_view: count(f, 3)?, ..Part::default() })
}

fn zda(f: &[&str]) -> Field<Part> {
    let (day, month, year) = (count(f, 2)?, count(f, 3)?, count(f, 4)?);
    let date = match (day, month, year) {
        (Some(d), Some(m), Some(y)) => {
            Some(NaiveDate::from_ymd_opt(i32::try_from(y).map_err(|_| Malformed)?, m, d).ok_or(Malformed)?)
        }
        _ => None,
    };
    Ok(Part { tod_ms: time_of_day(f, 1)?, date, ..Part::default() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    fn dir() -> std::path::PathBuf {
        roadhex_schemas::testdata::shared_data().join("nmea_gpsd")
    }

    /// Appends a valid checksum to a sentence body given without `$`.
    fn sentence(body: &str) -> String {
        let sum = body.bytes().fold(0u8, |acc, b| acc ^ b);
        format!("${body}*{sum:02X}\n")
    }

    #[test]
    fn combines_an_epoch_and_derives_motion() {
        let log = [
            sentence("GPGGA,120000.00,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"),
            sentence("GNGSA,A,3,04,05,09,12,24,,,,,,,,2.5,1.3,2.1"),
            sentence("GPGSV,3,1,11,03,03,111,00,04,15,270,00,06,01,010,00,13,06,292,00"),
            sentence("GLGSV,1,1,04,65,03,111,00,66,15,270,00,67,01,010,00,68,06,292,00"),
            sentence("GPRMC,120000.00,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W,A"),
            sentence("GPGGA,120001.00,4807.038,N,01131.100,E,1,08,0.9,545.4,M,46.9,M,,"),
            sentence("GPGSA,A,3,04,05,09,12,24,,,,,,,,2.5,1.3,2.1"),
        ]
        .concat();
        let t = parse(log.as_bytes()).expect("parse");
        assert_eq!(t.samples.len(), 2);
        let a = t.samples[0];
        assert_eq!(a.t_ms, 764_424_000_000);
        assert!((a.lat - 48.1173).abs() < 1e-9 && (a.lon - 11.516_666_666).abs() < 1e-6);
        assert!((a.alt - 592.3).abs() < 1e-9);
        assert!((a.speed - 22.4 * KNOT_MS).abs() < 1e-9 && (a.heading - 84.4).abs() < 1e-9);
        assert_eq!((a.hdop, a.satellites, a.fix), (Some(0.9), Some(8), Some(FixType::Fix3d)));
        // The second epoch has no RMC: speed and heading come from the positions.
        let b = t.samples[1];
        assert!((b.speed - 124.0).abs() < 1.0, "{}", b.speed);
        assert!((b.heading - 90.0).abs() < 0.1, "{}", b.heading);
    }

    #[test]
    fn satellites_fall_back_from_used_to_in_view() {
        let log = [
            sentence("GPRMC,120000.00,A,4807.038,N,01131.000,E,0.0,0.0,230394,,"),
            sentence("GPGSV,3,1,11,03,03,111,00"),
            sentence("GLGSV,1,1,04,65,03,111,00"),
            sentence("GPRMC,120001.00,A,4807.038,N,01131.000,E,0.0,0.0,230394,,"),
            sentence("GNGSA,A,2,04,05,09,,,,,,,,,,2.5,1.3,2.1"),
            sentence("GNGSA,A,2,65,66,,,,,,,,,,,2.5,1.3,2.1"),
        ]
        .concat();
        let t = parse(log.as_bytes()).expect("parse");
        assert_eq!(t.samples[0].satellites, Some(15));
        assert_eq!(
            (t.samples[1].satellites, t.samples[1].fix, t.samples[1].hdop),
            (Some(5), Some(FixType::Fix2d), Some(1.3))
        );
    }

    #[test]
    fn held_fixes_get_the_first_date_and_midnight_rolls_over() {
        let log = [
            sentence("GPGGA,235959.00,4807.038,N,01131.000,E,1,08,0.9,545.4,M,,M,,"),
            sentence("GPRMC,000000.00,A,4807.038,N,01131.000,E,1.0,10.0,010124,,"),
            sentence("GPGGA,000001.00,4807.038,N,01131.000,E,1,08,0.9,545.4,M,,M,,"),
        ]
        .concat();
        let t = parse(log.as_bytes()).expect("parse");
        let day = 1_704_067_200_000; // 2024-01-01T00:00:00Z
        let times: Vec<i64> = t.samples.iter().map(|s| s.t_ms - day).collect();
        assert_eq!(times, vec![-1000, 0, 1000]);

        let log = [
            sentence("GPRMC,235959.50,A,4807.038,N,01131.000,E,1.0,10.0,311223,,"),
            sentence("GPGGA,000000.50,4807.038,N,01131.000,E,1,08,0.9,545.4,M,,M,,"),
        ]
        .concat();
        let t = parse(log.as_bytes()).expect("parse");
        assert_eq!(t.samples[1].t_ms - day, 500);
    }

    #[test]
    fn bad_lines_are_counted_not_fatal() {
        let log = [
            "garbage\n".to_owned(),
            "$GPGGA,120000.00,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*00\n".to_owned(),
            "$GPGGA,120000.00,4807.038,N\n".to_owned(),
            sentence("GPRMC,12xx00,A,4807.038,N,01131.000,E,0.0,0.0,230394,,"),
            sentence("GPRMC,120000.00,A,9107.038,N,01131.000,E,0.0,0.0,230394,,"),
            sentence("GPRMC,120001.00,A,4807.038,N,01131.000,E,0.0,0.0,230394,,"),
            "\u{1}\u{2}\u{ff}$\n".to_owned(),
        ]
        .concat();
        let t = parse(log.as_bytes()).expect("parse");
        assert_eq!(t.samples.len(), 1);
        assert_eq!((t.skipped_lines, t.bad_checksums), (3, 3));
    }

    #[test]
    fn refusals() {
        assert_eq!(parse(b"").expect_err("must be refused").code(), "nmea_not_nmea");
        assert_eq!(parse(&[0xff, 0x00, b'$', b'*']).expect_err("must be refused").code(), "nmea_not_nmea");
        let no_fix = sentence("GPRMC,120000.00,V,,,,,,,230394,,");
        assert_eq!(parse(no_fix.as_bytes()).expect_err("must be refused").code(), "nmea_no_fix");
        let no_date = sentence("GPGGA,120000.00,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,");
        let err = parse(no_date.as_bytes()).expect_err("must be refused");
        assert_eq!(err, NmeaError::NoDate { undated_fixes: 1 });
        assert_eq!(err.code(), "nmea_no_date");
    }

    #[test]
    fn dates_are_taken_as_sent() {
        // RMC date 260514: 2014-05-26, where gpsd's harness printed 2034-01-09 (1024 weeks on).
        let t = parse(&std::fs::read(dir().join("bu353-glonass.log")).unwrap_or_default()).expect("parse");
        let first = t.samples.first().map(|s| s.t_ms).unwrap_or_default();
        assert_eq!(
            first,
            DateTime::parse_from_rfc3339("2014-05-26T08:14:11Z").map(|d| d.timestamp_millis()).unwrap_or(0)
        );
        assert_eq!(unroll_week_rollover(first, first), first);
    }

    #[test]
    fn rollover_helper() {
        let t = 933_379_200_000; // 1999-07-31, what a rolled-over receiver says on 2019-03-17
        let now = 1_700_000_000_000;
        assert_eq!(unroll_week_rollover(t, now), t + GPS_ERA_MS);
        assert_eq!(unroll_week_rollover(now - 1000, now), now - 1000);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let base = std::fs::read(dir().join("rx210.log")).unwrap_or_default();
        for _ in 0..200 {
            let mut b = base.clone();
            for _ in 0..50 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                if let Some(x) = b.get_mut((seed % 9663) as usize) {
                    *x = (seed >> 32) as u8;
                }
            }
            let _ = parse(&b);
        }
    }

    /// What gpsd reported for one fix in a `.chk` file.
    struct Expected {
        tod_ms: u32,
        t_ms: Option<i64>,
        lat: f64,
        lon: f64,
        speed: Option<f64>,
        track: Option<f64>,
    }

    /// Reads gpsd's TPV reports. A TPV follows the sentence that completed it; when gpsd knew no
    /// date it has no `time`, so the preceding sentence's time of day identifies it.
    fn expected(chk: &str) -> Vec<Expected> {
        let mut last_tod = None;
        let mut out = Vec::new();
        for line in chk.lines() {
            if let Some(body) = line.strip_prefix('$') {
                let f: Vec<&str> = body.split(['*', ',']).collect();
                let i = if f.first().is_some_and(|a| a.ends_with("GLL")) { 5 } else { 1 };
                if let Ok(Some(tod)) = time_of_day(&f, i) {
                    last_tod = Some(tod);
                }
                continue;
            }
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
            let (Some(lat), Some(lon)) = (v["lat"].as_f64(), v["lon"].as_f64()) else { continue };
            if v["class"] != "TPV" {
                continue;
            }
            let t_ms = v["time"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.timestamp_millis());
            let tod = t_ms.map(|t| t.rem_euclid(i64::from(DAY_MS)) as u32).or(last_tod);
            if let Some(tod_ms) = tod {
                // gpsd reports again as each sentence of an epoch arrives: its last report is
                // the complete one (earlier ones may hold speeds gpsd derived itself).
                out.retain(|e: &Expected| e.tod_ms != tod_ms);
                out.push(Expected {
                    tod_ms,
                    t_ms,
                    lat,
                    lon,
                    speed: v["speed"].as_f64(),
                    track: v["track"].as_f64(),
                });
            }
        }
        out
    }

    #[test]
    fn matches_gpsd_decode_of_real_logs() {
        let mut names: Vec<String> = std::fs::read_dir(dir())
            .expect("nmea_gpsd data")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".log"))
            .collect();
        names.sort();
        assert!(names.len() >= 18);
        let (mut dated_total, mut dated_matched, mut undated_total, mut undated_matched) = (0, 0, 0, 0);
        for name in names {
            let log = std::fs::read(dir().join(&name)).expect("log");
            let chk = std::fs::read_to_string(dir().join(format!("{name}.chk"))).expect("chk");
            let want = expected(&chk);
            let dated = want.iter().filter(|w| w.t_ms.is_some()).count();
            let got = match parse(&log) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("{name}: {}, gpsd positions {} (dated 0)", e.code(), want.len());
                    // Only a log without fix or without any date may fail; gpsd dated no fix there either.
                    assert!(matches!(e.code(), "nmea_no_date" | "nmea_no_fix"), "{name}");
                    assert_eq!(dated, 0, "{name}");
                    undated_total += want.len();
                    continue;
                }
            };
            assert!(got.samples.windows(2).all(|w| w[0].t_ms < w[1].t_ms), "{name}");
            let find = |tod: u32| {
                got.samples.iter().find(|s| s.t_ms.rem_euclid(i64::from(DAY_MS)) == i64::from(tod))
            };
            let (mut pos, mut pos_dated, mut time, mut spd, mut spd_n, mut trk, mut trk_n) =
                (0, 0, 0, 0, 0, 0, 0);
            for w in &want {
                let Some(s) = find(w.tod_ms) else { continue };
                let same_place = (s.lat - w.lat).abs() < 1e-6 && (s.lon - w.lon).abs() < 1e-6;
                pos += usize::from(same_place);
                if let Some(t) = w.t_ms {
                    pos_dated += usize::from(same_place);
                    // gpsd's harness may have shifted the date by whole 1024-week eras.
                    time += usize::from((t - s.t_ms).rem_euclid(GPS_ERA_MS) == 0);
                }
                if let Some(v) = w.speed {
                    spd_n += 1;
                    // Where no sentence gives a speed, gpsd and we derive it from positions, gpsd
                    // on the ellipsoid and we on a sphere: those agree within 1 %.
                    spd += usize::from((s.speed - v).abs() <= (v * 0.01).max(0.0051));
                }
                if let Some(v) = w.track {
                    trk_n += 1;
                    trk += usize::from((s.heading - v).abs() < 0.0051);
                }
            }
            eprintln!(
                "{name}: {} samples; gpsd positions matched {pos}/{} (dated {pos_dated}/{dated}), time {time}/{dated}, \
                 speed {spd}/{spd_n}, track {trk}/{trk_n}; skipped {}, bad checksum {}, undated {}, no-fix epochs {}",
                got.samples.len(),
                want.len(),
                got.skipped_lines,
                got.bad_checksums,
                got.undated_fixes,
                got.no_fix_epochs
            );
            assert_eq!((pos_dated, time), (dated, dated), "{name}: dated positions and times");
            assert_eq!((spd, trk), (spd_n, trk_n), "{name}: speeds and tracks");
            dated_total += dated;
            dated_matched += pos_dated;
            undated_total += want.len() - dated;
            undated_matched += pos - pos_dated;
        }
        eprintln!(
            "all logs: gpsd-dated positions {dated_matched}/{dated_total}, undated gpsd positions {undated_matched}/{undated_total}"
        );
        assert!(dated_total > 150);
    }
}
