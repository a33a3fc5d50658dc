//! Recall and precision of an ensemble (and of each member alone) on annotated images laid out
//! like `plates_openalpr` (one sub-directory per set, `<image>.txt` = `file x y w h text` lines)
//! or `faces_dlib_voc` (`training.xml` in dlib's imglab format).

use super::geometry::iou;
use super::{AnonymizeError, Detection, Ensemble, Kind};
use opencv::core::{Mat, Rect};
use opencv::imgcodecs;
use opencv::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A ground-truth box counts as found when a detection of its kind overlaps it this much.
pub const MATCH_IOU: f32 = 0.3;

#[derive(Debug, Clone, Default, Serialize)]
pub struct SetReport {
    pub recall: f64,
    pub precision: f64,
    /// Ground-truth boxes.
    pub n: usize,
    pub frames: usize,
    pub detections: usize,
    #[serde(skip)]
    found: usize,
    #[serde(skip)]
    true_detections: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DetectorReport {
    pub version: String,
    pub sets: BTreeMap<String, SetReport>,
    pub ms_per_frame: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct EvalReport {
    pub sets: BTreeMap<String, SetReport>,
    pub ms_per_frame: f64,
    pub version: String,
    pub detectors: BTreeMap<String, DetectorReport>,
}

struct Sample {
    image: PathBuf,
    truth: Vec<Rect>,
}

struct Set {
    name: String,
    kind: Kind,
    samples: Vec<Sample>,
}

pub fn eval(data_dir: &Path, ensemble: &Ensemble) -> Result<EvalReport, AnonymizeError> {
    let sets = discover(data_dir)?;
    if sets.is_empty() {
        return Err(AnonymizeError::EvalData {
            path: data_dir.to_owned(),
            reason: "no plate (.txt) or face (training.xml) annotations found".into(),
        });
    }
    let mut report = EvalReport { version: ensemble.version(), ..Default::default() };
    let mut total_ms = 0.0;
    let mut frames = 0usize;
    for set in &sets {
        for sample in &set.samples {
            let img = read(&sample.image)?;
            let mut union: Vec<Detection> = Vec::new();
            for m in ensemble.members() {
                let start = Instant::now();
                let found = m.detect(&img)?;
                let ms = start.elapsed().as_secs_f64() * 1000.0;
                total_ms += ms;
                let d = report.detectors.entry(m.name().to_owned()).or_default();
                d.version = m.version();
                d.ms_per_frame += ms;
                score(d.sets.entry(set.name.clone()).or_default(), set.kind, &sample.truth, &found);
                union.extend(found);
            }
            score(report.sets.entry(set.name.clone()).or_default(), set.kind, &sample.truth, &union);
            frames += 1;
        }
    }
    let per_frame = |ms: f64| if frames == 0 { 0.0 } else { ms / frames as f64 };
    report.ms_per_frame = per_frame(total_ms);
    report.sets.values_mut().for_each(finish);
    for d in report.detectors.values_mut() {
        d.ms_per_frame = per_frame(d.ms_per_frame);
        d.sets.values_mut().for_each(finish);
    }
    Ok(report)
}

fn score(r: &mut SetReport, kind: Kind, truth: &[Rect], found: &[Detection]) {
    let relevant: Vec<Rect> = found.iter().filter(|d| d.kind == kind).map(|d| d.rect).collect();
    r.frames += 1;
    r.n += truth.len();
    r.found += truth.iter().filter(|t| relevant.iter().any(|d| iou(**t, *d) >= MATCH_IOU)).count();
    r.detections += relevant.len();
    r.true_detections += relevant.iter().filter(|d| truth.iter().any(|t| iou(*t, **d) >= MATCH_IOU)).count();
}

fn finish(r: &mut SetReport) {
    r.recall = ratio(r.found, r.n);
    r.precision = ratio(r.true_detections, r.detections);
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

fn read(path: &Path) -> Result<Mat, AnonymizeError> {
    let name = path.to_str().ok_or_else(|| bad(path, "path is not UTF-8"))?;
    let img = imgcodecs::imread(name, imgcodecs::IMREAD_COLOR)?;
    if img.empty() {
        return Err(bad(path, "image does not decode"));
    }
    Ok(img)
}

fn bad(path: &Path, reason: &str) -> AnonymizeError {
    AnonymizeError::EvalData { path: path.to_owned(), reason: reason.to_owned() }
}

fn read_text(path: &Path) -> Result<String, AnonymizeError> {
    std::fs::read_to_string(path).map_err(|source| AnonymizeError::Io { path: path.to_owned(), source })
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, AnonymizeError> {
    let rd = std::fs::read_dir(dir).map_err(|source| AnonymizeError::Io { path: dir.to_owned(), source })?;
    let mut out: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    out.sort();
    Ok(out)
}

/// A face dataset (`training.xml`), a plate set (`*.txt`), or a directory of either.
fn discover(dir: &Path) -> Result<Vec<Set>, AnonymizeError> {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "data".into());
    let xml = dir.join("training.xml");
    if xml.is_file() {
        return Ok(vec![Set { name, kind: Kind::Face, samples: dlib_faces(&xml)? }]);
    }
    let entries = sorted_entries(dir)?;
    let txts: Vec<&PathBuf> = entries.iter().filter(|p| p.extension().is_some_and(|e| e == "txt")).collect();
    if !txts.is_empty() {
        let mut samples = Vec::new();
        for t in txts {
            samples.extend(plate_lines(dir, &read_text(t)?, t)?);
        }
        return Ok(vec![Set { name, kind: Kind::Plate, samples }]);
    }
    let mut sets = Vec::new();
    for sub in entries.iter().filter(|p| p.is_dir()) {
        sets.extend(discover(sub)?);
    }
    Ok(sets)
}

fn plate_lines(dir: &Path, text: &str, file: &Path) -> Result<Vec<Sample>, AnonymizeError> {
    let mut by_image: BTreeMap<String, Vec<Rect>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        let num = |i: usize| f.get(i).and_then(|v| v.trim().parse::<i32>().ok());
        match (f.first(), num(1), num(2), num(3), num(4)) {
            (Some(img), Some(x), Some(y), Some(w), Some(h)) => {
                by_image.entry((*img).to_owned()).or_default().push(Rect::new(x, y, w, h))
            }
            _ => return Err(bad(file, &format!("not `file x y w h text`: {line}"))),
        }
    }
    Ok(by_image.into_iter().map(|(img, truth)| Sample { image: dir.join(img), truth }).collect())
}

/// dlib imglab XML: `<image file='…'><box top left width height [ignore='1']/>…</image>`.
fn dlib_faces(xml: &Path) -> Result<Vec<Sample>, AnonymizeError> {
    let text = read_text(xml)?;
    let dir = xml.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for chunk in text.split("<image ").skip(1) {
        let head = chunk.split('>').next().unwrap_or("");
        let file = attr(head, "file").ok_or_else(|| bad(xml, "<image> without file"))?;
        let body = chunk.split("</image>").next().unwrap_or("");
        let mut truth = Vec::new();
        for b in body.split("<box ").skip(1) {
            let tag = b.split('>').next().unwrap_or("");
            if attr(tag, "ignore").is_some_and(|v| v == "1") {
                continue;
            }
            let num = |k: &str| attr(tag, k).and_then(|v| v.parse::<i32>().ok());
            match (num("left"), num("top"), num("width"), num("height")) {
                (Some(x), Some(y), Some(w), Some(h)) => truth.push(Rect::new(x, y, w, h)),
                _ => return Err(bad(xml, "<box> without left/top/width/height")),
            }
        }
        out.push(Sample { image: dir.join(file), truth });
    }
    Ok(out)
}

fn attr<'a>(tag: &'a str, key: &str) -> Option<&'a str> {
    for quote in ['\'', '"'] {
        let pat = format!(" {key}={quote}");
        if let Some(start) = format!(" {tag}").find(&pat) {
            // `start` indexes the string with a leading space, so it is the offset in `tag` of the key.
            let rest = &tag[start + pat.len() - 1..];
            return rest.split(quote).next();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::{CenterFace, Models, TextRowConfig, TextRowPlates};
    use super::*;

    #[test]
    fn attributes() {
        let tag = "box top='90' left=\"194\" width='37' height='37'/";
        assert_eq!(attr(tag, "top"), Some("90"));
        assert_eq!(attr(tag, "left"), Some("194"));
        assert_eq!(attr(tag, "ignore"), None);
        assert_eq!(attr("file='a.jpg' width='500'", "file"), Some("a.jpg"));
    }

    #[test]
    fn plate_recall_on_openalpr() {
        let ens = Ensemble::new(vec![Box::new(TextRowPlates::new(TextRowConfig::default()))]);
        let report =
            eval(&roadhex_schemas::testdata::shared_data().join("plates_openalpr"), &ens).expect("eval");
        eprintln!("{}", serde_json::to_string(&report).expect("json"));
        let (mut found, mut n) = (0.0, 0);
        for set in ["eu", "us", "br"] {
            let r = &report.sets[set];
            assert!(r.recall >= 0.95, "{set}: recall {} < 0.95", r.recall);
            found += r.recall * r.n as f64;
            n += r.n;
        }
        assert_eq!(n, 88);
        assert!(found / n as f64 >= 0.97, "overall plate recall {}", found / n as f64);
        // One plate is annotated per photo while many show several cars, so this is a floor.
        assert!(report.sets["eu"].precision >= 0.4 && report.sets["us"].precision >= 0.15);
    }

    #[test]
    fn face_recall_on_dlib_voc() {
        let face = CenterFace::new(&Models::from_env(), 0.3).expect("run deploy/models.sh first");
        let ens = Ensemble::new(vec![Box::new(face)]);
        let report =
            eval(&roadhex_schemas::testdata::shared_data().join("faces_dlib_voc"), &ens).expect("eval");
        let r = &report.sets["faces_dlib_voc"];
        assert_eq!(r.n, 18);
        assert!(r.recall >= 0.97, "face recall {}", r.recall);
        assert!(r.precision >= 0.8, "face precision {}", r.precision);
    }

    #[test]
    fn missing_data_is_an_error() {
        let ens = Ensemble::new(Vec::new());
        let err = eval(Path::new("/nonexistent/roadhex-eval"), &ens).expect_err("no data");
        assert_eq!(err.code(), "io_error");
    }
}
