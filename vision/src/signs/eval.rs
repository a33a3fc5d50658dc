//! Detection and classification metrics on GTSDB-format scenes: a detection is right when its box
//! overlaps an unmatched annotated sign at IoU ≥ 0.5 (greedy, best score first).

use super::dataset::Labelled;
use super::detect::{SignDetection, SignModel};
pub use crate::anonymize::geometry::iou;
use crate::error::{Result, VisionError};
use opencv::imgcodecs;
use serde::Serialize;
use std::time::Instant;

pub const MATCH_IOU: f32 = 0.5;

/// The scored candidates of one scene beside its truth.
#[derive(Debug, Clone)]
pub struct SceneResult {
    pub truth: Vec<(opencv::core::Rect, usize)>,
    pub candidates: Vec<SignDetection>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Metrics {
    pub images: usize,
    pub signs: usize,
    pub threshold: f32,
    pub detections: usize,
    pub true_positives: usize,
    pub detection_recall: f64,
    pub detection_precision: f64,
    /// Right class among correctly detected signs.
    pub class_accuracy: f64,
    /// Detection + classification per frame (decoded), single thread.
    pub ms_per_frame: f64,
    /// JPEG/PPM decode per frame, the floor the detector sits on.
    pub decode_ms_per_frame: f64,
}

/// Runs the model over every scene as it runs in use: the signs at its threshold.
pub fn run(model: &SignModel, scenes: &[Labelled]) -> Result<(Vec<SceneResult>, f64, f64)> {
    let (mut detect_s, mut decode_s) = (0.0, 0.0);
    let mut out = Vec::with_capacity(scenes.len());
    for s in scenes {
        let t0 = Instant::now();
        let img = read(&s.image)?;
        let t1 = Instant::now();
        let candidates = model.detect(&img)?;
        detect_s += t1.elapsed().as_secs_f64();
        decode_s += (t1 - t0).as_secs_f64();
        out.push(SceneResult { truth: s.signs.clone(), candidates });
    }
    let n = scenes.len().max(1) as f64;
    Ok((out, detect_s * 1000.0 / n, decode_s * 1000.0 / n))
}

pub fn read(p: &std::path::Path) -> Result<opencv::core::Mat> {
    let img = imgcodecs::imread(p.display().to_string().as_str(), imgcodecs::IMREAD_COLOR)?;
    if opencv::prelude::MatTraitConst::empty(&img) {
        return Err(VisionError::SignData {
            dir: p.display().to_string(),
            reason: "image does not decode".into(),
        });
    }
    Ok(img)
}

/// The detections kept at `threshold` (their count) and those that match an annotated sign, with
/// its true class: greedy, best score first, each sign matched once.
fn matches(r: &SceneResult, threshold: f32) -> (usize, Vec<(usize, &SignDetection)>) {
    let mut kept: Vec<&SignDetection> = r.candidates.iter().filter(|d| d.score >= threshold).collect();
    kept.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut used = vec![false; r.truth.len()];
    let mut out = Vec::new();
    for d in &kept {
        let best = r
            .truth
            .iter()
            .enumerate()
            .filter(|(i, _)| !used[*i])
            .map(|(i, (t, _))| (i, iou(*t, d.rect)))
            .filter(|(_, v)| *v >= MATCH_IOU)
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((i, _)) = best {
            used[i] = true;
            out.push((r.truth[i].1, *d));
        }
    }
    (kept.len(), out)
}

/// Metrics of the candidates at `threshold`.
pub fn score(results: &[SceneResult], threshold: f32) -> Metrics {
    let (mut signs, mut dets, mut tp, mut right) = (0, 0, 0, 0);
    for r in results {
        signs += r.truth.len();
        let (kept, matched) = matches(r, threshold);
        dets += kept;
        tp += matched.len();
        right += matched.iter().filter(|(t, d)| super::classes::id(d.class) == Some(*t)).count();
    }
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    Metrics {
        images: results.len(),
        signs,
        threshold,
        detections: dets,
        true_positives: tp,
        detection_recall: ratio(tp, signs),
        detection_precision: ratio(tp, dets),
        class_accuracy: ratio(right, tp),
        ms_per_frame: 0.0,
        decode_ms_per_frame: 0.0,
    }
}

/// Wrong classes among correct detections at `threshold`: (true class, predicted class, count),
/// most frequent first. Training logs and stores them, so a model's weak spots are on record.
pub fn confusions(results: &[SceneResult], threshold: f32) -> Vec<(String, String, usize)> {
    let mut counts: std::collections::BTreeMap<(String, String), usize> = Default::default();
    for r in results {
        for (truth, d) in matches(r, threshold).1 {
            if super::classes::id(d.class) != Some(truth) {
                let name = super::classes::NAMES.get(truth).copied().unwrap_or("?");
                *counts.entry((name.to_owned(), d.class.to_owned())).or_default() += 1;
            }
        }
    }
    let mut out: Vec<(String, String, usize)> = counts.into_iter().map(|((t, p), n)| (t, p, n)).collect();
    out.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
    out
}

/// The threshold with the best recall at precision ≥ `min_precision`, else the best F1.
pub fn pick_threshold(results: &[SceneResult], min_precision: f64) -> f32 {
    // Even steps in log-odds: the verifier's useful range crowds near 1.
    let grid: Vec<f32> = (0..=90).map(|i| 1.0 / (1.0 + (-(i as f32) / 10.0).exp())).collect();
    let scored: Vec<Metrics> = grid.iter().map(|t| score(results, *t)).collect();
    let ok = scored.iter().filter(|m| m.detection_precision >= min_precision).max_by(|a, b| {
        a.detection_recall.total_cmp(&b.detection_recall).then(b.threshold.total_cmp(&a.threshold))
    });
    let f1 = |m: &Metrics| {
        let (p, r) = (m.detection_precision, m.detection_recall);
        if p + r == 0.0 { 0.0 } else { 2.0 * p * r / (p + r) }
    };
    ok.or_else(|| scored.iter().max_by(|a, b| f1(a).total_cmp(&f1(b)))).map_or(0.5, |m| m.threshold)
}

/// `roadhex eval signs`: the model's metrics at its own threshold.
pub fn evaluate(model: &SignModel, scenes: &[Labelled]) -> Result<Metrics> {
    let (results, ms, decode) = run(model, scenes)?;
    let mut m = score(&results, model.header.threshold);
    m.ms_per_frame = ms;
    m.decode_ms_per_frame = decode;
    Ok(m)
}
