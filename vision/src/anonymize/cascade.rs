use super::geometry::window_starts;
use super::pool::Pool;
use super::{AnonymizeError, Detection, Detector, Kind};
use opencv::core::{Mat, Rect, Size, Vector};
use opencv::objdetect::CascadeClassifier;
use opencv::prelude::*;
use opencv::{imgproc, objdetect};
use std::path::PathBuf;

/// A Haar/LBP cascade run over the whole frame at full resolution (its image pyramid only
/// looks for larger objects, never shrinks the smallest).
#[derive(Debug)]
pub struct CascadeDetector {
    name: String,
    kind: Kind,
    path: PathBuf,
    scale_factor: f64,
    min_neighbors: i32,
    min_size: Size,
    /// Frames wider than this are split into overlapping windows so each call stays bounded.
    window: i32,
    pool: Pool<(), CascadeClassifier>,
}

impl CascadeDetector {
    pub fn new(
        name: &str,
        kind: Kind,
        path: PathBuf,
        min_neighbors: i32,
        min_size: Size,
    ) -> Result<Self, AnonymizeError> {
        let d = Self {
            name: name.to_owned(),
            kind,
            path,
            scale_factor: 1.1,
            min_neighbors,
            min_size,
            window: 4096,
            pool: Pool::new(),
        };
        // Load once now so a broken file fails at startup, not on the first frame.
        d.pool.with((), || d.load(), |_| Ok(()))?;
        Ok(d)
    }

    fn load(&self) -> Result<CascadeClassifier, AnonymizeError> {
        let c = CascadeClassifier::new(&self.path)?;
        if c.empty()? {
            return Err(AnonymizeError::ModelLoad {
                path: self.path.clone(),
                reason: "cascade is empty".into(),
            });
        }
        Ok(c)
    }
}

impl Detector for CascadeDetector {
    fn name(&self) -> &str {
        &self.name
    }

    fn version(&self) -> String {
        let file = self.path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        format!("{}(opencv-data {file}, sf={}, mn={})", self.name, self.scale_factor, self.min_neighbors)
    }

    fn detect(&self, bgr: &Mat) -> Result<Vec<Detection>, AnonymizeError> {
        let mut gray = Mat::default();
        imgproc::cvt_color_def(bgr, &mut gray, imgproc::COLOR_BGR2GRAY)?;
        let (w, h) = (gray.cols(), gray.rows());
        let mut out = Vec::new();
        self.pool.with(
            (),
            || self.load(),
            |c| {
                for y in window_starts(h, self.window, self.window * 3 / 4) {
                    for x in window_starts(w, self.window, self.window * 3 / 4) {
                        let r = Rect::new(x, y, self.window.min(w - x), self.window.min(h - y));
                        let roi = gray.roi(r)?;
                        let mut found = Vector::<Rect>::new();
                        c.detect_multi_scale(
                            &roi,
                            &mut found,
                            self.scale_factor,
                            self.min_neighbors,
                            objdetect::CASCADE_SCALE_IMAGE,
                            self.min_size,
                            Size::default(),
                        )?;
                        out.extend(found.iter().map(|f| Detection {
                            kind: self.kind,
                            rect: Rect::new(f.x + x, f.y + y, f.width, f.height),
                            score: 1.0,
                            detector: self.name.clone(),
                        }));
                    }
                }
                Ok(())
            },
        )?;
        Ok(out)
    }
}
