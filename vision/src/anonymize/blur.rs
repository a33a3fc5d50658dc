use super::geometry::pad_clip;
use super::{AnonymizeError, Detection, Kind};
use opencv::core::{Mat, Rect, Size};
use opencv::imgproc;
use opencv::prelude::*;

/// Blocks across the longer side of a blurred box: few enough that no character or facial
/// feature survives, so the result cannot be sharpened back.
const BLOCKS: i32 = 3;

/// Irreversibly hides every detection: the padded box is reduced to a few averaged blocks,
/// smoothly interpolated back and blurred, leaving no edges inside.
pub fn blur(bgr: &mut Mat, detections: &[Detection]) -> Result<(), AnonymizeError> {
    let (w, h) = (bgr.cols(), bgr.rows());
    for d in detections {
        // CenterFace boxes hug the inner face; hair, ears and jaw identify people too.
        let pad = match d.kind {
            Kind::Face => 0.35,
            Kind::Plate => 0.25,
            Kind::Region => 0.0,
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

#[cfg(test)]
mod tests {
    use super::super::geometry::iou;
    use super::super::{CenterFace, Detector, Models, TextRowConfig, TextRowPlates};
    use super::*;
    use opencv::core::{self, Scalar};
    use opencv::imgcodecs;

    fn laplacian_variance(img: &Mat, r: Rect) -> f64 {
        let mut gray = Mat::default();
        imgproc::cvt_color_def(&img.roi(r).expect("roi"), &mut gray, imgproc::COLOR_BGR2GRAY).expect("gray");
        let mut lap = Mat::default();
        imgproc::laplacian_def(&gray, &mut lap, core::CV_64F).expect("laplacian");
        let (mut mean, mut dev) = (Scalar::default(), Scalar::default());
        core::mean_std_dev_def(&lap, &mut mean, &mut dev).expect("stddev");
        dev[0] * dev[0]
    }

    fn load(rel: &str) -> Mat {
        let img =
            imgcodecs::imread(roadhex_schemas::testdata::shared_data().join(rel), imgcodecs::IMREAD_COLOR)
                .expect("read");
        assert!(!img.empty(), "{rel} missing");
        img
    }

    #[test]
    fn blurred_faces_keep_no_detail() {
        let faces = CenterFace::new(&Models::from_env(), 0.3).expect("run deploy/models.sh first");
        let mut img = load("faces_dlib_voc/2007_007763.jpg");
        let found = faces.detect(&img).expect("detect");
        assert!(found.len() >= 7);
        let before: Vec<f64> = found.iter().map(|d| laplacian_variance(&img, d.rect)).collect();
        blur(&mut img, &found).expect("blur");
        for (d, b) in found.iter().zip(before) {
            let after = laplacian_variance(&img, d.rect);
            // Not exactly 0: a neighbour's blurred box can end inside this one (a soft seam).
            assert!(after < 5.0 && after < b / 100.0, "detail left at {:?}: {b} -> {after}", d.rect);
        }
        let again = faces.detect(&img).expect("detect");
        assert!(
            again.iter().all(|a| found.iter().all(|d| iou(a.rect, d.rect) < 0.3)),
            "a face is still found: {again:?}"
        );
    }

    #[test]
    fn blurred_plate_is_unreadable() {
        let plates = TextRowPlates::new(TextRowConfig::default());
        let mut img = load("plates_openalpr/eu/eu10.jpg");
        let found = plates.detect(&img).expect("detect");
        assert!(!found.is_empty());
        blur(&mut img, &found).expect("blur");
        for d in &found {
            assert!(laplacian_variance(&img, d.rect) < 2.0);
        }
        let again = plates.detect(&img).expect("detect");
        assert!(
            again.iter().all(|a| found.iter().all(|d| iou(a.rect, d.rect) < 0.3)),
            "text still found: {again:?}"
        );
    }

    #[test]
    fn boxes_at_the_border_are_clipped() {
        let mut img =
            Mat::new_rows_cols_with_default(50, 80, core::CV_8UC3, Scalar::all(200.0)).expect("mat");
        let d = Detection {
            kind: Kind::Plate,
            rect: Rect::new(-10, 40, 100, 30),
            score: 1.0,
            detector: "t".into(),
        };
        blur(&mut img, &[d]).expect("blur at the border");
    }
}
