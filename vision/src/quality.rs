//! Per-frame quality gates: too dark, blurred, obstructed (hood or cover), tilted horizon, and
//! near-duplicate of the previous frame. Metrics are computed on a 512-px-wide grey copy: they
//! describe the whole scene, and the small copy keeps them cheap beside anonymization.

use opencv::core::{self, Mat, Scalar, Size};
use opencv::imgproc;
use opencv::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct QualityConfig {
    /// Mean grey level (0–255) below which a frame is too dark.
    pub min_brightness: f64,
    /// Variance of the Laplacian below which a frame is blurred.
    pub min_sharpness: f64,
    /// Share of the frame (from the bottom) covered by a texture-less region (hood, cover).
    pub max_obstruction: f64,
    /// Horizon tilt in degrees beyond which the camera is mounted crooked.
    pub max_tilt_deg: f64,
    /// Hamming distance of perceptual hashes at or below which a frame repeats the previous one.
    pub max_duplicate_distance: u32,
}

impl Default for QualityConfig {
    fn default() -> Self {
        Self {
            min_brightness: 30.0,
            min_sharpness: 12.0,
            max_obstruction: 0.25,
            max_tilt_deg: 12.0,
            max_duplicate_distance: 2,
        }
    }
}

/// The measurements of one frame and the verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quality {
    pub brightness: f64,
    pub sharpness: f64,
    pub obstruction: f64,
    /// Roll estimate of this frame; None when the scene has too few vertical edges. One frame's
    /// estimate is noisy (±9° on level wide-angle frames), so the gate is per capture:
    /// see [`capture_tilt`].
    pub tilt_deg: Option<f64>,
    /// 64-bit difference hash of the frame.
    pub phash: u64,
    /// Reason codes; empty means the frame passed.
    pub reasons: Vec<String>,
}

impl Quality {
    pub fn passed(&self) -> bool {
        self.reasons.is_empty()
    }

    /// `ok` or the reasons joined by commas (the `quality` column).
    pub fn verdict(&self) -> String {
        if self.reasons.is_empty() { "ok".to_owned() } else { self.reasons.join(",") }
    }
}

const WORK_WIDTH: i32 = 512;

/// The mounting roll of a whole capture: the median of its frames' estimates, when at least five
/// frames gave one. `Some` and beyond `max_tilt_deg` means every frame gets `tilted`.
pub fn capture_tilt(estimates: impl IntoIterator<Item = Option<f64>>, cfg: &QualityConfig) -> Option<f64> {
    let mut v: Vec<f64> = estimates.into_iter().flatten().collect();
    if v.len() < 5 {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2]).filter(|t| t.abs() > cfg.max_tilt_deg)
}

/// Measures a BGR frame; `previous` is the perceptual hash of the capture's previous frame.
pub fn assess(bgr: &Mat, previous: Option<u64>, cfg: &QualityConfig) -> opencv::Result<Quality> {
    let gray = small_gray(bgr)?;
    let brightness = core::mean_def(&gray)?[0];
    let sharpness = laplacian_variance(&gray)?;
    let obstruction = obstruction_share(&gray)?;
    let tilt_deg = horizon_tilt(&gray)?;
    let phash = dhash(&gray)?;
    let mut reasons = Vec::new();
    if brightness < cfg.min_brightness {
        reasons.push("too_dark".to_owned());
    }
    if sharpness < cfg.min_sharpness {
        reasons.push("blurred".to_owned());
    }
    if obstruction > cfg.max_obstruction {
        reasons.push("obstructed".to_owned());
    }
    if previous.is_some_and(|p| (p ^ phash).count_ones() <= cfg.max_duplicate_distance) {
        reasons.push("duplicate".to_owned());
    }
    Ok(Quality { brightness, sharpness, obstruction, tilt_deg, phash, reasons })
}

fn small_gray(bgr: &Mat) -> opencv::Result<Mat> {
    let mut gray = Mat::default();
    imgproc::cvt_color_def(bgr, &mut gray, imgproc::COLOR_BGR2GRAY)?;
    let (w, h) = (gray.cols(), gray.rows());
    if w <= WORK_WIDTH {
        return Ok(gray);
    }
    let size = Size::new(WORK_WIDTH, (h * WORK_WIDTH / w).max(1));
    let mut small = Mat::default();
    imgproc::resize(&gray, &mut small, size, 0.0, 0.0, imgproc::INTER_AREA)?;
    Ok(small)
}

fn laplacian_variance(gray: &Mat) -> opencv::Result<f64> {
    let mut lap = Mat::default();
    imgproc::laplacian_def(gray, &mut lap, core::CV_64F)?;
    let (mut mean, mut dev) = (Mat::default(), Mat::default());
    core::mean_std_dev_def(&lap, &mut mean, &mut dev)?;
    let d = *dev.at::<f64>(0)?;
    Ok(d * d)
}

/// Share of rows, counted up from the bottom, with almost no horizontal texture: a hood, a
/// dashboard or a cover. Road surfaces keep enough texture to stop the count.
fn obstruction_share(gray: &Mat) -> opencv::Result<f64> {
    let mut gx = Mat::default();
    imgproc::sobel_def(gray, &mut gx, core::CV_32F, 1, 0)?;
    let mut abs = Mat::default();
    core::absdiff(&gx, &Scalar::all(0.0), &mut abs)?;
    let mut rows = Mat::default();
    core::reduce(&abs, &mut rows, 1, core::REDUCE_AVG, core::CV_32F)?;
    let h = rows.rows();
    let mut flat = 0;
    for r in (0..h).rev() {
        if *rows.at_2d::<f32>(r, 0)? < 4.0 {
            flat += 1;
        } else {
            break;
        }
    }
    // A frame that is flat everywhere (lens cap, wall) is fully obstructed.
    Ok(f64::from(flat) / f64::from(h.max(1)))
}

/// Camera roll from vertical structures (poles, facades, sign posts): with no roll they stay
/// vertical under perspective, while horizontal edges and lane lines converge. Their edges have
/// near-horizontal gradients; the magnitude-weighted mode of those gradients' angles (within
/// ±25°) is the roll. None when too few strong vertical edges exist to tell (open highway).
fn horizon_tilt(gray: &Mat) -> opencv::Result<Option<f64>> {
    let (mut gx, mut gy) = (Mat::default(), Mat::default());
    imgproc::sobel_def(gray, &mut gx, core::CV_32F, 1, 0)?;
    imgproc::sobel_def(gray, &mut gy, core::CV_32F, 0, 1)?;
    let mut hist = [0f64; 51];
    let mut support = 0usize;
    for y in 0..gray.rows() {
        for x in 0..gray.cols() {
            let (dx, dy) = (f64::from(*gx.at_2d::<f32>(y, x)?), f64::from(*gy.at_2d::<f32>(y, x)?));
            let mag = dx.hypot(dy);
            if mag < 120.0 {
                continue;
            }
            // Fold the gradient to point right; its angle from horizontal is the edge's lean.
            let (dx, dy) = if dx < 0.0 { (-dx, -dy) } else { (dx, dy) };
            let a = dy.atan2(dx).to_degrees();
            if a.abs() <= 25.0 {
                hist[(a.round() + 25.0) as usize] += mag;
                support += 1;
            }
        }
    }
    let pixels = (gray.rows() * gray.cols()) as usize;
    if support < pixels / 200 {
        return Ok(None);
    }
    // Smooth over ±2° so noise does not pick a lone bin.
    let smooth = |i: usize| hist[i.saturating_sub(2)..=(i + 2).min(50)].iter().sum::<f64>();
    let best = (0..51).max_by(|&a, &b| smooth(a).total_cmp(&smooth(b))).unwrap_or(25);
    Ok(Some(best as f64 - 25.0))
}

/// Difference hash: 9x8 grey thumbnail, one bit per horizontal neighbour comparison.
pub fn dhash(gray: &Mat) -> opencv::Result<u64> {
    let mut thumb = Mat::default();
    imgproc::resize(gray, &mut thumb, Size::new(9, 8), 0.0, 0.0, imgproc::INTER_AREA)?;
    let mut bits = 0u64;
    for y in 0..8 {
        for x in 0..8 {
            let (a, b) = (*thumb.at_2d::<u8>(y, x)?, *thumb.at_2d::<u8>(y, x + 1)?);
            bits = (bits << 1) | u64::from(a > b);
        }
    }
    Ok(bits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opencv::imgcodecs;

    fn frame(name: &str) -> Mat {
        imgcodecs::imread_def(roadhex_schemas::testdata::shared_data().join(name)).expect("read")
    }

    fn bee_frames() -> Vec<String> {
        let dir = roadhex_schemas::testdata::shared_data().join("dashcam_hivemapper_bee_sf/frames");
        let mut v: Vec<String> = std::fs::read_dir(&dir)
            .expect("dir")
            .flatten()
            .map(|e| e.path().display().to_string())
            .filter(|p| p.ends_with(".jpg"))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn real_dashcam_frames_pass() {
        let cfg = QualityConfig::default();
        let mut prev = None;
        let mut failed = Vec::new();
        for p in bee_frames().iter().step_by(5) {
            let img = imgcodecs::imread_def(p).expect("read");
            let q = assess(&img, prev, &cfg).expect("assess");
            prev = Some(q.phash);
            if !q.passed() {
                failed.push((p.clone(), q));
            }
        }
        for name in [
            "dashcam_udacity/lanelines_p1/solidWhiteRight.jpg",
            "dashcam_udacity/lanelines_p1/solidYellowLeft.jpg",
        ] {
            let q = assess(&frame(name), None, &cfg).expect("assess");
            assert!(q.passed(), "{name}: {q:?}");
        }
        assert!(failed.is_empty(), "{failed:?}");
    }

    #[test]
    fn bad_frames_fail_with_their_reason() {
        let cfg = QualityConfig::default();
        let img = frame("dashcam_udacity/lanelines_p1/solidWhiteRight.jpg");
        let mut dark = Mat::default();
        img.convert_to(&mut dark, -1, 0.1, 0.0).expect("scale");
        assert!(assess(&dark, None, &cfg).expect("assess").reasons.contains(&"too_dark".to_owned()));
        let mut blurred = Mat::default();
        imgproc::gaussian_blur_def(&img, &mut blurred, Size::new(31, 31), 12.0).expect("blur");
        assert!(assess(&blurred, None, &cfg).expect("assess").reasons.contains(&"blurred".to_owned()));
        // The lower 40 % covered by a flat grey "hood".
        let mut hood = img.clone();
        let h = hood.rows();
        let rect = core::Rect::new(0, h * 6 / 10, hood.cols(), h - h * 6 / 10);
        imgproc::rectangle(&mut hood, rect, Scalar::all(50.0), -1, imgproc::LINE_8, 0).expect("draw");
        assert!(assess(&hood, None, &cfg).expect("assess").reasons.contains(&"obstructed".to_owned()));
        // City frames (poles, facades) rotated 20°: the camera is mounted crooked.
        let mut level = Vec::new();
        let mut crooked = Vec::new();
        for p in bee_frames().iter().step_by(7) {
            let city = imgcodecs::imread_def(p).expect("read");
            level.push(assess(&city, None, &cfg).expect("assess").tilt_deg);
            let center = core::Point2f::new(city.cols() as f32 / 2.0, city.rows() as f32 / 2.0);
            let rot = imgproc::get_rotation_matrix_2d(center, 20.0, 1.0).expect("rot");
            let mut tilted = Mat::default();
            imgproc::warp_affine_def(&city, &mut tilted, &rot, city.size().expect("size")).expect("warp");
            crooked.push(assess(&tilted, None, &cfg).expect("assess").tilt_deg);
        }
        assert_eq!(capture_tilt(level, &cfg), None);
        assert!(capture_tilt(crooked.clone(), &cfg).is_some(), "{crooked:?}");
        // The same frame twice is a duplicate.
        let first = assess(&img, None, &cfg).expect("assess");
        let again = assess(&img, Some(first.phash), &cfg).expect("assess");
        assert_eq!(again.reasons, vec!["duplicate".to_owned()]);
    }
}
