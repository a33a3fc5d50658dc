//! What the networks see of a candidate box: a 32×32 patch of the box and a 10% margin, described
//! by two histogram-of-gradients grids (shape and pictogram) and a coarse colour thumbnail.

use crate::error::Result;
use opencv::core::{BORDER_REPLICATE, Mat, Rect, Scalar, Size};
use opencv::imgproc;
use opencv::prelude::*;

/// Patch side in pixels.
pub const SIDE: usize = 32;
/// Margin around the box, as a fraction of its size (GTSRB crops carry about the same).
const MARGIN: f64 = 0.1;
const BINS: usize = 9;

/// A patch: SIDE×SIDE BGR bytes, row-major.
#[derive(Debug, Clone)]
pub struct Patch(pub Vec<u8>);

/// A small geometric jitter for training: the box scaled, shifted (fractions of its size) and
/// rotated before the patch is cut.
#[derive(Debug, Clone, Copy, Default)]
pub struct Jitter {
    pub scale: f64,
    pub dx: f64,
    pub dy: f64,
    pub angle_deg: f64,
}

/// Cuts the patch of `rect` out of `img` (BGR), with an optional jitter; pixels outside the
/// image repeat the border.
pub fn patch(img: &Mat, rect: Rect, jitter: Option<Jitter>) -> Result<Patch> {
    let j = jitter.unwrap_or(Jitter { scale: 1.0, ..Jitter::default() });
    let (w, h) = (f64::from(rect.width.max(1)), f64::from(rect.height.max(1)));
    let cx = f64::from(rect.x) + w / 2.0 + j.dx * w;
    let cy = f64::from(rect.y) + h / 2.0 + j.dy * h;
    let side = SIDE as f64;
    // Map the (jittered) box plus margin onto the patch: scale each axis, rotate about the centre.
    let (sx, sy) = (side / (w * j.scale * (1.0 + 2.0 * MARGIN)), side / (h * j.scale * (1.0 + 2.0 * MARGIN)));
    let (sin, cos) = j.angle_deg.to_radians().sin_cos();
    let m = Mat::from_slice_2d(&[
        [sx * cos, sx * sin, side / 2.0 - sx * (cos * cx + sin * cy)],
        [-sy * sin, sy * cos, side / 2.0 - sy * (-sin * cx + cos * cy)],
    ])?;
    // Large boxes are pre-shrunk with area averaging, so the warp does not alias.
    let shrink = (w.min(h) / (2.0 * side)).floor();
    let mut out = Mat::default();
    if shrink >= 2.0 {
        let pad = (w.max(h) * (0.5 + MARGIN) * 1.5) as i32;
        let (x0, y0) = ((cx as i32 - pad).max(0), (cy as i32 - pad).max(0));
        let x1 = (cx as i32 + pad).min(img.cols());
        let y1 = (cy as i32 + pad).min(img.rows());
        if x1 > x0 && y1 > y0 {
            let roi = Mat::roi(img, Rect::new(x0, y0, x1 - x0, y1 - y0))?;
            let mut small = Mat::default();
            let f = 1.0 / shrink;
            imgproc::resize(&roi, &mut small, Size::default(), f, f, imgproc::INTER_AREA)?;
            // The same map, in the shrunk region's coordinates.
            let m2 = Mat::from_slice_2d(&[
                [
                    sx * cos * shrink,
                    sx * sin * shrink,
                    side / 2.0 - sx * (cos * (cx - f64::from(x0)) + sin * (cy - f64::from(y0))),
                ],
                [
                    -sy * sin * shrink,
                    sy * cos * shrink,
                    side / 2.0 - sy * (-sin * (cx - f64::from(x0)) + cos * (cy - f64::from(y0))),
                ],
            ])?;
            warp(&small, &m2, &mut out)?;
            return bytes(&out);
        }
    }
    warp(img, &m, &mut out)?;
    bytes(&out)
}

fn warp(src: &Mat, m: &Mat, out: &mut Mat) -> Result<()> {
    let s = i32::try_from(SIDE).unwrap_or(32);
    imgproc::warp_affine(
        src,
        out,
        m,
        Size::new(s, s),
        imgproc::INTER_LINEAR,
        BORDER_REPLICATE,
        Scalar::default(),
    )?;
    Ok(())
}

fn bytes(m: &Mat) -> Result<Patch> {
    if m.is_continuous() {
        return Ok(Patch(m.data_bytes()?.to_vec()));
    }
    Ok(Patch(m.try_clone()?.data_bytes()?.to_vec()))
}

/// Length of [`describe`]'s output.
pub const LEN: usize = hog_len(4, 2) + hog_len(8, 1) + 3 * 64;
/// Length of the classifier's input: [`describe`] of the box, then [`describe_inner`] of its middle.
pub const CLASS_LEN: usize = LEN + hog_len(4, 2);
/// The middle of the box, as a fraction of its size, that the classifier also sees at the full
/// patch resolution: a speed limit's digits or a warning's pictogram, without the frame around them.
pub const INNER: f64 = 0.62;

impl Jitter {
    /// The same view, cut to the box's middle.
    pub fn inner(self) -> Self {
        Self { scale: self.scale * INNER, ..self }
    }
}

/// Fine gradient histograms of a patch of a box's middle ([`Jitter::inner`]).
pub fn describe_inner(p: &Patch) -> Vec<f32> {
    let grey = normalised_grey(p);
    let (mag, bin) = gradients(&grey);
    let mut out = Vec::with_capacity(CLASS_LEN - LEN);
    hog(&mag, &bin, 4, 2, &mut out);
    out
}

/// The classifier's input for `rect` of `img` seen through `view` (identity when None).
pub fn describe_class(img: &Mat, rect: Rect, view: Option<Jitter>) -> Result<Vec<f32>> {
    let j = view.unwrap_or(Jitter { scale: 1.0, ..Jitter::default() });
    let mut d = describe(&patch(img, rect, Some(j))?);
    d.extend(describe_inner(&patch(img, rect, Some(j.inner()))?));
    Ok(d)
}

/// Contrast-normalised grey levels of a patch (zero mean, unit deviation).
fn normalised_grey(p: &Patch) -> Vec<f32> {
    let n = SIDE * SIDE;
    let mut grey = vec![0.0f32; n];
    for (i, g) in grey.iter_mut().enumerate() {
        let (b, gr, r) = (f32::from(p.0[3 * i]), f32::from(p.0[3 * i + 1]), f32::from(p.0[3 * i + 2]));
        *g = 0.114 * b + 0.587 * gr + 0.299 * r;
    }
    let mean = grey.iter().sum::<f32>() / n as f32;
    let sd = (grey.iter().map(|g| (g - mean) * (g - mean)).sum::<f32>() / n as f32).sqrt().max(1.0);
    grey.iter_mut().for_each(|g| *g = (*g - mean) / sd);
    grey
}

const fn hog_len(cell: usize, block_stride: usize) -> usize {
    let cells = SIDE / cell;
    let blocks = (cells - 2) / block_stride + 1;
    blocks * blocks * 4 * BINS
}

/// The descriptor of a patch: fine and coarse gradient histograms of its contrast-normalised grey
/// image, then an 8×8 thumbnail of chromaticity (r, g) and grey level.
pub fn describe(p: &Patch) -> Vec<f32> {
    let grey = normalised_grey(p);
    let (mag, bin) = gradients(&grey);
    let mut out = Vec::with_capacity(LEN);
    hog(&mag, &bin, 4, 2, &mut out);
    hog(&mag, &bin, 8, 1, &mut out);
    for ty in 0..8 {
        for tx in 0..8 {
            let (mut r, mut g, mut s, mut l) = (0.0f32, 0.0f32, 0.0f32, 0.0f32);
            for y in ty * 4..ty * 4 + 4 {
                for x in tx * 4..tx * 4 + 4 {
                    let i = y * SIDE + x;
                    let (pb, pg, pr) =
                        (f32::from(p.0[3 * i]), f32::from(p.0[3 * i + 1]), f32::from(p.0[3 * i + 2]));
                    r += pr;
                    g += pg;
                    s += pb + pg + pr + 1.0;
                    l += grey[i];
                }
            }
            out.extend([r / s, g / s, l / 16.0]);
        }
    }
    out
}

/// Gradient magnitude and unsigned orientation bin per pixel (central differences).
fn gradients(g: &[f32]) -> (Vec<f32>, Vec<(usize, f32)>) {
    let mut mag = vec![0.0; g.len()];
    let mut bin = vec![(0, 0.0); g.len()];
    for y in 0..SIDE {
        for x in 0..SIDE {
            let at = |xx: usize, yy: usize| g[yy * SIDE + xx];
            let dx = at((x + 1).min(SIDE - 1), y) - at(x.saturating_sub(1), y);
            let dy = at(x, (y + 1).min(SIDE - 1)) - at(x, y.saturating_sub(1));
            let i = y * SIDE + x;
            mag[i] = (dx * dx + dy * dy).sqrt();
            let angle = dy.atan2(dx).rem_euclid(std::f32::consts::PI);
            let pos = angle / std::f32::consts::PI * BINS as f32 - 0.5;
            // Split the vote between the two nearest bins.
            let lo = pos.floor();
            bin[i] = (((lo as i32).rem_euclid(BINS as i32)) as usize, pos - lo);
        }
    }
    (mag, bin)
}

/// Cell histograms, then 2×2-cell blocks normalised with L2-Hys.
fn hog(mag: &[f32], bin: &[(usize, f32)], cell: usize, block_stride: usize, out: &mut Vec<f32>) {
    let cells = SIDE / cell;
    let mut hist = vec![0.0f32; cells * cells * BINS];
    for y in 0..SIDE {
        for x in 0..SIDE {
            let i = y * SIDE + x;
            let c = ((y / cell) * cells + x / cell) * BINS;
            let (b, f) = bin[i];
            hist[c + b] += mag[i] * (1.0 - f);
            hist[c + (b + 1) % BINS] += mag[i] * f;
        }
    }
    let mut by = 0;
    while by + 2 <= cells {
        let mut bx = 0;
        while bx + 2 <= cells {
            let start = out.len();
            for (cy, cx) in [(by, bx), (by, bx + 1), (by + 1, bx), (by + 1, bx + 1)] {
                let c = (cy * cells + cx) * BINS;
                out.extend_from_slice(&hist[c..c + BINS]);
            }
            let block = &mut out[start..];
            for _ in 0..2 {
                let norm = block.iter().map(|v| v * v).sum::<f32>().sqrt() + 1e-3;
                block.iter_mut().for_each(|v| *v = (*v / norm).min(0.2));
            }
            bx += block_stride;
        }
        by += block_stride;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opencv::core::{CV_8UC3, Point};

    #[test]
    fn patch_and_descriptor_shapes() {
        let mut img = Mat::new_rows_cols_with_default(200, 300, CV_8UC3, Scalar::all(90.0)).expect("mat");
        imgproc::circle(
            &mut img,
            Point::new(150, 100),
            30,
            Scalar::new(0.0, 0.0, 220.0, 0.0),
            6,
            imgproc::LINE_8,
            0,
        )
        .expect("circle");
        let rect = Rect::new(117, 67, 66, 66);
        let p = patch(&img, rect, None).expect("patch");
        assert_eq!(p.0.len(), SIDE * SIDE * 3);
        // The ring's red shows at the patch's left edge midline, grey in its centre.
        let px = |x: usize, y: usize| &p.0[3 * (y * SIDE + x)..3 * (y * SIDE + x) + 3];
        assert!(px(4, 16)[2] > 150, "{:?}", px(4, 16));
        assert!(px(16, 16)[2] < 120);
        let d = describe(&p);
        assert_eq!(d.len(), LEN);
        assert!(d.iter().all(|v| v.is_finite()));
        // A jittered patch is a different view of the same sign.
        let j = Jitter { scale: 1.1, dx: 0.05, dy: -0.05, angle_deg: 5.0 };
        let q = patch(&img, rect, Some(j)).expect("jitter");
        assert_ne!(q.0, p.0);
    }
}
