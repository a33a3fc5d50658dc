//! Licence plates as rows of characters. Proposals: dark-on-light and light-on-dark strokes
//! (black-hat / top-hat), horizontal gradient, closed into blobs the shape of a text row, found
//! on overlapping tiles so each tile gets its own threshold. Verification: inside a proposal,
//! count character-sized blobs of similar height on one line. Plates of any country pass; so
//! does other short text, which only costs a blurred sign.

use super::geometry::{clip, nms, window_starts};
use super::{AnonymizeError, Detection, Detector, Kind};
use opencv::core::{self, Mat, Point, Rect, Size, Vector};
use opencv::imgproc;
use opencv::prelude::*;

#[derive(Debug, Clone, PartialEq)]
pub struct TextRowConfig {
    /// Tile side and step for the proposal pass.
    pub tile: i32,
    pub step: i32,
    /// Scales at which each tile is searched; 1.0 is native, 2.0 finds smaller plates.
    pub tile_scales: Vec<f64>,
    /// Scales at which the whole frame is searched (for plates larger than a tile).
    pub frame_scales: Vec<f64>,
    /// Characters a proposal needs to be kept.
    pub min_chars: usize,
}

impl Default for TextRowConfig {
    fn default() -> Self {
        Self { tile: 512, step: 384, tile_scales: vec![1.0, 0.5], frame_scales: vec![0.25], min_chars: 4 }
    }
}

#[derive(Debug)]
pub struct TextRowPlates {
    cfg: TextRowConfig,
}

/// Structuring element of the proposal pass, about one character wide and half as high.
const KERNEL: (i32, i32) = (13, 5);
const MIN_ROW_HEIGHT: i32 = 8;
/// Height proposals are normalised to before counting characters.
const VERIFY_HEIGHT: i32 = 48;

impl TextRowPlates {
    pub const NAME: &'static str = "textrow-plates";

    pub fn new(cfg: TextRowConfig) -> Self {
        Self { cfg }
    }

    fn proposals(&self, gray: &Mat) -> Result<Vec<Rect>, AnonymizeError> {
        let (w, h) = (gray.cols(), gray.rows());
        let mut out = Vec::new();
        for y in window_starts(h, self.cfg.tile, self.cfg.step) {
            for x in window_starts(w, self.cfg.tile, self.cfg.step) {
                let r = Rect::new(x, y, self.cfg.tile.min(w - x), self.cfg.tile.min(h - y));
                let tile = gray.roi(r)?.try_clone()?;
                for &s in &self.cfg.tile_scales {
                    out.extend(
                        rows_at_scale(&tile, s)?
                            .into_iter()
                            .map(|b| Rect::new(b.x + x, b.y + y, b.width, b.height)),
                    );
                }
            }
        }
        for &s in &self.cfg.frame_scales {
            out.extend(rows_at_scale(gray, s)?);
        }
        Ok(out.into_iter().map(|r| clip(r, w, h)).filter(|r| r.width > 0 && r.height > 0).collect())
    }
}

impl Detector for TextRowPlates {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn version(&self) -> String {
        let c = &self.cfg;
        format!(
            "{}/2(tile={}/{} scales={:?}+{:?} chars>={})",
            Self::NAME,
            c.tile,
            c.step,
            c.tile_scales,
            c.frame_scales,
            c.min_chars
        )
    }

    fn detect(&self, bgr: &Mat) -> Result<Vec<Detection>, AnonymizeError> {
        let gray = to_gray(bgr)?;
        let mut verified = Vec::new();
        for r in self.proposals(&gray)? {
            let chars = count_chars(&gray, r)?;
            if chars >= self.cfg.min_chars {
                verified.push((chars as f32, r));
            }
        }
        Ok(nms(verified, |t| *t, 0.5)
            .into_iter()
            .map(|(chars, rect)| Detection {
                kind: Kind::Plate,
                rect,
                score: (chars / 8.0).min(1.0),
                detector: Self::NAME.to_owned(),
            })
            .collect())
    }
}

pub(crate) fn to_gray(bgr: &Mat) -> Result<Mat, AnonymizeError> {
    if bgr.typ() != core::CV_8UC3 {
        return Err(AnonymizeError::BadFrame);
    }
    let mut gray = Mat::default();
    imgproc::cvt_color_def(bgr, &mut gray, imgproc::COLOR_BGR2GRAY)?;
    Ok(gray)
}

fn rect_kernel(w: i32, h: i32) -> Result<Mat, AnonymizeError> {
    Ok(imgproc::get_structuring_element_def(imgproc::MORPH_RECT, Size::new(w.max(1), h.max(1)))?)
}

fn scaled(img: &Mat, s: f64) -> Result<Mat, AnonymizeError> {
    let mut out = Mat::default();
    let interp = if s < 1.0 { imgproc::INTER_AREA } else { imgproc::INTER_LINEAR };
    imgproc::resize(img, &mut out, Size::default(), s, s, interp)?;
    Ok(out)
}

/// Text-row shaped blobs in `gray` searched at scale `s`, in `gray`'s pixels.
fn rows_at_scale(gray: &Mat, s: f64) -> Result<Vec<Rect>, AnonymizeError> {
    let img = if (s - 1.0).abs() < f64::EPSILON { gray.try_clone()? } else { scaled(gray, s)? };
    if img.cols() < KERNEL.0 * 2 || img.rows() < KERNEL.1 * 4 {
        return Ok(Vec::new());
    }
    let kernel = rect_kernel(KERNEL.0, KERNEL.1)?;
    let open = rect_kernel(5, 5)?;
    let mut out = Vec::new();
    for op in [imgproc::MORPH_BLACKHAT, imgproc::MORPH_TOPHAT] {
        let mut strokes = Mat::default();
        imgproc::morphology_ex_def(&img, &mut strokes, op, &kernel)?;
        let mut gx = Mat::default();
        imgproc::sobel_def(&strokes, &mut gx, core::CV_32F, 1, 0)?;
        let mut mag = Mat::default();
        core::absdiff(&gx, &core::Scalar::all(0.0), &mut mag)?;
        let mut grad = Mat::default();
        core::normalize(&mag, &mut grad, 0.0, 255.0, core::NORM_MINMAX, core::CV_8U, &core::no_array())?;
        let mut smooth = Mat::default();
        imgproc::gaussian_blur_def(&grad, &mut smooth, Size::new(5, 5), 0.0)?;
        let mut closed = Mat::default();
        imgproc::morphology_ex_def(&smooth, &mut closed, imgproc::MORPH_CLOSE, &kernel)?;
        let mut bin = Mat::default();
        imgproc::threshold(&closed, &mut bin, 0.0, 255.0, imgproc::THRESH_BINARY | imgproc::THRESH_OTSU)?;
        let mut cleaned = Mat::default();
        imgproc::morphology_ex_def(&bin, &mut cleaned, imgproc::MORPH_OPEN, &open)?;
        let mut contours = Vector::<Vector<Point>>::new();
        imgproc::find_contours_def(
            &cleaned,
            &mut contours,
            imgproc::RETR_EXTERNAL,
            imgproc::CHAIN_APPROX_SIMPLE,
        )?;
        for c in &contours {
            let b = imgproc::bounding_rect(&c)?;
            let (w, h) = (f64::from(b.width), f64::from(b.height));
            if b.height < MIN_ROW_HEIGHT || w < 1.3 * h || w > 7.0 * h {
                continue;
            }
            let (px, py) = (0.15 * w, 0.15 * h);
            out.push(Rect::new(
                ((f64::from(b.x) - px) / s) as i32,
                ((f64::from(b.y) - py) / s) as i32,
                ((w + 2.0 * px) / s) as i32,
                ((h + 2.0 * py) / s) as i32,
            ));
        }
    }
    Ok(out)
}

/// Longest run of character-like blobs of similar height, closely spaced on one line, inside `r`.
pub(crate) fn count_chars(gray: &Mat, r: Rect) -> Result<usize, AnonymizeError> {
    if r.width < 8 || r.height < 6 {
        return Ok(0);
    }
    let crop = gray.roi(r)?.try_clone()?;
    let hgt = VERIFY_HEIGHT;
    let wid = ((f64::from(r.width) * f64::from(hgt) / f64::from(r.height)) as i32).max(8);
    let mut norm = Mat::default();
    let interp = if r.height > hgt { imgproc::INTER_AREA } else { imgproc::INTER_LINEAR };
    imgproc::resize(&crop, &mut norm, Size::new(wid, hgt), 0.0, 0.0, interp)?;
    let k = (hgt / 4) | 1;
    let kernel = rect_kernel(k, k)?;
    let horizontal = rect_kernel((wid / 4).max(3), 1)?;
    let vertical = rect_kernel(1, hgt * 85 / 100)?;
    let mut best = 0;
    for op in [imgproc::MORPH_BLACKHAT, imgproc::MORPH_TOPHAT] {
        let mut strokes = Mat::default();
        imgproc::morphology_ex_def(&norm, &mut strokes, op, &kernel)?;
        let mut bin = Mat::default();
        imgproc::threshold(&strokes, &mut bin, 0.0, 255.0, imgproc::THRESH_BINARY | imgproc::THRESH_OTSU)?;
        best = best.max(chars_in(&bin, wid, hgt)?);
        // Characters often touch the plate's frame; remove long lines and count again.
        let mut hl = Mat::default();
        imgproc::morphology_ex_def(&bin, &mut hl, imgproc::MORPH_OPEN, &horizontal)?;
        let mut vl = Mat::default();
        imgproc::morphology_ex_def(&bin, &mut vl, imgproc::MORPH_OPEN, &vertical)?;
        let mut lines = Mat::default();
        core::bitwise_or_def(&hl, &vl, &mut lines)?;
        let mut stripped = Mat::default();
        core::subtract_def(&bin, &lines, &mut stripped)?;
        best = best.max(chars_in(&stripped, wid, hgt)?);
    }
    Ok(best)
}

fn chars_in(bin: &Mat, wid: i32, hgt: i32) -> Result<usize, AnonymizeError> {
    let (mut labels, mut stats, mut centroids) = (Mat::default(), Mat::default(), Mat::default());
    let n = imgproc::connected_components_with_stats(
        bin,
        &mut labels,
        &mut stats,
        &mut centroids,
        4,
        core::CV_32S,
    )?;
    let hf = f64::from(hgt);
    let mut cand: Vec<Blob> = Vec::new();
    for i in 1..n {
        let stat = |c: i32| stats.at_2d::<i32>(i, c).copied();
        let (x, y) = (stat(imgproc::CC_STAT_LEFT)?, stat(imgproc::CC_STAT_TOP)?);
        let (cw, ch, area) =
            (stat(imgproc::CC_STAT_WIDTH)?, stat(imgproc::CC_STAT_HEIGHT)?, stat(imgproc::CC_STAT_AREA)?);
        let (w, h, a) = (f64::from(cw), f64::from(ch), f64::from(area));
        let char_like =
            (0.2 * hf..=0.95 * hf).contains(&h) && cw <= wid * 3 / 10 && w <= 1.5 * h && a >= 0.12 * w * h;
        // A filled rectangle (a window, a lamp) is not a glyph; thin bars ("1", "I") may be filled.
        let solid = w > 0.35 * h && a > 0.85 * w * h;
        if char_like && !solid {
            cand.push(Blob { x: f64::from(x), w, h, cy: f64::from(y) + h / 2.0 });
        }
    }
    Ok(cand.iter().map(|c0| longest_row(&cand, c0)).max().unwrap_or(0))
}

struct Blob {
    x: f64,
    w: f64,
    h: f64,
    cy: f64,
}

/// Blobs as tall as `c0` on its line, chained left to right with gaps under 0.8 of its height;
/// rows of windows or fence posts are spaced wider than the characters of a plate.
fn longest_row(cand: &[Blob], c0: &Blob) -> usize {
    let mut row: Vec<&Blob> = cand
        .iter()
        .filter(|c| (c.h - c0.h).abs() <= 0.25 * c0.h && (c.cy - c0.cy).abs() <= 0.3 * c0.h)
        .collect();
    row.sort_by(|a, b| a.x.total_cmp(&b.x));
    let (mut best, mut run, mut right) = (0, 0, f64::NEG_INFINITY);
    for c in row {
        run = if c.x - right <= 0.8 * c0.h { run + 1 } else { 1 };
        right = right.max(c.x + c.w);
        best = best.max(run);
    }
    best
}
