#![allow(clippy::print_stdout)] // a report printer
//! `make bench` (anonymize): throughput on 2028×1024 dashcam frames, in one run, of
//! (a) the floor: JPEG decode + encode q90 only,
//! (b) roadhex anonymization: decode + `Ensemble::detect` + `blur` + encode q90,
//! (c) `deface` 1.5.0 (pip, CenterFace, CPU) on the same frames, as a subprocess,
//! plus face/plate recall of roadhex and face recall of deface on the annotated shared data.
//! (a) and (b) use one thread per core, each with its share of the frames, like the pipeline.
//!
//! Usage: anonymize_bench [--frames N] [--no-deface]
//! Environment: ROADHEX_SHARED_DATA (default ../shared/data), ROADHEX_MODELS,
//! ROADHEX_DEFACE_VENV (default $HOME/.cache/roadhex/deface-venv; created when missing).

use opencv::core::{Mat, Rect, Vector};
use opencv::imgcodecs;
use opencv::prelude::*;
use roadhex_vision::anonymize::{
    AnonymizeError, Detection, Detector, Ensemble, EnsembleConfig, EvalReport, Kind, Models, blur, eval,
};
use roadhex_vision::pipeline::PUBLISH_QUALITY;
use std::collections::HashMap;
use std::hash::{Hash as _, Hasher as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const DEFACE_VERSION: &str = "1.5.0";
const FLOOR_GOAL: f64 = 0.5;
const DEFACE_GOAL: f64 = 20.0;

struct Args {
    frames: usize,
    deface: bool,
}

fn args() -> Args {
    let mut a = Args { frames: 24, deface: true };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--frames" => a.frames = it.next().and_then(|v| v.parse().ok()).unwrap_or(a.frames),
            "--no-deface" => a.deface = false,
            other => eprintln!("ignoring unknown argument {other}"),
        }
    }
    a
}

fn shared_data() -> PathBuf {
    std::env::var_os("ROADHEX_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data")))
}

/// The first `n` Hivemapper Bee frames (sorted by name), as JPEG files.
fn frame_files(data: &Path, n: usize) -> Res<Vec<PathBuf>> {
    let dir = data.join("dashcam_hivemapper_bee_sf/frames");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("jpg")))
        .collect();
    files.sort();
    if files.len() < n {
        return Err(format!("{} holds {} frames, {n} asked for", dir.display(), files.len()).into());
    }
    files.truncate(n);
    Ok(files)
}

fn decode(jpeg: &[u8]) -> Res<Mat> {
    let bgr = imgcodecs::imdecode(&Vector::<u8>::from_slice(jpeg), imgcodecs::IMREAD_COLOR)?;
    if bgr.empty() {
        return Err("a frame does not decode".into());
    }
    Ok(bgr)
}

fn encode(bgr: &Mat) -> Res<usize> {
    let mut buf = Vector::<u8>::new();
    let params = Vector::<i32>::from_slice(&[imgcodecs::IMWRITE_JPEG_QUALITY, PUBLISH_QUALITY]);
    imgcodecs::imencode(".jpg", bgr, &mut buf, &params)?;
    Ok(buf.len())
}

fn floor_frame(jpeg: &[u8]) -> Res<usize> {
    encode(&decode(jpeg)?)
}

/// Returns the number of detections.
fn anonymize_frame(ensemble: &Ensemble, jpeg: &[u8]) -> Res<usize> {
    let mut bgr = decode(jpeg)?;
    let found = ensemble.detect(&bgr)?;
    blur(&mut bgr, &found)?;
    encode(&bgr)?;
    Ok(found.len())
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()).max(1)
}

/// Runs `work` over the frames on one thread per core (each with a contiguous share, like the
/// pipeline's chunks); returns wall seconds and the sum of what `work` returned.
fn parallel(frames: &[Vec<u8>], work: &(dyn Fn(&[u8]) -> Res<usize> + Sync)) -> Res<(f64, usize)> {
    let chunk = frames.len().div_ceil(threads()).max(1);
    let start = Instant::now();
    let results: Vec<Res<usize>> = std::thread::scope(|s| {
        let handles: Vec<_> = frames
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(|f| work(f)).sum::<Res<usize>>()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("worker panicked".into()))).collect()
    });
    let secs = start.elapsed().as_secs_f64();
    let mut total = 0;
    for r in results {
        total += r?;
    }
    Ok((secs, total))
}

// ---------------------------------------------------------------------------------------------
// deface

fn venv_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ROADHEX_DEFACE_VENV") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    home.join(".cache/roadhex/deface-venv")
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| format!("{shown}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(3).collect();
        Err(format!(
            "{shown} failed ({}): {}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        ))
    }
}

/// The venv's python with deface 1.5.0 installed; installs it when missing.
fn deface_venv() -> Result<PathBuf, String> {
    let venv = venv_dir();
    let python = venv.join("bin/python");
    let installed = |p: &Path| {
        run(Command::new(p).args(["-c", "import deface; print(deface.__version__)"]))
            .is_ok_and(|v| v.trim() == DEFACE_VERSION)
    };
    if python.is_file() && installed(&python) {
        return Ok(python);
    }
    eprintln!("installing deface=={DEFACE_VERSION} into {} …", venv.display());
    if !python.is_file() {
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    }
    run(Command::new(&python).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        &format!("deface=={DEFACE_VERSION}"),
    ]))?;
    if installed(&python) { Ok(python) } else { Err("deface imports but is not version 1.5.0".into()) }
}

/// Runs deface's CenterFace the way its CLI does for an image (its defaults: backend auto,
/// native resolution, threshold 0.2) and prints the boxes per image: `path\tx1 y1 x2 y2 score;…`.
const DEFACE_BOXES: &str = r#"
import sys
import imageio.v2 as iio
from deface.centerface import CenterFace
cf = CenterFace(in_shape=None, backend='auto')
print('backend', cf.backend)
for p in sys.argv[1:]:
    dets, _ = cf(iio.imread(p), threshold=0.2)
    print(p + '\t' + ';'.join(' '.join(str(float(v)) for v in d[:5]) for d in dets))
"#;

/// Deface's face boxes on the given images, keyed by a hash of the image as OpenCV decodes it,
/// so that [`eval`] can score them with the same matching as roadhex's detectors.
#[derive(Debug)]
struct DefaceBoxes {
    by_image: HashMap<u64, Vec<(Rect, f32)>>,
}

impl Detector for DefaceBoxes {
    fn name(&self) -> &str {
        "deface"
    }
    fn version(&self) -> String {
        format!("deface-{DEFACE_VERSION}")
    }
    fn detect(&self, bgr: &Mat) -> Result<Vec<Detection>, AnonymizeError> {
        let boxes = self.by_image.get(&image_key(bgr)?).cloned().unwrap_or_default();
        Ok(boxes
            .into_iter()
            .map(|(rect, score)| Detection { kind: Kind::Face, rect, score, detector: "deface".into() })
            .collect())
    }
}

fn image_key(bgr: &Mat) -> Result<u64, AnonymizeError> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (bgr.rows(), bgr.cols()).hash(&mut h);
    bgr.data_bytes()?.hash(&mut h);
    Ok(h.finish())
}

/// Returns deface's backend and its boxes on every `.jpg` directly in `dir`.
fn deface_boxes(python: &Path, dir: &Path) -> Res<(String, DefaceBoxes)> {
    let mut images: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    images.sort();
    let out = run(Command::new(python).arg("-c").arg(DEFACE_BOXES).args(&images))?;
    let mut backend = String::from("?");
    let mut by_image = HashMap::new();
    for line in out.lines() {
        if let Some(b) = line.strip_prefix("backend ") {
            backend = b.trim().to_owned();
            continue;
        }
        let Some((path, dets)) = line.split_once('\t') else { continue };
        let mut boxes = Vec::new();
        for d in dets.split(';').filter(|d| !d.trim().is_empty()) {
            let v: Vec<f32> = d.split_whitespace().filter_map(|x| x.parse().ok()).collect();
            if let [x1, y1, x2, y2, s] = v[..] {
                let r = Rect::new(
                    x1.round() as i32,
                    y1.round() as i32,
                    (x2 - x1).round() as i32,
                    (y2 - y1).round() as i32,
                );
                boxes.push((r, s));
            }
        }
        let img = imgcodecs::imread(path, imgcodecs::IMREAD_COLOR)?;
        by_image.insert(image_key(&img)?, boxes);
    }
    Ok((backend, DefaceBoxes { by_image }))
}

struct DefaceRun {
    backend: String,
    fps: f64,
    secs: f64,
    face_recall: Option<(f64, f64, usize)>,
}

fn measure_deface(frames: &[Vec<u8>], faces_dir: &Path) -> Res<DefaceRun> {
    let python = deface_venv()?;
    let deface = python.with_file_name("deface");
    let tmp = tempfile::tempdir()?;
    let mut inputs = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        let p = tmp.path().join(format!("frame{i:03}.jpg"));
        std::fs::write(&p, f)?;
        inputs.push(p);
    }
    // Its CLI, default options (blur, outputs `<name>_anonymized.jpg` beside the inputs); the
    // wall time includes interpreter start and model load, once for the whole batch.
    let start = Instant::now();
    run(Command::new(&deface).args(&inputs))?;
    let secs = start.elapsed().as_secs_f64();
    let written = inputs.iter().filter(|p| p.with_file_name(anonymized_name(p)).is_file()).count();
    if written != inputs.len() {
        return Err(format!("deface wrote {written} of {} outputs", inputs.len()).into());
    }
    let (backend, boxes) = deface_boxes(&python, faces_dir)?;
    let report = eval(faces_dir, &Ensemble::new(vec![Box::new(boxes)]))?;
    let face_recall = report.sets.values().next().map(|r| (r.recall, r.precision, r.n));
    Ok(DefaceRun { backend, fps: frames.len() as f64 / secs, secs, face_recall })
}

fn anonymized_name(p: &Path) -> String {
    let stem = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    format!("{stem}_anonymized.jpg")
}

/// Frames for the per-member breakdown (single thread, after the timed runs).
const MEMBER_FRAMES: usize = 6;

/// Each member's ms/frame and detections/frame on already decoded frames, one thread.
fn per_member(ensemble: &Ensemble, frames: &[Vec<u8>]) -> Res<Vec<(String, f64, f64)>> {
    let decoded: Vec<Mat> = frames.iter().map(|f| decode(f)).collect::<Res<_>>()?;
    let n = decoded.len().max(1) as f64;
    let mut out = Vec::new();
    for m in ensemble.members() {
        let (mut secs, mut found) = (0.0, 0usize);
        for bgr in &decoded {
            let start = Instant::now();
            found += m.detect(bgr)?.len();
            secs += start.elapsed().as_secs_f64();
        }
        out.push((m.name().to_owned(), secs * 1000.0 / n, found as f64 / n));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------

fn print_recall(name: &str, report: &EvalReport) {
    for (set, r) in &report.sets {
        println!(
            "  {name:<8} {set:<16} recall {:>6.3}  precision {:>6.3}  ({} boxes, {} images)",
            r.recall, r.precision, r.n, r.frames
        );
    }
}

fn main() -> Res<()> {
    let args = args();
    let data = shared_data();
    let files = frame_files(&data, args.frames)?;
    let frames: Vec<Vec<u8>> = files.iter().map(std::fs::read).collect::<Result<_, _>>()?;
    let first = decode(frames.first().ok_or("--frames must be at least 1")?)?;
    let (w, h) = (first.cols(), first.rows());

    let ensemble = Ensemble::from_config(&Models::from_env(), &EnsembleConfig::default())?;
    // Warm-up (not timed): one frame per thread at once, so each thread has its own loaded net.
    parallel(&frames[..threads().min(frames.len())], &|f| anonymize_frame(&ensemble, f))?;

    let (floor_s, _) = parallel(&frames, &floor_frame)?;
    let (anon_s, detections) = parallel(&frames, &|f| anonymize_frame(&ensemble, f))?;
    let n = frames.len() as f64;
    let (floor_fps, anon_fps) = (n / floor_s, n / anon_s);

    let members = per_member(&ensemble, &frames[..frames.len().min(MEMBER_FRAMES)])?;

    let faces_dir = data.join("faces_dlib_voc");
    let plates = eval(&data.join("plates_openalpr"), &ensemble)?;
    let faces = eval(&faces_dir, &ensemble)?;
    let deface = if args.deface { Some(measure_deface(&frames, &faces_dir)) } else { None };

    println!(
        "anonymize bench: {} frames {w}×{h} (dashcam_hivemapper_bee_sf), {} threads, JPEG q{PUBLISH_QUALITY}",
        frames.len(),
        threads()
    );
    println!("roadhex ensemble: {}", ensemble.version());
    println!();
    println!("  {:<44} {:>9} {:>9}  {:>10}", "", "frames/s", "ms/frame", "ratio");
    println!("  {:<44} {floor_fps:>9.2} {:>9.1}", "(a) floor: decode + encode", 1000.0 / floor_fps);
    println!(
        "  {:<44} {anon_fps:>9.2} {:>9.1}  {:>6.2}× (a)  goal ≥ {FLOOR_GOAL}× {}",
        "(b) roadhex: decode + detect + blur + encode",
        1000.0 / anon_fps,
        anon_fps / floor_fps,
        verdict(anon_fps / floor_fps >= FLOOR_GOAL)
    );
    match &deface {
        Some(Ok(d)) => println!(
            "  {:<44} {:>9.2} {:>9.1}  {:>6.1}× faster  goal ≥ {DEFACE_GOAL}× {}",
            format!("(c) deface {DEFACE_VERSION} CLI ({} backend)", d.backend),
            d.fps,
            1000.0 / d.fps,
            anon_fps / d.fps,
            verdict(anon_fps / d.fps >= DEFACE_GOAL)
        ),
        Some(Err(e)) => println!("  (c) deface could not be measured: {e}"),
        None => println!("  (c) deface skipped (--no-deface)"),
    }
    println!("  roadhex detections on the bench frames: {detections}");
    println!("  where (b)'s time goes, one worker thread, first {} frames:", frames.len().min(MEMBER_FRAMES));
    for (name, ms, found) in &members {
        println!("    {name:<16} {ms:>8.1} ms/frame  {found:>6.1} detections/frame");
    }
    if let Some(Ok(d)) = &deface {
        println!(
            "  deface wall time {:.1} s for the batch, including interpreter start and model load",
            d.secs
        );
    }
    println!();
    println!("recall (a ground-truth box counts as found at IoU ≥ 0.3 with a detection of its kind):");
    print_recall("roadhex", &plates);
    print_recall("roadhex", &faces);
    if let Some(Ok(d)) = &deface {
        match d.face_recall {
            Some((recall, precision, boxes)) => {
                println!(
                    "  {:<8} {:<16} recall {recall:>6.3}  precision {precision:>6.3}  ({boxes} boxes; deface detects faces only)",
                    "deface", "faces_dlib_voc"
                );
                let ours = faces.sets.values().next().map_or(0.0, |r| r.recall);
                println!(
                    "  face recall roadhex {ours:.3} vs deface {recall:.3}: {}",
                    verdict(ours >= recall)
                );
            }
            None => println!("  deface face recall: no annotated faces found"),
        }
    }
    Ok(())
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}
