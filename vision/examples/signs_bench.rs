#![allow(clippy::print_stdout)] // a report printer
//! `make bench` (signs): sign detection + classification throughput beside its floor, in one run
//! over the same frames, single thread:
//! (a) the floor: decode of the GTSDB scenes (1360×800) and of the Hivemapper frames (2028×1024),
//! (b) decode + `SignModel::detect` (colour proposals, verifier, classifier).
//! Also prints the embedded model's metrics on the development GTSDB scenes (it was trained on
//! them, so these are training-set figures; the cross-validated ones are in
//! vision/models/signs.metrics.json).
//!
//! Environment: ROADHEX_SHARED_DATA (default ../shared/data).

use opencv::imgcodecs;
use roadhex_vision::signs::{SignModel, dataset, eval};
use std::path::{Path, PathBuf};
use std::time::Instant;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn images(dir: &Path, ext: &str) -> Res<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?.flatten().map(|e| e.path()).collect();
    v.retain(|p| p.extension().is_some_and(|e| e == ext));
    v.sort();
    Ok(v)
}

/// (decode-only frames/s, decode+detect frames/s) over `files`.
fn measure(model: &SignModel, files: &[PathBuf]) -> Res<(f64, f64)> {
    let t = Instant::now();
    for f in files {
        std::hint::black_box(imgcodecs::imread(f.display().to_string().as_str(), imgcodecs::IMREAD_COLOR)?);
    }
    let floor = files.len() as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for f in files {
        let img = imgcodecs::imread(f.display().to_string().as_str(), imgcodecs::IMREAD_COLOR)?;
        std::hint::black_box(model.detect(&img)?);
    }
    Ok((floor, files.len() as f64 / t.elapsed().as_secs_f64()))
}

fn main() -> Res<()> {
    let data =
        PathBuf::from(std::env::var("ROADHEX_SHARED_DATA").unwrap_or_else(|_| "../shared/data".into()));
    let model = SignModel::embedded()?;
    println!("signs bench — {} (one thread)", model.name());
    for (name, dir, ext) in [
        ("GTSDB 1360x800", data.join("signs_gtsdb/images"), "jpg"),
        ("Bee 2028x1024", data.join("dashcam_hivemapper_bee_sf/frames"), "jpg"),
    ] {
        let files = images(&dir, ext)?;
        let (floor, ours) = measure(&model, &files)?;
        println!(
            "  {name:<15} {:>4} frames: decode floor {floor:7.1} frames/s | decode+detect+classify {ours:6.1} frames/s ({:.2}x the floor's time)",
            files.len(),
            floor / ours
        );
    }
    let m = eval::evaluate(&model, &dataset::gtsdb(&data.join("signs_gtsdb"))?)?;
    println!(
        "  dev GTSDB (training set): recall {:.3} precision {:.3} class accuracy {:.3}, {:.1} ms/frame",
        m.detection_recall, m.detection_precision, m.class_accuracy, m.ms_per_frame
    );
    Ok(())
}
