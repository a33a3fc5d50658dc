#![allow(clippy::print_stdout)] // a report printer
//! `make bench` (importers): telemetry parsing throughput beside a floor measured in the same run
//! on the same bytes: for NMEA a bare line scan that only verifies checksums, for GPX the XML
//! parse alone (roxmltree DOM, no field extraction).

use std::time::Instant;

fn shared() -> std::path::PathBuf {
    std::env::var_os("ROADHEX_SHARED_DATA")
        .map(Into::into)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"))
}

/// Runs `f` repeatedly for about a second; returns passes per second.
fn passes(mut f: impl FnMut() -> usize) -> f64 {
    let t = Instant::now();
    let mut n = 0usize;
    let mut sink = 0usize;
    while t.elapsed().as_secs_f64() < 1.0 {
        sink = sink.wrapping_add(f());
        n += 1;
    }
    std::hint::black_box(sink);
    n as f64 / t.elapsed().as_secs_f64()
}

fn nmea_floor(bytes: &[u8]) -> usize {
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| {
            let l = l.strip_suffix(b"\r").unwrap_or(l);
            let Some(star) = l.iter().rposition(|&b| b == b'*') else { return false };
            let sum = l.get(1..star).map_or(0, |body| body.iter().fold(0u8, |a, b| a ^ b));
            std::str::from_utf8(&l[star + 1..]).ok().and_then(|h| u8::from_str_radix(h.trim(), 16).ok())
                == Some(sum)
        })
        .count()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = shared();
    let mut logs = Vec::new();
    for e in std::fs::read_dir(data.join("nmea_gpsd"))? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "log") {
            logs.push(std::fs::read(p)?);
        }
    }
    let nmea_fixes: usize =
        logs.iter().map(|l| roadhex_ingest::formats::nmea::parse(l).map_or(0, |t| t.samples.len())).sum();
    let nmea_bytes: usize = logs.iter().map(Vec::len).sum();
    let nmea = passes(|| {
        logs.iter().map(|l| roadhex_ingest::formats::nmea::parse(l).map_or(0, |t| t.samples.len())).sum()
    });
    let nmea_floor = passes(|| logs.iter().map(|l| nmea_floor(l)).sum());
    let gpx = std::fs::read(data.join("gpx_tracks/gpxpy/cerknicko-jezero.gpx"))?;
    let gpx_fixes = roadhex_ingest::formats::gpx::parse(&gpx)?.len();
    let gpx_rate = passes(|| roadhex_ingest::formats::gpx::parse(&gpx).map_or(0, |s| s.len()));
    let xml_floor = passes(|| {
        std::str::from_utf8(&gpx)
            .ok()
            .and_then(|t| roxmltree::Document::parse(t).ok())
            .map_or(0, |d| d.descendants().count())
    });
    let mb = |bytes: usize, p: f64| bytes as f64 * p / 1e6;
    println!(
        "importers: {} NMEA logs ({} KB, {} fixes); GPX {} points ({} KB)",
        logs.len(),
        nmea_bytes / 1000,
        nmea_fixes,
        gpx_fixes,
        gpx.len() / 1000
    );
    println!("{:<52} {:>12} {:>8}", "", "fixes/s", "MB/s");
    println!("{:<52} {:>12.0} {:>8.1}", "NMEA parse", nmea * nmea_fixes as f64, mb(nmea_bytes, nmea));
    println!(
        "{:<52} {:>12} {:>8.1}",
        "floor: split lines + verify checksums (same bytes)",
        "-",
        mb(nmea_bytes, nmea_floor)
    );
    println!("{:<52} {:>12.0} {:>8.1}", "GPX parse", gpx_rate * gpx_fixes as f64, mb(gpx.len(), gpx_rate));
    println!(
        "{:<52} {:>12} {:>8.1}",
        "floor: XML DOM parse alone (same bytes)",
        "-",
        mb(gpx.len(), xml_floor)
    );
    println!("ratios to floor: NMEA {:.2}, GPX {:.2}", nmea / nmea_floor, gpx_rate / xml_floor);
    #[cfg(feature = "video")]
    video(&data)?;
    Ok(())
}

/// Video sampling (decode, keep a frame every ~8 m, JPEG q90) beside decoding every frame alone.
#[cfg(feature = "video")]
fn video(data: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    use opencv::prelude::*;
    use roadhex_schemas::{FixType, GnssSample};
    let clip = data.join("dashcam_udacity/vehicle_detection/test_video.mp4");
    let info = roadhex_ingest::formats::video::probe(&clip)?;
    // A straight drive at 15 m/s covering the clip.
    let track: Vec<GnssSample> = (0..=4)
        .map(|i| GnssSample {
            t_ms: i * 1000,
            lat: 45.0 + 15.0 * i as f64 / 111_195.0,
            lon: 13.0,
            alt: 0.0,
            speed: 15.0,
            heading: 0.0,
            hdop: None,
            satellites: None,
            fix: Some(FixType::Fix3d),
        })
        .collect();
    let cfg = roadhex_schemas::gates::GateConfig::default();
    let mut kept = 0usize;
    let sample = passes(|| {
        let n = roadhex_ingest::formats::video::sample(&clip, &track, 0, &cfg, 90).map_or(0, |f| f.len());
        kept = n;
        n
    });
    let decode = passes(|| {
        let mut cap =
            opencv::videoio::VideoCapture::from_file(clip.display().to_string(), opencv::videoio::CAP_FFMPEG)
                .ok();
        let mut frame = opencv::core::Mat::default();
        let mut n = 0;
        while let Some(c) = cap.as_mut() {
            if !c.read(&mut frame).unwrap_or(false) {
                break;
            }
            n += 1;
        }
        n
    });
    let frames = info.frames as f64;
    println!("{:<52} {:>12} {:>8}", "", "frames/s", "kept/s");
    println!(
        "{:<52} {:>12.0} {:>8.0}",
        "video sampling (decode + every ~8 m JPEG q90), 720p",
        sample * frames,
        sample * kept as f64
    );
    println!("{:<52} {:>12.0} {:>8}", "floor: decode every frame alone (same clip)", decode * frames, "-");
    println!("ratio to floor: video {:.2}", sample / decode);
    Ok(())
}
