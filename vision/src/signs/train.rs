//! Training the sign model from GTSRB crops and GTSDB scenes.
//!
//! The classifier learns the 43 classes from jittered copies of every annotated sign and from drawn
//! plates of every class, balanced per class. The verifier learns sign-or-not from the real
//! positives against the proposals that miss every annotated sign in the training scenes (the
//! negatives it will meet in use) and drawn plates of common signs outside the 43 classes.
//! Cross-validation over the scenes picks the operating threshold from out-of-fold scores; the
//! final model is then trained on everything.

use super::classes::NAMES;
use super::dataset::Labelled;
use super::detect::{Header, SignModel};
use super::eval::{self, Metrics, SceneResult};
use super::features::{INNER, Jitter, Patch, SIDE, describe, describe_class, describe_inner, patch};
use super::mlp::{Committee, TrainConfig};
use super::propose::propose;
use super::synth;
use crate::anonymize::geometry::iou;
use crate::error::Result;
use opencv::core::{Mat, Rect, Size};
use opencv::imgproc;
use opencv::prelude::*;
use roadhex_schemas::rng::SplitMix64;
use serde::Serialize;

#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Cross-validation folds over the scenes (0 or 1: none; the threshold is then `threshold`).
    pub folds: usize,
    /// Jittered samples per class for the classifier.
    pub per_class: usize,
    /// Synthetic plates per drawn class (`synth::DRAWN`) added to the classifier's samples.
    pub synthetic: usize,
    /// Drawn plates per kind of sign outside the 43 classes (`synth::draw_other`) added to the
    /// verifier's negatives.
    pub others: usize,
    /// Epochs of each network.
    pub epochs: usize,
    /// Networks per committee (verifier and classifier each).
    pub members: usize,
    /// Hidden units of the classifier (the verifier has the default).
    pub hidden: usize,
    pub seed: u64,
    /// Precision the threshold must keep.
    pub min_precision: f64,
    pub threshold: f32,
    pub min_class_prob: f32,
    /// Negatives per scene the verifier learns from, drawn at random from that scene's proposals
    /// (a frame offers over a thousand; all of them would make training slow, not better).
    pub negatives_per_scene: usize,
    pub version: String,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            folds: 5,
            per_class: 240,
            synthetic: 300,
            others: 500,
            epochs: 8,
            members: 3,
            hidden: 256,
            seed: 20_261_202,
            min_precision: 0.85,
            threshold: 0.5,
            min_class_prob: 0.3,
            negatives_per_scene: 1000,
            version: "5".into(),
        }
    }
}

/// What training measured.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    /// Out-of-fold metrics at the chosen threshold (None without folds).
    pub cross_validation: Option<Metrics>,
    /// Out-of-fold class confusions at that threshold: (true, predicted, count).
    pub confusions: Vec<(String, String, usize)>,
    pub folds: usize,
    pub threshold: f32,
    pub classifier_samples: usize,
    pub verifier_samples: usize,
    pub trained_on: Vec<String>,
}

/// An image in memory with its signs.
struct Loaded {
    img: Mat,
    signs: Vec<(Rect, usize)>,
    scene: bool,
}

fn load(items: &[Labelled], scene: bool) -> Result<Vec<Loaded>> {
    items.iter().map(|l| Ok(Loaded { img: eval::read(&l.image)?, signs: l.signs.clone(), scene })).collect()
}

/// Trains on `crops` and `scenes`; with folds, first cross-validates over the scenes.
pub fn train(
    crops: &[Labelled],
    scenes: &[Labelled],
    opts: &TrainOptions,
    log: &dyn Fn(&str),
) -> Result<(SignModel, TrainReport)> {
    let mut all = load(crops, false)?;
    all.extend(load(scenes, true)?);
    let scene_ix: Vec<usize> = (0..all.len()).filter(|i| all[*i].scene).collect();
    let mut threshold = opts.threshold;
    let mut cv = None;
    let mut confusions = Vec::new();
    if opts.folds > 1 && scene_ix.len() >= opts.folds {
        let mut pooled: Vec<SceneResult> = Vec::new();
        for k in 0..opts.folds {
            let held: Vec<usize> = scene_ix.iter().copied().filter(|i| i % opts.folds == k).collect();
            let used: Vec<&Loaded> = (0..all.len()).filter(|i| !held.contains(i)).map(|i| &all[i]).collect();
            let (model, _, _) = fit(&used, opts, opts.threshold)?;
            for i in &held {
                pooled.push(SceneResult {
                    truth: all[*i].signs.clone(),
                    candidates: model.candidates(&all[*i].img)?,
                });
            }
            log(&format!("fold {}/{}: {} held-out scenes", k + 1, opts.folds, held.len()));
        }
        threshold = eval::pick_threshold(&pooled, opts.min_precision);
        cv = Some(eval::score(&pooled, threshold));
        confusions = eval::confusions(&pooled, threshold);
    }
    let used: Vec<&Loaded> = all.iter().collect();
    let (model, classifier_samples, verifier_samples) = fit(&used, opts, threshold)?;
    let report = TrainReport {
        cross_validation: cv,
        confusions,
        folds: opts.folds,
        threshold,
        classifier_samples,
        verifier_samples,
        trained_on: model.header.trained_on.clone(),
    };
    Ok((model, report))
}

fn fit(items: &[&Loaded], opts: &TrainOptions, threshold: f32) -> Result<(SignModel, usize, usize)> {
    let mut rng = SplitMix64(opts.seed);
    let (mut cx, mut cy) = classifier_samples(items, opts.per_class, &mut rng)?;
    // The verifier's positives are real plates only: drawn ones would teach it what paint looks
    // like. (Its drawn negatives, below, are plates outside the 43 classes.)
    let mut vx = cx.clone();
    let mut vy = vec![1usize; vx.len()];
    let draw_class = |img: &mut Mat, rect: Rect, class: usize, rng: &mut SplitMix64| {
        synth::draw(img, rect, class, rng).map(|_| ())
    };
    let (sx, sy) = drawn_samples(items, opts.synthetic, synth::DRAWN, draw_class, &mut rng)?;
    cx.extend(sx);
    cy.extend(sy);
    for it in items.iter().filter(|i| i.scene) {
        let mut negatives = Vec::new();
        for rect in propose(&it.img)? {
            let (best, class) = it
                .signs
                .iter()
                .map(|(t, c)| (iou(*t, rect), *c))
                .fold((0.0f32, 0), |a, b| if b.0 > a.0 { b } else { a });
            // Boxes that half-cover a sign teach nothing either way.
            if best >= 0.5 {
                // Both networks learn from the boxes the proposals really draw around a sign
                // (a grown field, a ring's square), not only from the annotated box jittered.
                let d = describe_class(&it.img, rect, None)?;
                cx.push(d.clone());
                cy.push(class);
                vx.push(d);
                vy.push(1);
            } else if best < 0.3 {
                negatives.push(rect);
            }
        }
        for i in 0..negatives.len().min(opts.negatives_per_scene) {
            // A partial Fisher–Yates: the first `negatives_per_scene` of a seeded shuffle.
            let j = i + rng.below((negatives.len() - i) as u64) as usize;
            negatives.swap(i, j);
            vx.push(describe_class(&it.img, negatives[i], None)?);
            vy.push(0);
        }
    }
    // Drawn plates of signs outside the 43 classes are negatives for the verifier.
    let (ox, _) = drawn_samples(items, opts.others, 0..synth::OTHERS, synth::draw_other, &mut rng)?;
    vy.extend(std::iter::repeat_n(0, ox.len()));
    vx.extend(ox);
    let cfg = TrainConfig { epochs: opts.epochs, seed: opts.seed, ..TrainConfig::default() };
    // The two networks are independent: train them side by side.
    let (verifier, classifier) = std::thread::scope(|s| {
        let v = s.spawn(|| Committee::train(&vx, &vy, 2, &cfg, opts.members));
        let c_cfg = TrainConfig { hidden: opts.hidden, ..cfg.clone() };
        let c = Committee::train(&cx, &cy, NAMES.len(), &c_cfg, opts.members);
        (v.join(), c)
    });
    let verifier =
        verifier.map_err(|_| crate::error::VisionError::Join("verifier training panicked".into()))?;
    let trained_on = vec![format!(
        "{} crops, {} scenes",
        items.iter().filter(|i| !i.scene).count(),
        items.iter().filter(|i| i.scene).count()
    )];
    let header =
        Header { version: opts.version.clone(), threshold, min_class_prob: opts.min_class_prob, trained_on };
    Ok((SignModel { header, verifier, classifier }, cx.len(), vx.len()))
}

/// Jittered, photometrically varied copies of every sign, about `per_class` per class.
fn classifier_samples(
    items: &[&Loaded],
    per_class: usize,
    rng: &mut SplitMix64,
) -> Result<(Vec<Vec<f32>>, Vec<usize>)> {
    let mut count = vec![0usize; NAMES.len()];
    for it in items {
        for (_, c) in &it.signs {
            count[*c] += 1;
        }
    }
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for it in items {
        for (rect, c) in &it.signs {
            let copies = per_class.div_ceil(count[*c].max(1)).max(2);
            x.push(describe_class(&it.img, *rect, None)?);
            y.push(*c);
            for _ in 1..copies {
                x.push(varied(&it.img, *rect, rng)?);
                y.push(*c);
            }
        }
    }
    Ok((x, y))
}

fn jitter(rng: &mut SplitMix64) -> Jitter {
    Jitter {
        scale: 0.88 + 0.24 * rng.unit(),
        dx: 0.16 * (rng.unit() - 0.5),
        dy: 0.16 * (rng.unit() - 0.5),
        angle_deg: 14.0 * (rng.unit() - 0.5),
    }
}

/// `per_kind` drawn plates of every kind in `kinds`, each on a random patch of a training scene,
/// seen a little obliquely (narrower than tall), softened like a photographed plate; labelled
/// with their kind.
fn drawn_samples(
    items: &[&Loaded],
    per_kind: usize,
    kinds: impl IntoIterator<Item = usize>,
    draw: impl Fn(&mut Mat, Rect, usize, &mut SplitMix64) -> Result<()>,
    rng: &mut SplitMix64,
) -> Result<(Vec<Vec<f32>>, Vec<usize>)> {
    let scenes: Vec<&Loaded> = items.iter().filter(|i| i.scene).copied().collect();
    let (mut x, mut y) = (Vec::new(), Vec::new());
    if scenes.is_empty() {
        return Ok((x, y));
    }
    for kind in kinds {
        let mut made = 0;
        // Bounded: a scene too small for the plate is skipped, not retried forever.
        for _ in 0..per_kind * 4 {
            if made == per_kind {
                break;
            }
            let scene = &scenes[rng.below(scenes.len() as u64) as usize].img;
            let side = 40 + i32::try_from(rng.below(70)).unwrap_or(0);
            let w = (f64::from(side) * (0.82 + 0.18 * rng.unit())) as i32;
            let (bw, bh) = (w + 2 * side, 3 * side);
            if scene.cols() <= bw || scene.rows() <= bh {
                continue;
            }
            let x0 = i32::try_from(rng.below(u64::try_from(scene.cols() - bw).unwrap_or(1))).unwrap_or(0);
            let y0 = i32::try_from(rng.below(u64::try_from(scene.rows() - bh).unwrap_or(1))).unwrap_or(0);
            let mut bg = Mat::roi(scene, Rect::new(x0, y0, bw, bh))?.try_clone()?;
            let rect = Rect::new(side, side, w, side);
            draw(&mut bg, rect, kind, rng)?;
            let sigma = 0.6 + 1.2 * rng.unit();
            let mut soft = Mat::default();
            imgproc::gaussian_blur_def(&bg, &mut soft, Size::new(0, 0), sigma)?;
            x.push(varied(&soft, rect, rng)?);
            y.push(kind);
            made += 1;
        }
    }
    Ok((x, y))
}

/// The classifier's input for a jittered, photometrically varied view of `rect`.
fn varied(img: &Mat, rect: Rect, rng: &mut SplitMix64) -> Result<Vec<f32>> {
    let (j, photo) = (jitter(rng), Photo::random(rng));
    let mut whole = patch(img, rect, Some(j))?;
    photo.apply(&mut whole, 1.0)?;
    let mut middle = patch(img, rect, Some(j.inner()))?;
    photo.apply(&mut middle, INNER)?;
    let mut d = describe(&whole);
    d.extend(describe_inner(&middle));
    Ok(d)
}

/// Brightness, contrast and colour-balance changes, and sometimes the blur of a distant sign:
/// one draw, applied alike to the patches of one view.
struct Photo {
    gain: f64,
    bias: f64,
    tint: [f64; 3],
    /// Side, in pixels, the whole box shrinks to before it is enlarged back.
    blur_side: Option<f64>,
}

impl Photo {
    fn random(rng: &mut SplitMix64) -> Self {
        let gain = 0.55 + 0.9 * rng.unit();
        let bias = 50.0 * (rng.unit() - 0.5);
        let tint = [0.92 + 0.16 * rng.unit(), 0.92 + 0.16 * rng.unit(), 0.92 + 0.16 * rng.unit()];
        let blur_side = (rng.unit() < 0.35).then(|| 10.0 + rng.below(10) as f64);
        Self { gain, bias, tint, blur_side }
    }

    /// Applies the change to a patch covering `part` of the whole box's patch.
    fn apply(&self, p: &mut Patch, part: f64) -> Result<()> {
        for (i, v) in p.0.iter_mut().enumerate() {
            *v = (f64::from(*v) * self.gain * self.tint[i % 3] + self.bias).clamp(0.0, 255.0) as u8;
        }
        let s = i32::try_from(SIDE).unwrap_or(32);
        // The same loss of detail on a smaller part of the box leaves more of its pixels.
        let Some(small_side) = self.blur_side.map(|b| (b / part).round() as i32).filter(|b| *b < s) else {
            return Ok(());
        };
        let m = Mat::new_rows_cols_with_data(s, s * 3, &p.0)?;
        let m = m.reshape(3, s)?;
        let (mut small, mut back) = (Mat::default(), Mat::default());
        imgproc::resize(&m, &mut small, Size::new(small_side, small_side), 0.0, 0.0, imgproc::INTER_AREA)?;
        imgproc::resize(&small, &mut back, Size::new(s, s), 0.0, 0.0, imgproc::INTER_LINEAR)?;
        p.0 = back.data_bytes()?.to_vec();
        Ok(())
    }
}
