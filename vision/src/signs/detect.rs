//! The sign model: colour proposals, a verifier network (sign or not) and a classifier network
//! (which of the 43 classes), each a committee of small networks. One file holds both and the
//! operating threshold.

use super::classes::{self, OTHER_SIGN};
use super::features::{CLASS_LEN, Jitter, describe_class};
use super::mlp::Committee;
use super::propose::propose;
use crate::anonymize::geometry::nms;
use crate::error::{Result, VisionError};
use opencv::core::{Mat, Rect};
use serde::{Deserialize, Serialize};
use std::path::Path;

const MAGIC: &[u8; 8] = b"RHSIGN02";
/// The trained model shipped with the binary (`roadhex train signs` writes it).
const EMBEDDED: &[u8] = include_bytes!("../../models/signs.bin");
/// Candidates scoring below this are never kept, whatever the threshold.
pub const SCORE_FLOOR: f32 = 0.5;
/// Boxes overlapping more than this are one sign.
const NMS_IOU: f32 = 0.3;
/// The extra views of a box the verifier and the classifier average over (within the training
/// jitter).
const VIEWS: [Jitter; 4] = [
    Jitter { scale: 0.92, dx: 0.0, dy: 0.0, angle_deg: 0.0 },
    Jitter { scale: 1.08, dx: 0.0, dy: 0.0, angle_deg: 0.0 },
    Jitter { scale: 1.0, dx: 0.05, dy: 0.05, angle_deg: 0.0 },
    Jitter { scale: 1.0, dx: -0.05, dy: -0.05, angle_deg: 0.0 },
];

/// The model's operating point and provenance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Header {
    pub version: String,
    /// Verifier probability at or above which a candidate is a sign.
    pub threshold: f32,
    /// Classifier probability below which a sign is `other_sign`.
    pub min_class_prob: f32,
    /// What it was trained on, for the record.
    pub trained_on: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct SignModel {
    pub header: Header,
    pub verifier: Committee,
    pub classifier: Committee,
}

/// One sign found in a frame.
#[derive(Debug, Clone, PartialEq)]
pub struct SignDetection {
    pub rect: Rect,
    /// Verifier probability that the box is a sign.
    pub score: f32,
    pub class: &'static str,
    pub class_prob: f32,
}

impl SignModel {
    /// The model compiled into this binary.
    pub fn embedded() -> Result<Self> {
        Self::from_bytes(EMBEDDED)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let b =
            std::fs::read(path).map_err(|e| VisionError::SignModel(format!("{}: {e}", path.display())))?;
        Self::from_bytes(&b)
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.to_bytes()?)
            .map_err(|e| VisionError::SignModel(format!("{}: {e}", path.display())))
    }

    /// `name@version`, recorded with every detection.
    pub fn name(&self) -> String {
        format!("signs-mlp@{}", self.header.version)
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let header = serde_json::to_vec(&self.header).map_err(|e| VisionError::SignModel(e.to_string()))?;
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&u32::try_from(header.len()).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&self.verifier.to_bytes());
        out.extend_from_slice(&self.classifier.to_bytes());
        Ok(out)
    }

    pub fn from_bytes(b: &[u8]) -> Result<Self> {
        let bad = |why: &str| VisionError::SignModel(why.to_owned());
        let rest = b.strip_prefix(MAGIC.as_slice()).ok_or_else(|| match b.get(..8) {
            // Same family, other layout: say so, rather than "not a sign model".
            Some(m) if m.starts_with(b"RHSIGN") => bad(&format!(
                "format {} is not this binary's {}: retrain with `roadhex train signs`",
                String::from_utf8_lossy(m),
                String::from_utf8_lossy(MAGIC)
            )),
            _ => bad("not a sign model (no trained model embedded?)"),
        })?;
        let len = rest
            .get(..4)
            .and_then(|s| s.try_into().ok())
            .map(u32::from_le_bytes)
            .ok_or_else(|| bad("truncated"))?;
        let len = usize::try_from(len).map_err(|_| bad("header length"))?;
        let header = rest.get(4..4 + len).ok_or_else(|| bad("truncated header"))?;
        let header: Header = serde_json::from_slice(header).map_err(|e| bad(&e.to_string()))?;
        let (verifier, rest) =
            Committee::from_bytes(&rest[4 + len..]).ok_or_else(|| bad("verifier network"))?;
        let (classifier, rest) = Committee::from_bytes(rest).ok_or_else(|| bad("classifier network"))?;
        if !rest.is_empty() || verifier.outputs() != 2 || classifier.outputs() != classes::NAMES.len() {
            return Err(bad("unexpected network shapes"));
        }
        if verifier.inputs() != CLASS_LEN || classifier.inputs() != CLASS_LEN {
            return Err(bad("networks were trained on another descriptor"));
        }
        Ok(Self { header, verifier, classifier })
    }

    /// Signs in a BGR frame at the model's threshold.
    pub fn detect(&self, bgr: &Mat) -> Result<Vec<SignDetection>> {
        let t = self.header.threshold;
        let kept = self.verified(bgr)?.into_iter().filter(|v| v.score >= t);
        Ok(kept.map(|v| self.classify(v)).collect())
    }

    /// Every candidate above [`SCORE_FLOOR`] after suppression, classified: evaluation sweeps the
    /// threshold over these.
    pub fn candidates(&self, bgr: &Mat) -> Result<Vec<SignDetection>> {
        Ok(self.verified(bgr)?.into_iter().map(|v| self.classify(v)).collect())
    }

    /// Proposals with their verifier score (averaged over the views), above [`SCORE_FLOOR`], after
    /// suppression.
    fn verified(&self, bgr: &Mat) -> Result<Vec<Verified>> {
        let mut scored = Vec::new();
        for rect in propose(bgr)? {
            let first = describe_class(bgr, rect, None)?;
            if self.verifier.predict(&first)[1] < SCORE_FLOOR {
                continue;
            }
            // Few boxes get this far: score them over the classifier's views too, so that a box
            // only one view of which looks like a sign (a fragment, a lamp, foliage) loses weight.
            let mut views = vec![first];
            for j in VIEWS {
                views.push(describe_class(bgr, rect, Some(j))?);
            }
            let score = views.iter().map(|d| self.verifier.predict(d)[1]).sum::<f32>() / views.len() as f32;
            if score >= SCORE_FLOOR {
                scored.push(Verified { rect, score, views });
            }
        }
        Ok(nms(scored, |v| (v.score, v.rect), NMS_IOU))
    }

    /// The class of a kept box: the classifier's probabilities averaged over the views the
    /// verifier scored, the box as proposed and a few shifted and rescaled copies of it (proposals
    /// are off by a few pixels, and the digits of a speed limit are only a dozen pixels tall).
    fn classify(&self, v: Verified) -> SignDetection {
        let mut p = vec![0.0f32; self.classifier.outputs()];
        for d in &v.views {
            p.iter_mut().zip(self.classifier.predict(d)).for_each(|(a, b)| *a += b);
        }
        let views = v.views.len() as f32;
        p.iter_mut().for_each(|x| *x /= views);
        let (best, prob) =
            p.iter().enumerate().fold((0, 0.0f32), |a, (i, x)| if *x > a.1 { (i, *x) } else { a });
        let class = if prob >= self.header.min_class_prob { classes::name(best) } else { OTHER_SIGN };
        SignDetection { rect: v.rect, score: v.score, class, class_prob: prob }
    }
}

/// A box the verifier kept, with the descriptors of its views (the classifier reuses them).
struct Verified {
    rect: Rect,
    score: f32,
    views: Vec<Vec<f32>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_model_loads_and_other_formats_are_refused_by_name() {
        let model = SignModel::embedded().expect("embedded model");
        assert_eq!(
            SignModel::from_bytes(&model.to_bytes().expect("bytes")).expect("round trip").header,
            model.header
        );
        let old = SignModel::from_bytes(b"RHSIGN01\0\0\0\0").expect_err("old format");
        assert_eq!(old.code(), "sign_model_invalid");
        assert!(old.to_string().contains("RHSIGN01"), "{old}");
        let junk = SignModel::from_bytes(b"JPEG").expect_err("junk");
        assert!(junk.to_string().contains("not a sign model"), "{junk}");
    }
}
