//! Candidate boxes from colour: German signs are framed or filled in red, blue or yellow. Each
//! colour's mask is closed, split into connected components, and components of a sign's size and
//! shape become boxes. Cheap and high-recall; the verifier network removes the rest.

use crate::anonymize::geometry::iou;
use crate::error::Result;
use opencv::core::{BORDER_CONSTANT, Mat, Point, Rect, Size};
use opencv::imgproc;
use opencv::prelude::*;

#[derive(Debug, Clone, Copy)]
enum Colour {
    Red,
    Blue,
    Yellow,
}

/// Boxes that may hold a sign, in pixels of `bgr`.
pub fn propose(bgr: &Mat) -> Result<Vec<Rect>> {
    let (w, h) = (bgr.cols(), bgr.rows());
    let data = if bgr.is_continuous() { bgr.data_bytes()?.to_vec() } else { bgr.try_clone()?.data_bytes()?.to_vec() };
    let n = usize::try_from(w * h).unwrap_or(0);
    let mut masks = [vec![0u8; n], vec![0u8; n], vec![0u8; n]];
    for i in 0..n.min(data.len() / 3) {
        let (b, g, r) = (i32::from(data[3 * i]), i32::from(data[3 * i + 1]), i32::from(data[3 * i + 2]));
        let s = (b + g + r).max(1);
        // Chromaticity margins rather than hue: they hold in the dark frames where hue is noise.
        if r > 35 && (r - g.max(b)) * 100 > 12 * s {
            masks[0][i] = 255;
        }
        if b > 35 && (b - r.max(g)) * 100 > 8 * s && (b - r) * 100 > 20 * s {
            masks[1][i] = 255;
        }
        if r > 90 && g > 70 && (r.min(g) - b) * 100 > 25 * s {
            masks[2][i] = 255;
        }
    }
    let max_side = w.min(h) / 3;
    let mut boxes = Vec::new();
    for (mask, colour) in masks.iter().zip([Colour::Red, Colour::Blue, Colour::Yellow]) {
        components(mask, w, h, colour, max_side, &mut boxes)?;
    }
    // Near-identical boxes from different masks or scales are one candidate.
    let mut out: Vec<Rect> = Vec::with_capacity(boxes.len());
    for b in boxes {
        if out.iter().all(|o| iou(*o, b) < 0.85) {
            out.push(b);
        }
    }
    Ok(out)
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
    let count = imgproc::connected_components_with_stats(&closed, &mut labels, &mut stats, &mut centroids, 8, opencv::core::CV_32S)?;
    for label in 1..count {
        let at = |c: i32| stats.at_2d::<i32>(label, c).copied();
        let (x, y, bw, bh, area) = (
            at(imgproc::CC_STAT_LEFT)?,
            at(imgproc::CC_STAT_TOP)?,
            at(imgproc::CC_STAT_WIDTH)?,
            at(imgproc::CC_STAT_HEIGHT)?,
            at(imgproc::CC_STAT_AREA)?,
        );
        if bw < 9 || bh < 9 || bw > max_side || bh > max_side {
            continue;
        }
        let aspect = f64::from(bw) / f64::from(bh);
        let fill = f64::from(area) / f64::from(bw * bh);
        if !(0.5..=2.0).contains(&aspect) || !(0.08..=0.95).contains(&fill) {
            continue;
        }
        out.push(Rect::new(x, y, bw, bh));
        // The yellow of "priority road" is the inner diamond; the plate is its white frame around it.
        if matches!(colour, Colour::Yellow) {
            let (gw, gh) = ((f64::from(bw) * 0.22) as i32, (f64::from(bh) * 0.22) as i32);
            out.push(Rect::new(x - gw, y - gh, bw + 2 * gw, bh + 2 * gh));
        }
        // A sign whose ring is broken up is often found as its larger half: offer the square box.
        if aspect < 0.8 || aspect > 1.25 {
            let side = bw.max(bh);
            out.push(Rect::new(x + bw / 2 - side / 2, y + bh / 2 - side / 2, side, side));
        }
    }
    Ok(())
}
