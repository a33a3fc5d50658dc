//! Synthetic sign plates for training: every class for the classifier, and common plates outside
//! the 43 classes as the verifier's negatives ([`draw_other`]). The dev sample has three GTSRB
//! crops per class, too few to tell speed limits apart by one digit. Plates made of geometry and
//! digits (speed limits, give way, stop, priority road, the blue mandatory arrows, …) are drawn
//! here with OpenCV onto real scene backgrounds, with varied paint, stroke weights and aspect. The
//! warning triangles' pictograms (a pedestrian, a deer, a snowflake, …) are drawn as simple
//! silhouettes: rough, but they teach the classifier that a triangle's class lies in its
//! pictogram, where three real crops per class cannot.

use crate::error::Result;
use opencv::core::{Mat, Point, Rect, Scalar, Size, Vector};
use opencv::imgproc::{self, LINE_AA};
use opencv::prelude::*;
use roadhex_schemas::rng::SplitMix64;

/// Plate geometry in unit coordinates: (u, v) in [-1, 1]² spans the sign's box, v down.
struct Pen<'a> {
    img: &'a mut Mat,
    cx: f64,
    cy: f64,
    rx: f64,
    ry: f64,
    /// Draw mirrored left-right (keep left from keep right, and so on).
    mirror: bool,
}

type Uv = (f64, f64);

/// Fractional bits of the coordinates handed to OpenCV's drawing calls: small plates need the
/// sub-pixel placement, and a box's edge lies half a pixel beyond its outer pixel centres.
const SHIFT: i32 = 4;
const ONE: f64 = (1 << SHIFT) as f64;

impl<'a> Pen<'a> {
    /// A pen whose unit square spans `rect` of `img`.
    fn new(img: &'a mut Mat, rect: Rect, mirror: bool) -> Self {
        // The box's pixels run x..x+w-1: the unit square reaches their outer centres.
        Self {
            img,
            cx: f64::from(rect.x) + f64::from(rect.width - 1) / 2.0,
            cy: f64::from(rect.y) + f64::from(rect.height - 1) / 2.0,
            rx: f64::from(rect.width - 1) / 2.0,
            ry: f64::from(rect.height - 1) / 2.0,
            mirror,
        }
    }

    /// Pixel coordinates of (u, v).
    fn at(&self, (u, v): Uv) -> (f64, f64) {
        let u = if self.mirror { -u } else { u };
        (self.cx + u * self.rx, self.cy + v * self.ry)
    }

    /// (u, v) as a shifted point for the drawing calls.
    fn p(&self, uv: Uv) -> Point {
        let (x, y) = self.at(uv);
        Point::new((x * ONE).round() as i32, (y * ONE).round() as i32)
    }

    fn px(&self, r: f64) -> i32 {
        ((r * self.rx.min(self.ry)).round() as i32).max(1)
    }

    fn disc(&mut self, r: f64, c: Scalar) -> Result<()> {
        let axes = Size::new(
            ((r * self.rx * ONE).round() as i32).max(1),
            ((r * self.ry * ONE).round() as i32).max(1),
        );
        imgproc::ellipse(self.img, self.p((0.0, 0.0)), axes, 0.0, 0.0, 360.0, c, -1, LINE_AA, SHIFT)?;
        Ok(())
    }

    fn poly(&mut self, pts: &[Uv], c: Scalar) -> Result<()> {
        let v: Vector<Point> = pts.iter().map(|q| self.p(*q)).collect();
        let all: Vector<Vector<Point>> = std::iter::once(v).collect();
        imgproc::fill_poly(self.img, &all, c, LINE_AA, SHIFT, Point::default())?;
        Ok(())
    }

    /// A stroke `width` units wide through `pts`.
    fn stroke(&mut self, pts: &[Uv], width: f64, c: Scalar) -> Result<()> {
        for w in pts.windows(2) {
            let (a, b) = (self.p(w[0]), self.p(w[1]));
            imgproc::line(self.img, a, b, c, self.px(width), LINE_AA, SHIFT)?;
        }
        Ok(())
    }

    /// Parallel thin strokes rising to the right across a disc of radius `r` (the "end of" plates).
    fn strikes(&mut self, r: f64, c: Scalar) -> Result<()> {
        let s = std::f64::consts::FRAC_1_SQRT_2;
        for k in -2..=2 {
            // The chord of the line u + v = off through the disc.
            let off = f64::from(k) * 0.14;
            let half = (r * r - off * off / 2.0).max(0.0).sqrt();
            let mid = (off / 2.0, off / 2.0);
            self.stroke(
                &[(mid.0 - half * s, mid.1 + half * s), (mid.0 + half * s, mid.1 - half * s)],
                0.03,
                c,
            )?;
        }
        Ok(())
    }

    /// `text` drawn to fill `w`×`h` units around `centre` (fonts differ from DIN 1451 in width,
    /// so the glyphs are rendered once and stretched to the plate's proportions).
    fn text(&mut self, text: &str, centre: Uv, (w, h): (f64, f64), weight: i32, c: Scalar) -> Result<()> {
        let font = imgproc::FONT_HERSHEY_SIMPLEX;
        let mut base = 0;
        let size = imgproc::get_text_size(text, font, 3.0, weight, &mut base)?;
        let mut glyphs = Mat::new_rows_cols_with_default(
            size.height + base + 4 * weight,
            size.width + 4 * weight,
            opencv::core::CV_8UC1,
            Scalar::all(0.0),
        )?;
        let origin = Point::new(2 * weight, size.height + 2 * weight);
        imgproc::put_text(&mut glyphs, text, origin, font, 3.0, Scalar::all(255.0), weight, LINE_AA, false)?;
        let ink = imgproc::bounding_rect(&glyphs)?;
        if ink.width < 2 || ink.height < 2 {
            return Ok(());
        }
        let ink = Mat::roi(&glyphs, ink)?;
        let (tw, th) = ((w * self.rx).round() as i32, (h * self.ry).round() as i32);
        let (x, y) = self.at(centre);
        let dst = Rect::new(
            (x - f64::from(tw - 1) / 2.0).round() as i32,
            (y - f64::from(th - 1) / 2.0).round() as i32,
            tw,
            th,
        );
        let bounds = Rect::new(0, 0, self.img.cols(), self.img.rows());
        if tw < 2 || th < 2 || (dst & bounds) != dst {
            return Ok(());
        }
        let mut mask = Mat::default();
        imgproc::resize(&ink, &mut mask, Size::new(tw, th), 0.0, 0.0, imgproc::INTER_AREA)?;
        let mut bin = Mat::default();
        imgproc::threshold(&mask, &mut bin, 110.0, 255.0, imgproc::THRESH_BINARY)?;
        let mut roi = Mat::roi_mut(self.img, dst)?;
        roi.set_to(&c, &bin)?;
        Ok(())
    }
}

/// Paint colours (BGR), each varied a little per sample.
struct Paint {
    red: Scalar,
    white: Scalar,
    black: Scalar,
    blue: Scalar,
    yellow: Scalar,
    grey: Scalar,
}

fn jittered(rng: &mut SplitMix64, b: f64, g: f64, r: f64, spread: f64) -> Scalar {
    let mut j = |v: f64| (v + spread * (rng.unit() - 0.5) * 2.0).clamp(0.0, 255.0);
    Scalar::new(j(b), j(g), j(r), 0.0)
}

impl Paint {
    fn new(rng: &mut SplitMix64) -> Self {
        let w = 200.0 + 45.0 * rng.unit();
        Self {
            red: jittered(rng, 45.0, 35.0, 200.0, 30.0),
            white: jittered(rng, w, w, w, 12.0),
            black: jittered(rng, 30.0, 30.0, 30.0, 20.0),
            blue: jittered(rng, 185.0, 95.0, 20.0, 30.0),
            yellow: jittered(rng, 25.0, 190.0, 235.0, 25.0),
            grey: jittered(rng, 130.0, 130.0, 130.0, 25.0),
        }
    }
}

/// GTSRB ids of the classes [`draw`] renders: all of them.
pub const DRAWN: std::ops::Range<usize> = 0..super::classes::NAMES.len();

const SPEEDS: [(usize, &str); 8] =
    [(0, "20"), (1, "30"), (2, "50"), (3, "60"), (4, "70"), (5, "80"), (7, "100"), (8, "120")];

/// Draws a plate of `class` filling `rect` of `img` (BGR). Returns false for classes not drawn.
pub fn draw(img: &mut Mat, rect: Rect, class: usize, rng: &mut SplitMix64) -> Result<bool> {
    if !DRAWN.contains(&class) {
        return Ok(false);
    }
    let paint = Paint::new(rng);
    // Left-hand plates are their right-hand twins mirrored; the curve warnings are drawn bending
    // left and mirrored for right.
    let mirror = matches!(class, 20 | 34 | 37 | 39);
    let mut pen = Pen::new(img, rect, mirror);
    // Stroke weight and ring width vary between plate generations and viewing distance.
    let ring = 0.74 + 0.08 * rng.unit();
    let weight = 6 + i32::try_from(rng.below(5)).unwrap_or(0);
    match class {
        c if SPEEDS.iter().any(|s| s.0 == c) => {
            let digits = SPEEDS.iter().find(|s| s.0 == c).map_or("", |s| s.1);
            prohibitory(&mut pen, &paint, ring)?;
            let w = if digits.len() == 3 { 1.22 } else { 1.02 } + 0.1 * rng.unit();
            pen.text(digits, (0.0, 0.0), (w, 0.78 + 0.1 * rng.unit()), weight, paint.black)?;
        }
        6 | 32 | 41 | 42 => {
            pen.disc(1.0, paint.grey)?;
            pen.disc(0.95, paint.white)?;
            match class {
                6 => pen.text("80", (0.0, 0.0), (1.05, 0.8), weight, paint.grey)?,
                41 => two_vehicles(&mut pen, paint.grey, paint.grey, false)?,
                42 => two_vehicles(&mut pen, paint.grey, paint.grey, true)?,
                _ => {}
            }
            pen.strikes(0.95, paint.black)?;
        }
        9 | 10 | 15 | 16 => {
            prohibitory(&mut pen, &paint, ring)?;
            match class {
                9 => two_vehicles(&mut pen, paint.red, paint.black, false)?,
                10 => two_vehicles(&mut pen, paint.red, paint.black, true)?,
                16 => truck(&mut pen, 0.0, paint.black)?,
                _ => {}
            }
        }
        11 | 18..=31 => {
            warning(&mut pen, &paint)?;
            match class {
                11 => {
                    pen.stroke(&[(0.0, -0.35), (0.0, 0.62)], 0.13, paint.black)?;
                    pen.stroke(&[(-0.33, 0.2), (0.33, 0.2)], 0.09, paint.black)?;
                }
                18 => {
                    pen.stroke(&[(0.0, -0.3), (0.0, 0.32)], 0.13, paint.black)?;
                    pen.disc_at((0.0, 0.55), 0.08, paint.black)?;
                }
                26 => {
                    pen.poly(&[(-0.17, -0.35), (0.17, -0.35), (0.17, 0.65), (-0.17, 0.65)], paint.black)?;
                    let (red, amber, green) = (
                        paint.red,
                        Scalar::new(20.0, 170.0, 240.0, 0.0),
                        Scalar::new(60.0, 160.0, 40.0, 0.0),
                    );
                    for (v, c) in [(-0.18, red), (0.15, amber), (0.48, green)] {
                        pen.disc_at((0.0, v), 0.12, c)?;
                    }
                }
                _ => pictogram(&mut pen, class, paint.black)?,
            }
        }
        12 => {
            let d = |s: f64| [(0.0, -s), (s, 0.0), (0.0, s), (-s, 0.0)];
            pen.poly(&d(1.0), paint.black)?;
            pen.poly(&d(0.95), paint.white)?;
            pen.poly(&d(0.62 + 0.08 * rng.unit()), paint.yellow)?;
        }
        13 => {
            pen.poly(&[(-1.0, -1.0), (1.0, -1.0), (0.0, 1.0)], paint.red)?;
            let s = 0.55 + 0.1 * rng.unit();
            pen.poly(
                &[(-s, -1.0 + 0.42 * s), (s, -1.0 + 0.42 * s), (0.0, 1.0 - 0.9 * (1.0 - s))],
                paint.white,
            )?;
        }
        14 => {
            pen.poly(&octagon(1.0), paint.white)?;
            pen.poly(&octagon(0.93), paint.red)?;
            pen.text("STOP", (0.0, 0.0), (1.35, 0.42), weight, paint.white)?;
        }
        17 => {
            pen.disc(1.0, paint.red)?;
            pen.poly(&[(-0.68, -0.17), (0.68, -0.17), (0.68, 0.17), (-0.68, 0.17)], paint.white)?;
        }
        _ => {
            pen.disc(1.0, paint.blue)?;
            mandatory(&mut pen, class, paint.white)?;
        }
    }
    Ok(true)
}

/// Kinds of plate outside the 43 classes that [`draw_other`] paints.
pub const OTHERS: usize = 7;

/// Paints a plate that is *not* one of the 43 classes: signs a dashcam passes every few hundred
/// metres which GTSDB leaves unannotated (no parking, no stopping, a pedestrian crossing, parking, a
/// bus stop, priority over oncoming traffic, a dead end). The verifier learns them as negatives:
/// the 43 classes are what a detection claims. `kind` is taken modulo [`OTHERS`].
pub fn draw_other(img: &mut Mat, rect: Rect, kind: usize, rng: &mut SplitMix64) -> Result<()> {
    let paint = Paint::new(rng);
    let mut pen = Pen::new(img, rect, false);
    let weight = 6 + i32::try_from(rng.below(5)).unwrap_or(0);
    let square = |pen: &mut Pen<'_>, s: f64, c: Scalar| pen.poly(&[(-s, -s), (s, -s), (s, s), (-s, s)], c);
    let kind = kind % OTHERS;
    if kind >= 2 && kind != 4 {
        // The blue square plates, with a thin white border.
        square(&mut pen, 1.0, paint.white)?;
        square(&mut pen, 0.92, paint.blue)?;
    }
    match kind {
        0 | 1 => {
            // No parking (one red slash) and no stopping (a red cross) on a blue disc.
            pen.disc(1.0, paint.red)?;
            pen.disc(0.78, paint.blue)?;
            pen.stroke(&[(-0.55, -0.55), (0.55, 0.55)], 0.17, paint.red)?;
            if kind == 1 {
                pen.stroke(&[(-0.55, 0.55), (0.55, -0.55)], 0.17, paint.red)?;
            }
            Ok(())
        }
        2 => {
            pen.poly(&[(0.0, -0.78), (0.8, 0.66), (-0.8, 0.66)], paint.white)?;
            figure(&mut pen, (0.0, -0.22), 0.95, paint.black)
        }
        3 => pen.text("P", (0.0, 0.0), (0.62, 0.95), weight, paint.white),
        4 => {
            let green = jittered(rng, 60.0, 140.0, 20.0, 30.0);
            pen.disc(1.0, green)?;
            pen.disc(0.86, paint.yellow)?;
            pen.text("H", (0.0, 0.0), (0.8, 0.95), weight, green)
        }
        5 => {
            // Priority over oncoming traffic: a large white arrow up, a small red one down.
            pen.stroke(&[(-0.3, 0.7), (-0.3, -0.2)], 0.18, paint.white)?;
            pen.poly(&[(-0.3, -0.72), (0.0, -0.2), (-0.6, -0.2)], paint.white)?;
            pen.stroke(&[(0.3, -0.7), (0.3, 0.25)], 0.12, paint.red)?;
            pen.poly(&[(0.3, 0.68), (0.5, 0.25), (0.1, 0.25)], paint.red)
        }
        _ => {
            // Dead end: a white post with a red bar across its top.
            pen.poly(&[(-0.16, 0.8), (0.16, 0.8), (0.16, -0.3), (-0.16, -0.3)], paint.white)?;
            pen.poly(&[(-0.5, -0.3), (0.5, -0.3), (0.5, -0.62), (-0.5, -0.62)], paint.red)
        }
    }
}

impl Pen<'_> {
    /// A circle of radius `r` and line width `width` (units) around `at`.
    fn ring_at(&mut self, at: Uv, r: f64, width: f64, c: Scalar) -> Result<()> {
        let centre = self.p(at);
        let radius = ((r * self.rx.min(self.ry) * ONE).round() as i32).max(1);
        imgproc::circle(self.img, centre, radius, c, self.px(width), LINE_AA, SHIFT)?;
        Ok(())
    }

    fn disc_at(&mut self, at: Uv, r: f64, c: Scalar) -> Result<()> {
        let centre = self.p(at);
        let radius = ((r * self.rx.min(self.ry) * ONE).round() as i32).max(1);
        imgproc::circle(self.img, centre, radius, c, -1, LINE_AA, SHIFT)?;
        Ok(())
    }
}

fn octagon(r: f64) -> Vec<Uv> {
    (0..8)
        .map(|k| {
            let a = (f64::from(k) + 0.5) * std::f64::consts::FRAC_PI_4;
            (r * a.cos() / 0.924, r * a.sin() / 0.924)
        })
        .map(|(u, v): Uv| (u.clamp(-1.0, 1.0), v.clamp(-1.0, 1.0)))
        .collect()
}

/// White disc in a red ring.
fn prohibitory(pen: &mut Pen<'_>, paint: &Paint, ring: f64) -> Result<()> {
    pen.disc(1.0, paint.red)?;
    pen.disc(ring, paint.white)
}

/// Upward triangle, red border, white field.
fn warning(pen: &mut Pen<'_>, paint: &Paint) -> Result<()> {
    pen.poly(&[(0.0, -1.0), (1.0, 1.0), (-1.0, 1.0)], paint.red)?;
    pen.poly(&[(0.0, -0.52), (0.68, 0.8), (-0.68, 0.8)], paint.white)
}

/// The black pictograms of the warning triangles 19–31 (not 26, the traffic lights), inside the
/// white field around (0, 0.3).
fn pictogram(pen: &mut Pen<'_>, class: usize, c: Scalar) -> Result<()> {
    match class {
        // Curve ahead: a road line bending left near the top (mirrored for right).
        19 | 20 => pen.stroke(&[(0.12, 0.66), (0.12, 0.12), (0.02, -0.04), (-0.3, -0.08)], 0.12, c),
        21 => pen.stroke(
            &[(0.1, 0.66), (0.1, 0.48), (-0.16, 0.3), (-0.16, 0.14), (0.1, -0.04), (0.1, -0.22)],
            0.11,
            c,
        ),
        22 => {
            // Bumps on a road surface.
            pen.poly(&[(-0.46, 0.5), (0.46, 0.5), (0.46, 0.62), (-0.46, 0.62)], c)?;
            for u in [-0.22, 0.22] {
                let bump: Vec<Uv> = (0..=8)
                    .map(|i| f64::from(i) * std::f64::consts::PI / 8.0)
                    .map(|a| (u - 0.2 * a.cos(), 0.5 - 0.18 * a.sin()))
                    .collect();
                pen.poly(&bump, c)?;
            }
            Ok(())
        }
        23 => {
            // A car over two swerving tracks.
            car_side(pen, (0.0, 0.08), c)?;
            for u in [-0.16, 0.16] {
                pen.stroke(&[(u, 0.3), (u + 0.1, 0.42), (u - 0.1, 0.54), (u + 0.06, 0.66)], 0.05, c)?;
            }
            Ok(())
        }
        24 => {
            // The road narrows from the right.
            pen.stroke(&[(-0.18, 0.66), (-0.18, -0.1)], 0.1, c)?;
            pen.stroke(&[(0.22, 0.66), (0.22, 0.36), (0.06, 0.16), (0.06, -0.1)], 0.1, c)
        }
        25 => {
            // A worker digging beside a heap.
            figure(pen, (-0.12, 0.05), 0.85, c)?;
            pen.stroke(&[(-0.02, 0.22), (0.2, 0.5)], 0.05, c)?;
            pen.poly(&[(0.08, 0.66), (0.3, 0.42), (0.5, 0.66)], c)
        }
        27 => figure(pen, (0.0, -0.05), 1.0, c),
        28 => {
            figure(pen, (-0.18, 0.05), 0.8, c)?;
            figure(pen, (0.18, 0.12), 0.7, c)
        }
        29 => {
            // A bicycle: two wheels, a frame and a rider.
            for u in [-0.24, 0.24] {
                pen.ring_at((u, 0.48), 0.15, 0.045, c)?;
            }
            pen.stroke(&[(-0.24, 0.48), (-0.04, 0.48), (0.16, 0.26), (-0.12, 0.26), (-0.24, 0.48)], 0.05, c)?;
            pen.stroke(&[(-0.04, 0.48), (-0.1, 0.2), (0.0, 0.0), (0.16, 0.26), (0.24, 0.48)], 0.05, c)?;
            pen.disc_at((0.04, -0.12), 0.07, c)
        }
        30 => {
            // A snowflake: three crossed strokes.
            for k in 0..3 {
                let a = f64::from(k) * std::f64::consts::PI / 3.0 + std::f64::consts::FRAC_PI_2;
                let (du, dv) = (0.3 * a.cos(), 0.3 * a.sin());
                pen.stroke(&[(-du, 0.32 - dv), (du, 0.32 + dv)], 0.06, c)?;
            }
            Ok(())
        }
        _ => {
            // 31: a leaping deer, its body an ellipse rising to the right.
            let (tilt_sin, tilt_cos) = (-0.3f64).sin_cos();
            let body: Vec<Uv> = (0..16)
                .map(|i| f64::from(i) * std::f64::consts::TAU / 16.0)
                .map(|a| (0.26 * a.cos(), 0.1 * a.sin()))
                .map(|(x, y)| (x * tilt_cos - y * tilt_sin, 0.32 + x * tilt_sin + y * tilt_cos))
                .collect();
            pen.poly(&body, c)?;
            pen.stroke(&[(0.16, 0.22), (0.28, 0.0), (0.4, 0.02)], 0.09, c)?;
            pen.stroke(&[(0.26, -0.02), (0.2, -0.2), (0.28, -0.3)], 0.035, c)?;
            pen.stroke(&[(-0.2, 0.44), (-0.36, 0.56), (-0.5, 0.64)], 0.06, c)?;
            pen.stroke(&[(0.14, 0.28), (0.3, 0.42), (0.42, 0.4)], 0.06, c)
        }
    }
}

/// A walking stick figure whose head sits at `head`, `s` times the pedestrian's size.
fn figure(pen: &mut Pen<'_>, (u, v): Uv, s: f64, c: Scalar) -> Result<()> {
    pen.disc_at((u, v), 0.07 * s, c)?;
    let hip = (u, v + 0.38 * s);
    pen.stroke(&[(u, v + 0.1 * s), hip], 0.13 * s, c)?;
    pen.stroke(&[(u - 0.14 * s, v + 0.3 * s), (u, v + 0.14 * s), (u + 0.14 * s, v + 0.3 * s)], 0.07 * s, c)?;
    pen.stroke(&[(u - 0.14 * s, v + 0.68 * s), hip, (u + 0.14 * s, v + 0.68 * s)], 0.08 * s, c)
}

/// A car seen from the side, centred at `at`.
fn car_side(pen: &mut Pen<'_>, (u, v): Uv, c: Scalar) -> Result<()> {
    pen.poly(&[(u - 0.12, v - 0.1), (u + 0.1, v - 0.1), (u + 0.18, v), (u - 0.2, v)], c)?;
    pen.poly(&[(u - 0.3, v), (u + 0.3, v), (u + 0.3, v + 0.12), (u - 0.3, v + 0.12)], c)?;
    for w in [-0.18, 0.18] {
        pen.disc_at((u + w, v + 0.13), 0.06, c)?;
    }
    Ok(())
}

/// A car seen from behind, centred at `u`.
fn car(pen: &mut Pen<'_>, u: f64, c: Scalar) -> Result<()> {
    pen.poly(&[(u - 0.14, -0.2), (u + 0.14, -0.2), (u + 0.2, 0.0), (u - 0.2, 0.0)], c)?;
    pen.poly(&[(u - 0.22, 0.0), (u + 0.22, 0.0), (u + 0.22, 0.22), (u - 0.22, 0.22)], c)?;
    pen.poly(&[(u - 0.2, 0.22), (u - 0.12, 0.22), (u - 0.12, 0.32), (u - 0.2, 0.32)], c)?;
    pen.poly(&[(u + 0.12, 0.22), (u + 0.2, 0.22), (u + 0.2, 0.32), (u + 0.12, 0.32)], c)
}

/// A lorry from behind (taller and boxier than a car), centred at `u`.
fn truck(pen: &mut Pen<'_>, u: f64, c: Scalar) -> Result<()> {
    pen.poly(&[(u - 0.24, -0.38), (u + 0.24, -0.38), (u + 0.24, 0.26), (u - 0.24, 0.26)], c)?;
    pen.poly(&[(u - 0.22, 0.26), (u - 0.1, 0.26), (u - 0.1, 0.36), (u - 0.22, 0.36)], c)?;
    pen.poly(&[(u + 0.1, 0.26), (u + 0.22, 0.26), (u + 0.22, 0.36), (u + 0.1, 0.36)], c)
}

fn two_vehicles(pen: &mut Pen<'_>, left: Scalar, right: Scalar, lorry: bool) -> Result<()> {
    if lorry {
        truck(pen, -0.3, left)?
    } else {
        car(pen, -0.3, left)?
    }
    car(pen, 0.3, right)
}

/// The white arrows of the blue mandatory plates (33 turn right, 35 ahead, 36 ahead or right,
/// 38 keep right, 40 roundabout; the left ones are drawn mirrored).
fn mandatory(pen: &mut Pen<'_>, class: usize, c: Scalar) -> Result<()> {
    let head = |pen: &mut Pen<'_>, tip: Uv, dir: Uv, s: f64| {
        let (dx, dy) = dir;
        let n = (dx * dx + dy * dy).sqrt().max(1e-9);
        let (dx, dy) = (dx / n, dy / n);
        let base = (tip.0 - dx * s, tip.1 - dy * s);
        let side = (-dy * s * 0.8, dx * s * 0.8);
        pen.poly(&[tip, (base.0 + side.0, base.1 + side.1), (base.0 - side.0, base.1 - side.1)], c)
    };
    match class {
        33 | 34 => {
            pen.stroke(&[(-0.2, 0.65), (-0.2, -0.05), (0.25, -0.05)], 0.2, c)?;
            head(pen, (0.62, -0.05), (1.0, 0.0), 0.38)
        }
        35 => {
            pen.stroke(&[(0.0, 0.7), (0.0, -0.3)], 0.2, c)?;
            head(pen, (0.0, -0.7), (0.0, -1.0), 0.42)
        }
        36 | 37 => {
            pen.stroke(&[(-0.15, 0.7), (-0.15, -0.35)], 0.17, c)?;
            head(pen, (-0.15, -0.72), (0.0, -1.0), 0.36)?;
            pen.stroke(&[(-0.15, 0.15), (0.3, 0.15)], 0.17, c)?;
            head(pen, (0.66, 0.15), (1.0, 0.0), 0.36)
        }
        38 | 39 => {
            pen.stroke(&[(-0.42, -0.42), (0.18, 0.18)], 0.2, c)?;
            head(pen, (0.47, 0.47), (1.0, 1.0), 0.42)
        }
        _ => {
            // Roundabout: three arcs chasing each other anticlockwise.
            for k in 0..3 {
                let a0 = f64::from(k) * 120.0 + 20.0;
                let pts: Vec<Uv> = (0..=8)
                    .map(|i| (a0 + f64::from(i) * 9.0).to_radians())
                    .map(|a| (0.5 * a.cos(), -0.5 * a.sin()))
                    .collect();
                pen.stroke(&pts, 0.14, c)?;
                let a = (a0 + 72.0).to_radians();
                let tip = (0.5 * (a + 0.45).cos(), -0.5 * (a + 0.45).sin());
                head(pen, tip, (-a.sin(), -a.cos()), 0.28)?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Paints a 60 px plate into the middle of a black 120 px image: the pixels painted inside
    /// the box, and those beyond it and a one-pixel ring around it. OpenCV's anti-aliasing
    /// feathers edges by up to a pixel (a little more at sharp polygon corners), so the ring may be
    /// shaded, next to nothing beyond it.
    fn painted(paint: impl FnOnce(&mut Mat, Rect)) -> (i32, i32) {
        let mut img =
            Mat::new_rows_cols_with_default(120, 120, opencv::core::CV_8UC3, Scalar::all(0.0)).expect("mat");
        paint(&mut img, Rect::new(30, 30, 60, 60));
        let mut grey = Mat::default();
        imgproc::cvt_color_def(&img, &mut grey, imgproc::COLOR_BGR2GRAY).expect("grey");
        let count = |r: Rect| opencv::core::count_non_zero(&Mat::roi(&grey, r).expect("roi")).expect("count");
        let inside = count(Rect::new(30, 30, 60, 60));
        (inside, count(Rect::new(0, 0, 120, 120)) - count(Rect::new(29, 29, 62, 62)))
    }

    #[test]
    fn every_drawn_class_paints_its_box_and_only_it() {
        let mut rng = SplitMix64(7);
        for class in DRAWN {
            let (inside, spill) =
                painted(|img, rect| assert!(draw(img, rect, class, &mut rng).expect("draw")));
            assert!(inside > 60 * 60 / 3, "class {class} paints {inside} pixels");
            assert!(spill <= 8, "class {class} spills {spill} pixels");
        }
        let mut img =
            Mat::new_rows_cols_with_default(50, 50, opencv::core::CV_8UC3, Scalar::all(0.0)).expect("mat");
        assert!(!draw(&mut img, Rect::new(5, 5, 40, 40), 43, &mut rng).expect("draw"));
    }

    #[test]
    fn every_other_plate_paints_its_box_and_only_it() {
        let mut rng = SplitMix64(11);
        for kind in 0..OTHERS {
            let (inside, spill) = painted(|img, rect| draw_other(img, rect, kind, &mut rng).expect("draw"));
            assert!(inside > 60 * 60 / 2, "kind {kind} paints {inside} pixels");
            assert!(spill <= 8, "kind {kind} spills {spill} pixels");
        }
    }
}
