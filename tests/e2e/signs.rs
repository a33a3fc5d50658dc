//! Signs end to end: a stop sign at a known point, pasted into real dashcam frames where a pinhole
//! camera on the capture's track would see it, is detected in the published frames, located, and
//! merged into one map feature near the truth; its detections link to the feature.

use crate::support::*;
use crate::tiles::sql;
use crate::vision::{bee_frame, wait_for};
use image::RgbImage;
use roadhex_schemas::geo::{bearing_deg, destination, haversine_m};
use roadhex_schemas::ids::sha256_hex;

const FRAMES: usize = 5;
const SPEED: f64 = 3.0;
/// The stop plate's nominal width (the model ranges octagons at 0.75 m).
const PLATE_M: f64 = 0.75;

/// A binary PPM (P6, maxval 255), the GTSRB crops' format.
fn read_ppm(path: &std::path::Path) -> RgbImage {
    let bytes = std::fs::read(path).expect("ppm");
    let mut fields = Vec::new();
    let mut at = 0;
    while fields.len() < 4 {
        while bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        let start = at;
        while !bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        fields.push(String::from_utf8_lossy(&bytes[start..at]).into_owned());
    }
    assert_eq!((fields[0].as_str(), fields[3].as_str()), ("P6", "255"));
    let (w, h): (u32, u32) = (fields[1].parse().expect("w"), fields[2].parse().expect("h"));
    RgbImage::from_raw(w, h, bytes[at + 1..].to_vec()).expect("pixels")
}

/// The GTSRB stop sign, cut to its annotated box.
fn stop_plate() -> RgbImage {
    let img = read_ppm(&shared_data().join("signs_gtsrb_crops/stop/00004_00015.ppm"));
    // GT-00014.csv: Roi 6,6 → 51,51 (inclusive).
    image::imageops::crop_imm(&img, 6, 6, 46, 46).to_image()
}

#[test]
fn a_sign_seen_from_a_track_becomes_one_located_feature() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let server = Server::start_roles(&data, "ingest,vision", &["--features-every-s", "0"]);
    let key = server.register_device("sol");
    let track = street_track(T0, FRAMES as i64 + 4, SPEED);
    let camera = dashcam_camera();
    let f = camera.focal_px().expect("focal");
    let (w, h) = (f64::from(camera.width), f64::from(camera.height));
    // The sign: 9 m ahead of the last frame's camera and 2.5 m to the right of the road.
    let last = &track[FRAMES + 1];
    let (a_lat, a_lon) = destination(last.lat, last.lon, last.heading, 9.0);
    let (s_lat, s_lon) = destination(a_lat, a_lon, last.heading + 90.0, 2.5);
    let plate = stop_plate();
    let mut bodies = Vec::new();
    for i in 0..FRAMES {
        // Frame i is taken at T0 + 2 s + i s, the time of track sample i + 2.
        let cam = &track[i + 2];
        let d = haversine_m(cam.lat, cam.lon, s_lat, s_lon);
        let angle = (bearing_deg(cam.lat, cam.lon, s_lat, s_lon) - cam.heading).to_radians();
        let (x, z) = (d * angle.sin(), d * angle.cos());
        let side = (f * PLATE_M / z).round() as u32;
        let (u, v) = (w / 2.0 + f * x / z, h / 2.0 - f * 0.8 / z);
        let mut frame = bee_frame(i);
        let scaled = image::imageops::resize(&plate, side, side, image::imageops::FilterType::Triangle);
        image::imageops::overlay(
            &mut frame,
            &scaled,
            (u - f64::from(side) / 2.0) as i64,
            (v - f64::from(side) / 2.0) as i64,
        );
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 92).encode_image(&frame).expect("jpeg");
        let sha = sha256_hex(&jpeg);
        bodies.push((jpeg, sha));
    }
    let mut m = manifest(&key, 1, &bodies);
    m.camera = camera;
    m.telemetry = track;
    let opened: serde_json::Value = server.post_manifest(&key, &m.to_bytes()).json().expect("json");
    let id = opened["capture_id"].as_str().expect("id").to_owned();
    for (b, s) in &bodies {
        assert_eq!(server.put_frame(&id, s, b.clone()).status(), 201);
    }
    assert_eq!(server.commit(&id).status(), 202);
    let status = wait_for(&server, &id, &["published", "rejected"], 600, 500);
    assert_eq!(status["state"], "published", "{status}");

    let signs = sql(
        &data,
        "SELECT frame_id, class, score, lat, lon FROM detections WHERE kind = 'sign' AND lat IS NOT NULL",
    );
    assert!(signs.len() >= 3, "the sign should be found in most frames: {signs:?}");
    let near = |r: &serde_json::Value, m: f64| {
        let (lat, lon) = (r["lat"].as_f64().expect("lat"), r["lon"].as_f64().expect("lon"));
        haversine_m(lat, lon, s_lat, s_lon) < m
    };
    // One view ranges by box size alone: metres, not centimetres.
    assert!(signs.iter().filter(|r| near(r, 4.0)).count() >= 3, "{signs:?}");

    let built = roadhex_ok(&["features", "build", "--data", data.to_str().expect("utf8")]);
    let features = sql(
        &data,
        "SELECT feature_id, class, lat, lon, observations, contributors, confidence, error_m, h3_r12 FROM features ORDER BY feature_id",
    );
    let stop: Vec<_> = features.iter().filter(|r| near(r, 3.0)).collect();
    assert_eq!(stop.len(), 1, "{built}\n{features:?}\nsigns: {signs:?}");
    let feature = stop[0];
    assert!(feature["observations"].as_u64().expect("n") >= 3, "{feature}");
    assert_eq!(feature["contributors"], 1);
    assert!(feature["error_m"].as_f64().expect("error") > 0.0);
    let fid = feature["feature_id"].as_str().expect("id");
    let linked = sql(&data, &format!("SELECT count(*) AS n FROM detections WHERE feature_id = '{fid}'"));
    assert_eq!(linked[0]["n"], feature["observations"], "detections link to the feature");

    // A rebuild over the same detections changes nothing: same ids, same rows.
    roadhex_ok(&["features", "build", "--data", data.to_str().expect("utf8")]);
    let again = sql(
        &data,
        "SELECT feature_id, class, lat, lon, observations, contributors, confidence, error_m, h3_r12 FROM features ORDER BY feature_id",
    );
    assert_eq!(again, features);
}
