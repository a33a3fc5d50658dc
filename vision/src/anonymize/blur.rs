use super::geometry::pad_clip;
use super::{AnonymizeError, Detection, Kind};
use opencv::core::{Mat, Rect, Size};
use opencv::imgproc;
use opencv::prelude::*;

/// Blocks across the longer side of a blurred box: few enough that no character or facial
/// feature survives, so the result cannot be sharpened back.
const BLOCKS: i32 = 4;

/// Irreversibly hides every detection: the padded box is reduced to a few averaged blocks,
/// smoothly interpolated back and blurred, leaving no edges inside.
pub fn blur(bgr: &mut Mat, detections: &[Detection]) -> Result<(), AnonymizeError> {
    let (w, h) = (bgr.cols(), bgr.rows());
    for d in detections {
        let pad = match d.kind {
            Kind::Face => 0.2,
            Kind::Plate => 0.25,
        };
        let r = pad_clip(d.rect, pad, w, h);
        if r.width < 2 || r.height < 2 {
            continue;
        }
        hide(bgr, r)?;
    }
    Ok(())
}

fn hide(bgr: &mut Mat, r: Rect) -> Result<(), AnonymizeError> {
    let region = bgr.roi(r)?.try_clone()?;
    let block = (r.width.max(r.height) / BLOCKS).max(1);
    let small_size = Size::new((r.width / block).max(1), (r.height / block).max(1));
    let mut small = Mat::default();
    imgproc::resize(&region, &mut small, small_size, 0.0, 0.0, imgproc::INTER_AREA)?;
    let mut smooth = Mat::default();
    imgproc::resize(&small, &mut smooth, r.size(), 0.0, 0.0, imgproc::INTER_LINEAR)?;
    let k = (block | 1).min(99);
    let mut blurred = Mat::default();
    imgproc::gaussian_blur_def(&smooth, &mut blurred, Size::new(k, k), 0.0)?;
    let mut target = bgr.roi_mut(r)?;
    blurred.copy_to(&mut target)?;
    Ok(())
}
