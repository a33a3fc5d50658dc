//! Candidate boxes from colour and brightness. German signs are framed or filled in red, blue or
//! yellow: each colour's mask is closed, split into connected components, and components of a
//! sign's size and shape become boxes. At dusk, against the light or in a washed-out frame the paint
//! has next to no colour left, but a sign's white field is still brighter than what is around it, and
//! a plate against a bright sky is darker: regions standing out of the local brightness, either way
//! and at several levels (like MSER), are offered too.
//! Cheap and high-recall; the verifier network removes the rest.

use crate::anonymize::geometry::iou;
use crate::error::Result;
use opencv::core::{BORDER_CONSTANT, Mat, Point, Rect, Size};
use opencv::imgproc;
use opencv::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Colour {
    Red,
    Blue,
    Yellow,
    /// Brighter than the neighbourhood (a sign's white or yellow field), or darker (a plate against
    /// a bright sky or wall).
    Field,
}

/// Chromaticity margins, in percent of r+g+b, at which each colour's mask is cut. Several levels
/// stand in for MSER: a faded sign separates from a dull red wall only at a strict level, a dark
/// frame's sign shows only at a loose one.
const RED_LEVELS: [i32; 4] = [7, 11, 17, 26];
const BLUE_LEVELS: [i32; 3] = [6, 11, 18];
const YELLOW_LEVELS: [i32; 2] = [15, 25];
/// Levels, in local standard deviations above the local mean, at which bright regions are cut.
const BRIGHT_LEVELS: [f32; 5] = [0.4, 0.8, 1.2, 1.6, 2.0];
/// Levels, in local standard deviations below the local mean, at which dark regions are cut.
const DARK_LEVELS: [f32; 2] = [0.8, 1.6];
/// Scale of the neighbourhood for the bright and dark regions, in pixels of the frame (Gaussian sigma).
const BRIGHT_SIGMA: f64 = 20.0;
/// Boxes whose longer side is shorter than this are not offered. A sign that small is a dozen
/// pixels of plate: too few to read its class (GTSRB's smallest crops are 15 px with their margin),
/// and a driver passing it sees it again, larger, a few frames later. Cross-validated on the dev
/// scenes, about half of the false positives at the operating point were boxes below this.
pub const MIN_SIDE: i32 = 16;
/// A field is a sign's inner part: its plate is 1.1 to 1.4 times its size (a ring, a triangle).
const FIELD_GROWTH: [f64; 2] = [1.1, 1.4];

/// Boxes that may hold a sign, in pixels of `bgr`.
pub fn propose(bgr: &Mat) -> Result<Vec<Rect>> {
    let (w, h) = (bgr.cols(), bgr.rows());
    // Read the frame's pixels in place; only a non-continuous view (a ROI) needs a copy.
    let copy;
    let data: &[u8] = if bgr.is_continuous() {
        bgr.data_bytes()?
    } else {
        copy = bgr.try_clone()?;
        copy.data_bytes()?
    };
    let n = usize::try_from(w * h).unwrap_or(0).min(data.len() / 3);
    // Per pixel and colour: the margin in percent of the pixel's sum (0 when not that colour).
    let mut margin = [vec![0i8; n], vec![0i8; n], vec![0i8; n]];
    for i in 0..n {
        let (b, g, r) = (i32::from(data[3 * i]), i32::from(data[3 * i + 1]), i32::from(data[3 * i + 2]));
        let s = (b + g + r).max(1);
        let pct = |v: i32| i8::try_from((v * 100 / s).clamp(0, 100)).unwrap_or(0);
        if r > 20 {
            margin[0][i] = pct(r - g.max(b));
        }
        // Blue must also clear red by more: grey-blue sky and shadows are blue by a little.
        if b > 25 {
            margin[1][i] = pct((b - r.max(g)).min((b - r) * 2 / 5));
        }
        if r > 90 && g > 70 {
            margin[2][i] = pct(r.min(g) - b);
        }
    }
    let max_side = w.min(h) / 3;
    let mut boxes = Vec::new();
    let levels: [(&[i32], Colour); 3] =
        [(&RED_LEVELS, Colour::Red), (&BLUE_LEVELS, Colour::Blue), (&YELLOW_LEVELS, Colour::Yellow)];
    let mut mask = vec![0u8; n];
    for (k, (cuts, colour)) in levels.iter().enumerate() {
        for &cut in cuts.iter() {
            for (m, v) in mask.iter_mut().zip(&margin[k]) {
                *m = if i32::from(*v) > cut { 255 } else { 0 };
            }
            components(&mask, w, h, *colour, max_side, &mut boxes)?;
        }
    }
    let z = local_contrast(bgr)?;
    for cut in BRIGHT_LEVELS {
        for (m, v) in mask.iter_mut().zip(&z) {
            *m = if *v > cut { 255 } else { 0 };
        }
        components(&mask, w, h, Colour::Field, max_side, &mut boxes)?;
        // A plate's field often joins the field of the plate below it through the white pole:
        // the mask without thin vertical strokes separates them.
        components(&without_poles(&mask, w, h)?, w, h, Colour::Field, max_side, &mut boxes)?;
    }
    for cut in DARK_LEVELS {
        for (m, v) in mask.iter_mut().zip(&z) {
            *m = if *v < -cut { 255 } else { 0 };
        }
        components(&mask, w, h, Colour::Field, max_side, &mut boxes)?;
    }
    // Near-identical boxes from different masks or levels are one candidate.
    let mut out: Vec<Rect> = Vec::with_capacity(boxes.len());
    for b in boxes.into_iter().filter(|b| b.width.max(b.height) >= MIN_SIDE) {
        if out.iter().all(|o| iou(*o, b) < 0.85) {
            out.push(b);
        }
    }
    Ok(out)
}

/// `mask` opened with a 5×1 kernel: vertical strokes under 5 px wide go.
fn without_poles(mask: &[u8], w: i32, h: i32) -> Result<Vec<u8>> {
    let m = Mat::new_rows_cols_with_data(h, w, mask)?;
    Ok(morphology(&m, imgproc::MORPH_OPEN, Size::new(5, 1))?.data_bytes()?.to_vec())
}

/// `op` (open, close) of a binary mask with a rectangular kernel of `size`.
fn morphology(m: &impl opencv::core::ToInputArray, op: i32, size: Size) -> Result<Mat> {
    let kernel = imgproc::get_structuring_element(imgproc::MORPH_RECT, size, Point::new(-1, -1))?;
    let mut out = Mat::default();
    imgproc::morphology_ex(
        m,
        &mut out,
        op,
        &kernel,
        Point::new(-1, -1),
        1,
        BORDER_CONSTANT,
        imgproc::morphology_default_border_value()?,
    )?;
    Ok(out)
}

/// Pixels each side that grow `side` by `factor`.
fn grow(side: i32, factor: f64) -> i32 {
    (f64::from(side) * (factor - 1.0) / 2.0).round() as i32
}

/// Per pixel, how far its grey level stands above its neighbourhood's mean, in the
/// neighbourhood's standard deviations (a small floor keeps flat dark areas from amplifying noise).
/// The neighbourhood statistics are taken on a quarter-size frame: they are smooth anyway.
fn local_contrast(bgr: &Mat) -> Result<Vec<f32>> {
    let mut grey = Mat::default();
    imgproc::cvt_color_def(bgr, &mut grey, imgproc::COLOR_BGR2GRAY)?;
    let mut g = Mat::default();
    grey.convert_to(&mut g, opencv::core::CV_32F, 1.0, 0.0)?;
    let mut sq = Mat::default();
    opencv::core::multiply(&g, &g, &mut sq, 1.0, -1)?;
    let size = g.size()?;
    let smooth = |m: &Mat| -> Result<Mat> {
        let (mut small, mut blurred, mut back) = (Mat::default(), Mat::default(), Mat::default());
        imgproc::resize(m, &mut small, Size::default(), 0.25, 0.25, imgproc::INTER_AREA)?;
        imgproc::gaussian_blur_def(&small, &mut blurred, Size::new(0, 0), BRIGHT_SIGMA / 4.0)?;
        imgproc::resize(&blurred, &mut back, size, 0.0, 0.0, imgproc::INTER_LINEAR)?;
        Ok(back)
    };
    let (mean, mean_sq) = (smooth(&g)?, smooth(&sq)?);
    let (g, mean, mean_sq) =
        (g.data_typed::<f32>()?, mean.data_typed::<f32>()?, mean_sq.data_typed::<f32>()?);
    Ok(g.iter()
        .zip(mean)
        .zip(mean_sq)
        .map(|((v, m), s)| (v - m) / ((s - m * m).max(0.0).sqrt() + 4.0))
        .collect())
}

fn components(mask: &[u8], w: i32, h: i32, colour: Colour, max_side: i32, out: &mut Vec<Rect>) -> Result<()> {
    let m = Mat::new_rows_cols_with_data(h, w, mask)?;
    let closed = morphology(&m, imgproc::MORPH_CLOSE, Size::new(3, 3))?;
    let (mut labels, mut stats, mut centroids) = (Mat::default(), Mat::default(), Mat::default());
    let count = imgproc::connected_components_with_stats(
        &closed,
        &mut labels,
        &mut stats,
        &mut centroids,
        8,
        opencv::core::CV_32S,
    )?;
    for label in 1..count {
        let at = |c: i32| stats.at_2d::<i32>(label, c).copied();
        let (x, y, bw, bh, area) = (
            at(imgproc::CC_STAT_LEFT)?,
            at(imgproc::CC_STAT_TOP)?,
            at(imgproc::CC_STAT_WIDTH)?,
            at(imgproc::CC_STAT_HEIGHT)?,
            at(imgproc::CC_STAT_AREA)?,
        );
        let aspect = f64::from(bw) / f64::from(bh);
        let fill = f64::from(area) / f64::from(bw * bh);
        if colour == Colour::Field {
            // A field is compact and solid; thin or ragged regions are sky, walls and shadows.
            if bw < 7 || bh < 7 || bw > max_side || bh > max_side || !(0.3..=0.95).contains(&fill) {
                continue;
            }
            let fields = if (0.5..=2.0).contains(&aspect) {
                [Some(Rect::new(x, y, bw, bh)), None]
            } else if (0.3..0.5).contains(&aspect) {
                // Two plates on one post whose fields touch (a sign above another, or above its
                // white supplementary plate): the squares at either end.
                [Some(Rect::new(x, y, bw, bw)), Some(Rect::new(x, y + bh - bw, bw, bw))]
            } else {
                continue;
            };
            for f in fields.into_iter().flatten() {
                for g in FIELD_GROWTH {
                    let (gx, gy) = (grow(f.width, g), grow(f.height, g));
                    out.push(Rect::new(f.x - gx, f.y - gy, f.width + 2 * gx, f.height + 2 * gy));
                }
            }
            continue;
        }
        if bw < 9 || bh < 9 || bw > max_side || bh > max_side {
            continue;
        }
        if !(0.3..=3.0).contains(&aspect) || !(0.08..=0.95).contains(&fill) {
            continue;
        }
        // Two signs stacked on one post touch and come out as one tall (or wide) component.
        if aspect < 0.7 {
            out.push(Rect::new(x, y, bw, bw));
            out.push(Rect::new(x, y + bh - bw, bw, bw));
            continue;
        }
        if aspect > 1.45 {
            out.push(Rect::new(x, y, bh, bh));
            out.push(Rect::new(x + bw - bh, y, bh, bh));
            // Or one half of a disc cut by a white bar ("no entry"): the plate lies below or above.
            if aspect < 2.6 {
                out.push(Rect::new(x, y, bw, bw));
                out.push(Rect::new(x, y + bh - bw, bw, bw));
            }
            continue;
        }
        out.push(Rect::new(x, y, bw, bh));
        // A component is often the plate's inner part (a ring broken at the top, a pictogram):
        // offer the box grown by a fifth too.
        let (gx, gy) = (bw / 10 + 1, bh / 10 + 1);
        out.push(Rect::new(x - gx, y - gy, bw + 2 * gx, bh + 2 * gy));
        // The yellow of "priority road" is the inner diamond; the plate is its white frame around it.
        if matches!(colour, Colour::Yellow) {
            let (gw, gh) = ((f64::from(bw) * 0.22) as i32, (f64::from(bh) * 0.22) as i32);
            out.push(Rect::new(x - gw, y - gh, bw + 2 * gw, bh + 2 * gh));
        }
        // A sign whose ring is broken up is often found as its larger half: offer the square box.
        if !(0.8..=1.25).contains(&aspect) {
            let side = bw.max(bh);
            out.push(Rect::new(x + bw / 2 - side / 2, y + bh / 2 - side / 2, side, side));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use opencv::core::{CV_8UC3, Scalar};
    use roadhex_schemas::rng::SplitMix64;

    /// A dark, slightly noisy frame with a colourless plate: a grey ring around a paler field.
    fn dusk_with_plate(centre: Point, radius: i32) -> Mat {
        let mut img = Mat::new_rows_cols_with_default(400, 600, CV_8UC3, Scalar::all(0.0)).expect("mat");
        let mut rng = SplitMix64(3);
        for v in img.data_bytes_mut().expect("bytes") {
            *v = 20 + u8::try_from(rng.below(8)).unwrap_or(0);
        }
        imgproc::circle(&mut img, centre, radius, Scalar::all(38.0), -1, imgproc::LINE_AA, 0).expect("ring");
        imgproc::circle(&mut img, centre, radius * 3 / 4, Scalar::all(62.0), -1, imgproc::LINE_AA, 0)
            .expect("field");
        img
    }

    /// A colourless, slightly noisy frame of grey level `level`.
    fn plain(level: u8) -> Mat {
        let mut img = Mat::new_rows_cols_with_default(400, 600, CV_8UC3, Scalar::all(0.0)).expect("mat");
        let mut rng = SplitMix64(5);
        for v in img.data_bytes_mut().expect("bytes") {
            *v = level + u8::try_from(rng.below(8)).unwrap_or(0);
        }
        img
    }

    fn best_iou(img: &Mat, truth: Rect) -> f32 {
        propose(img).expect("propose").iter().map(|b| iou(*b, truth)).fold(0.0f32, f32::max)
    }

    #[test]
    fn plates_joined_by_a_white_pole_are_proposed_apart() {
        let mut img = plain(60);
        let white = Scalar::all(230.0);
        // Two pale discs, 30 px, 80 px apart on one pole: one component far taller than wide.
        imgproc::rectangle(&mut img, Rect::new(298, 100, 4, 140), white, -1, imgproc::LINE_8, 0)
            .expect("pole");
        for cy in [100, 240] {
            imgproc::circle(&mut img, Point::new(300, cy), 15, white, -1, imgproc::LINE_AA, 0).expect("disc");
        }
        for y in [85, 225] {
            let truth = Rect::new(285, y, 31, 31);
            assert!(best_iou(&img, truth) >= 0.5, "{truth:?}");
        }
    }

    #[test]
    fn a_dark_plate_against_a_bright_sky_is_proposed() {
        let mut img = plain(200);
        imgproc::circle(&mut img, Point::new(300, 200), 20, Scalar::all(70.0), -1, imgproc::LINE_AA, 0)
            .expect("plate");
        let best = best_iou(&img, Rect::new(280, 180, 41, 41));
        assert!(best >= 0.5, "best IoU {best}");
    }

    #[test]
    fn a_plate_without_colour_is_still_proposed() {
        let img = dusk_with_plate(Point::new(300, 200), 20);
        let truth = Rect::new(280, 180, 41, 41);
        let boxes = propose(&img).expect("propose");
        let best = boxes.iter().map(|b| iou(*b, truth)).fold(0.0f32, f32::max);
        // Nothing in the frame has a hue, so the box came from brightness alone.
        assert!(best >= 0.5, "best IoU {best} of {} boxes", boxes.len());
    }
}
