use super::AnonymizeError;
use opencv::core::{Mat, Rect};
use opencv::prelude::*;

pub fn iou(a: Rect, b: Rect) -> f32 {
    let ix = (a.x + a.width).min(b.x + b.width) - a.x.max(b.x);
    let iy = (a.y + a.height).min(b.y + b.height) - a.y.max(b.y);
    if ix <= 0 || iy <= 0 {
        return 0.0;
    }
    let inter = i64::from(ix) * i64::from(iy);
    let union = i64::from(a.width) * i64::from(a.height) + i64::from(b.width) * i64::from(b.height) - inter;
    if union <= 0 { 0.0 } else { inter as f32 / union as f32 }
}

/// Greedy non-maximum suppression: highest score first, ties to the smaller box.
pub(crate) fn nms<T>(mut items: Vec<T>, key: impl Fn(&T) -> (f32, Rect), threshold: f32) -> Vec<T> {
    items.sort_by(|a, b| {
        let (sa, ra) = key(a);
        let (sb, rb) = key(b);
        sb.total_cmp(&sa).then_with(|| area(ra).cmp(&area(rb)))
    });
    let mut kept: Vec<T> = Vec::new();
    for item in items {
        let r = key(&item).1;
        if kept.iter().all(|k| iou(key(k).1, r) < threshold) {
            kept.push(item);
        }
    }
    kept
}

fn area(r: Rect) -> i64 {
    i64::from(r.width) * i64::from(r.height)
}

/// Start offsets of windows of `size` covering `0..len` with step `step` (last one flush).
pub(crate) fn window_starts(len: i32, size: i32, step: i32) -> Vec<i32> {
    if len <= size || step <= 0 {
        return vec![0];
    }
    let mut starts: Vec<i32> = (0..len - size).step_by(step as usize).collect();
    starts.push(len - size);
    starts
}

/// `r` grown by `frac` of its size on every side, clipped to `width`×`height`.
pub(crate) fn pad_clip(r: Rect, frac: f32, width: i32, height: i32) -> Rect {
    let px = (r.width as f32 * frac).round() as i32;
    let py = (r.height as f32 * frac).round() as i32;
    clip(Rect::new(r.x - px, r.y - py, r.width + 2 * px, r.height + 2 * py), width, height)
}

pub(crate) fn clip(r: Rect, width: i32, height: i32) -> Rect {
    let x0 = r.x.clamp(0, width);
    let y0 = r.y.clamp(0, height);
    let x1 = (r.x + r.width).clamp(0, width);
    let y1 = (r.y + r.height).clamp(0, height);
    Rect::new(x0, y0, x1 - x0, y1 - y0)
}

/// Runs `f` on overlapping windows of at most `max_side` pixels (the whole frame when it fits)
/// and returns its boxes in frame pixels. Windows overlap by a quarter so objects on a seam are
/// whole in one of them.
pub(crate) fn over_windows(
    img: &Mat,
    max_side: i32,
    mut f: impl FnMut(&Mat) -> Result<Vec<(f32, Rect)>, AnonymizeError>,
) -> Result<Vec<(f32, Rect)>, AnonymizeError> {
    let (w, h) = (img.cols(), img.rows());
    if w <= max_side && h <= max_side {
        return f(img);
    }
    let step = max_side * 3 / 4;
    let mut out = Vec::new();
    for y in window_starts(h, max_side, step) {
        for x in window_starts(w, max_side, step) {
            let r = Rect::new(x, y, max_side.min(w - x), max_side.min(h - y));
            let win = img.roi(r)?.try_clone()?;
            out.extend(
                f(&win)?.into_iter().map(|(s, b)| (s, Rect::new(b.x + x, b.y + y, b.width, b.height))),
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_and_windows() {
        assert!((iou(Rect::new(0, 0, 10, 10), Rect::new(5, 0, 10, 10)) - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(iou(Rect::new(0, 0, 10, 10), Rect::new(20, 0, 10, 10)), 0.0);
        assert_eq!(window_starts(2028, 512, 384), vec![0, 384, 768, 1152, 1516]);
        assert_eq!(window_starts(300, 512, 384), vec![0]);
        assert_eq!(clip(Rect::new(-5, -5, 20, 20), 10, 10), Rect::new(0, 0, 10, 10));
    }

    #[test]
    fn nms_prefers_score_then_small() {
        let kept = nms(
            vec![
                (1.0, Rect::new(0, 0, 10, 10)),
                (2.0, Rect::new(1, 1, 10, 10)),
                (1.0, Rect::new(50, 50, 5, 5)),
            ],
            |t| *t,
            0.5,
        );
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0].0, 2.0);
    }
}
