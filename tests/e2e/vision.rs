//! Upload → vision → published: faces and plates from the ground-truth sets, pasted into real
//! dashcam frames, come out blurred; published frames carry no metadata; raw data is gone; rows
//! are queryable.

use crate::support::*;
use image::{GrayImage, RgbImage};
use roadhex_schemas::ids::sha256_hex;
use std::time::{Duration, Instant};

/// A ground-truth box (x, y, w, h) in frame pixels.
pub(crate) type Gt = (u32, u32, u32, u32);

pub(crate) fn bee_frame(i: usize) -> RgbImage {
    let dir = shared_data().join("dashcam_hivemapper_bee_sf/frames");
    let mut files: Vec<_> = std::fs::read_dir(dir).expect("dir").flatten().map(|e| e.path()).collect();
    files.retain(|p| p.extension().is_some_and(|e| e == "jpg"));
    files.sort();
    image::open(&files[i * 9]).expect("bee frame").to_rgb8()
}

/// Pastes `photo` at (x, y) and returns the frame with the photo's boxes moved into it.
fn paste(mut frame: RgbImage, photo: &str, x: u32, y: u32, boxes: &[Gt]) -> (RgbImage, Vec<Gt>) {
    let img = image::open(shared_data().join(photo)).expect("photo").to_rgb8();
    image::imageops::overlay(&mut frame, &img, i64::from(x), i64::from(y));
    (frame, boxes.iter().map(|&(bx, by, w, h)| (bx + x, by + y, w, h)).collect())
}

pub(crate) fn jpeg(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 92).encode_image(img).expect("encode");
    out
}

/// Variance of a 4-neighbour Laplacian inside a box: fine detail (letters, eyes) makes it large.
pub(crate) fn detail(img: &GrayImage, (x, y, w, h): Gt) -> f64 {
    let mut v = Vec::new();
    for yy in y + 1..(y + h).min(img.height() - 1) {
        for xx in x + 1..(x + w).min(img.width() - 1) {
            let p = |dx: i64, dy: i64| {
                f64::from(img.get_pixel((i64::from(xx) + dx) as u32, (i64::from(yy) + dy) as u32)[0])
            };
            v.push(4.0 * p(0, 0) - p(1, 0) - p(-1, 0) - p(0, 1) - p(0, -1));
        }
    }
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    v.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / v.len().max(1) as f64
}

fn has_segment(jpeg: &[u8], marker: u8) -> bool {
    let mut i = 2;
    while i + 4 <= jpeg.len() && jpeg[i] == 0xFF && jpeg[i + 1] != 0xDA {
        if jpeg[i + 1] == marker {
            return true;
        }
        i += 2 + usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
    }
    false
}

/// Uploads dashcam-sized frames (2028x1024) as one capture and commits it; returns its id.
pub(crate) fn upload_frames(
    server: &Server,
    key: &roadhex_schemas::signing::DeviceKeyFile,
    images: &[&RgbImage],
) -> String {
    let bodies: Vec<(Vec<u8>, String)> = images
        .iter()
        .map(|img| {
            let b = jpeg(img);
            (b.clone(), sha256_hex(&b))
        })
        .collect();
    let mut m = manifest(key, 1, &bodies);
    m.camera = dashcam_camera();
    let opened: serde_json::Value = server.post_manifest(key, &m.to_bytes()).json().expect("json");
    let id = opened["capture_id"].as_str().expect("id").to_owned();
    for (b, s) in &bodies {
        assert_eq!(server.put_frame(&id, s, b.clone()).status(), 201);
    }
    assert_eq!(server.commit(&id).status(), 202);
    id
}

/// Polls the capture until its state is one of `states` or `secs` pass; returns the last status.
pub(crate) fn wait_for(
    server: &Server,
    id: &str,
    states: &[&str],
    secs: u64,
    poll_ms: u64,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let s = server.status(id);
        if s["state"].as_str().is_some_and(|st| states.contains(&st)) || Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(poll_ms));
    }
}

/// Whether `cond` holds within a few seconds. The worker deletes raw objects and acks the queue
/// item right after it records `published` (so a crash in between is redone), not before.
pub(crate) fn eventually(cond: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !cond() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

fn raw_gone(data: &std::path::Path, id: &str) -> bool {
    eventually(|| !data.join(format!("raw/captures/{id}")).exists())
}

#[test]
fn faces_and_plates_are_blurred_and_published() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let server = Server::start_roles(&data, "ingest,vision", &[]);
    let key = server.register_device("gina");

    let faces: &[Gt] = &[(194, 90, 37, 37), (158, 114, 37, 37), (381, 89, 45, 44), (94, 198, 37, 37)];
    let (f0, gt0) = paste(bee_frame(0), "faces_dlib_voc/2007_007763.jpg", 700, 300, faces);
    let (f1, gt1) = paste(bee_frame(1), "plates_openalpr/eu/eu10.jpg", 600, 250, &[(238, 314, 78, 18)]);
    let mut composed = vec![(f0, gt0), (f1, gt1)];
    composed.extend((2..5).map(|i| (bee_frame(i), Vec::new())));
    let images: Vec<&RgbImage> = composed.iter().map(|(img, _)| img).collect();
    let id = upload_frames(&server, &key, &images);
    let status = wait_for(&server, &id, &["published", "rejected"], 600, 500);
    assert_eq!(status["state"], "published", "{status}");
    assert!(raw_gone(&data, &id), "raw data must be deleted");

    for (i, (img, gts)) in composed.iter().enumerate() {
        let f = &status["frames"][i];
        assert_eq!(f["state"], "published", "{f}");
        assert_eq!(f["frame_id"].as_str(), Some(format!("{id}-{i:04}").as_str()));
        let published = std::fs::read(data.join(format!("frames/{id}/{i:04}.jpg"))).expect("published frame");
        assert!(!has_segment(&published, 0xE1), "frame {i} still carries EXIF/XMP");
        let out = image::load_from_memory(&published).expect("decode").to_luma8();
        assert_eq!(out.dimensions(), img.dimensions());
        let before = image::DynamicImage::ImageRgb8(img.clone()).to_luma8();
        for &gt in gts {
            let (a, b) = (detail(&before, gt), detail(&out, gt));
            assert!(b < a * 0.15, "frame {i} box {gt:?} keeps detail: {b:.1} of {a:.1}");
        }
    }

    let data_s = data.to_str().expect("utf8");
    let csv = roadhex_ok(&[
        "sql",
        "--data",
        data_s,
        "--format",
        "csv",
        "SELECT (SELECT count(*) FROM frames) AS frames, (SELECT count(*) FROM coverage) >= 3 AS covered, \
         (SELECT count(*) FROM detections WHERE kind = 'face') >= 4 AS faces, \
         (SELECT count(*) FROM detections WHERE kind = 'plate') >= 1 AS plates",
    ]);
    assert_eq!(csv, "frames,covered,faces,plates\n5,true,true,true\n");
}

#[test]
fn vision_killed_mid_capture_finishes_after_restart() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let server = Server::start_roles(&data, "ingest,vision", &[]);
    let key = server.register_device("hank");
    let frames: Vec<RgbImage> = (0..5).map(bee_frame).collect();
    let id = upload_frames(&server, &key, &frames.iter().collect::<Vec<_>>());
    // Kill -9 while the worker holds the capture.
    let seen = wait_for(&server, &id, &["processing", "published"], 60, 20);
    assert_eq!(seen["state"], "processing", "never saw the capture in processing");
    server.kill9();

    let server = Server::start_roles(&data, "ingest,vision", &[]);
    wait_for(&server, &id, &["published"], 600, 200);
    assert_eq!(server.status(&id)["state"], "published");
    assert!(raw_gone(&data, &id), "raw data left behind");
    assert!(eventually(|| files(&data.join("queue")).is_empty()), "queue still holds the capture");
    // Redone, not duplicated: one file per table and five published objects.
    for table in ["frames", "detections", "coverage"] {
        assert_eq!(files(&data.join(format!("tables/{table}"))).len(), 1, "{table}");
    }
    assert_eq!(files(&data.join(format!("frames/{id}"))).len(), 5);
    let csv = roadhex_ok(&[
        "sql",
        "--data",
        data.to_str().expect("utf8"),
        "--format",
        "csv",
        "SELECT count(*) AS n FROM frames",
    ]);
    assert_eq!(csv, "n\n5\n");
}
