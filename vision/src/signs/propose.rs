//! Candidate boxes from colour and brightness. German signs are framed or filled in red, blue or
//! yellow: each colour's mask is closed, split into connected components, and components of a
//! sign's size and shape become boxes. At dusk, against the light or in a washed-out frame the paint
//! has next to no colour left, but a sign's white field is still brighter than what is around it:
//! regions standing out of the local brightness (at several levels, like MSER) are offered too.
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
    /// Brighter than the neighbourhood: a sign's white (or yellow) field.
    Bright,
}

/// Chromaticity margins, in percent of r+g+b, at which each colour's mask is cut. Several levels
/// stand in for MSER: a faded sign separates from a dull red wall only at a strict level, a dark
/// frame's sign shows only at a loose one.
const RED_LEVELS: [i32; 4] = [7, 11, 17, 26];
const BLUE_LEVELS: [i32; 3] = [6, 11, 18];
const YELLOW_LEVELS: [i32; 2] = [15, 25];
/// Levels, in local standard deviations above the local mean, at which bright regions are cut.
const BRIGHT_LEVELS: [f32; 5] = [0.4, 0.8, 1.2, 1.6, 2.0];
/// Scale of the neighbourhood for the bright regions, in pixels of the frame (Gaussian sigma).
const BRIGHT_SIGMA: f64 = 20.0;
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
        components(&mask, w, h, Colour::Bright, max_side, &mut boxes)?;
    }
    // Near-identical boxes from different masks or levels are one candidate.
    let mut out: Vec<Rect> = Vec::with_capacity(boxes.len());
    for b in boxes {
        if out.iter().all(|o| iou(*o, b) < 0.85) {
            out.push(b);
        }
    }
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
    let kernel = imgproc::get_structuring_element(imgproc::MORPH_RECT, Size::new(3, 3), Point::new(-1, -1))?;
    let mut closed = Mat::default();
    imgproc::morphology_ex(
        &m,
        &mut closed,
        imgproc::MORPH_CLOSE,
        &kernel,
        Point::new(-1, -1),
        1,
        BORDER_CONSTANT,
        imgproc::morphology_default_border_value()?,
    )?;
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
        if colour == Colour::Bright {
            // A field is compact and solid; thin or ragged bright regions are sky and walls.
            if bw >= 7
                && bh >= 7
                && bw <= max_side
                && bh <= max_side
                && (0.5..=2.0).contains(&aspect)
                && (0.3..=0.95).contains(&fill)
            {
                for g in FIELD_GROWTH {
                    let (gx, gy) = (grow(bw, g), grow(bh, g));
                    out.push(Rect::new(x - gx, y - gy, bw + 2 * gx, bh + 2 * gy));
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
