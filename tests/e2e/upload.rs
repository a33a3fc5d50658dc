//! The happy path through the real CLI: keygen, register, build, a partial upload, resume, commit,
//! then state, tables and queue.

use crate::support::*;
use parquet::file::reader::{FileReader as _, SerializedFileReader};
use std::path::Path;

fn parquet_rows(path: &Path) -> i64 {
    let file = std::fs::File::open(path).expect("open parquet");
    let reader = SerializedFileReader::new(file).expect("parquet");
    let meta = reader.metadata().file_metadata();
    let geo = meta.key_value_metadata().and_then(|kv| kv.iter().find(|k| k.key == "geo").cloned());
    assert!(geo.is_some(), "{} lacks GeoParquet metadata", path.display());
    meta.num_rows()
}

#[test]
fn build_upload_resume_commit() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let server = Server::start(&data, &[]);
    let key = tmp.path().join("device.key");
    let key_s = key.to_str().expect("utf8");
    let device_id = roadhex_ok(&["device", "keygen", "--out", key_s]).trim().to_owned();
    assert_eq!(device_id.len(), 32);
    let out = roadhex_ok(&[
        "device",
        "register",
        "--server",
        &server.url,
        "--key",
        key_s,
        "--contributor",
        "alice",
    ]);
    assert!(out.contains(&device_id) && out.contains("alice"), "{out}");

    // Frames without EXIF time: one per second from T0 + 2 s, on a track at 10 m/s (10 m apart).
    let gpx = tmp.path().join("drive.gpx");
    write_street_gpx(&gpx, T0, 30, 10.0);
    let captures = tmp.path().join("captures");
    let frames = udacity_frames();
    let start = chrono::DateTime::from_timestamp_millis(T0 + 2_000).expect("t").to_rfc3339();
    let (frames_s, gpx_s) = (frames.to_str().expect("utf8"), gpx.to_str().expect("utf8"));
    let report = capture_build(
        &key,
        &captures,
        &["--frames", frames_s, "--track", gpx_s, "--start", &start, "--interval-ms", "1000"],
    );
    assert_eq!(report["captures"].as_array().map(Vec::len), Some(1), "{report}");
    assert_eq!(report["captures"][0]["frames"], 6);
    let dir = captures.join("capture-000001");

    // Start the upload by hand and stop after three frames, as an interrupted app would.
    let bytes = std::fs::read(dir.join("manifest.json")).expect("manifest");
    let sig = std::fs::read_to_string(dir.join("manifest.sig")).expect("sig");
    let opened: serde_json::Value = server.post_signed(&device_id, &sig, &bytes).json().expect("json");
    let id = opened["capture_id"].as_str().expect("id").to_owned();
    let missing: Vec<String> = opened["missing"]
        .as_array()
        .expect("missing")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    assert_eq!(missing.len(), 6);
    for sha in &missing[..3] {
        let body = std::fs::read(dir.join("frames").join(format!("{sha}.jpg"))).expect("frame");
        assert_eq!(server.put_frame(&id, sha, body).status(), 201);
    }
    assert_eq!(server.status(&id)["state"], "receiving");

    // The CLI resumes: it sends only the three missing frames, then commits.
    let line = roadhex_ok(&["upload", "--server", &server.url, "--json", dir.to_str().expect("utf8")]);
    let result: serde_json::Value = serde_json::from_str(line.trim()).expect("result json");
    assert_eq!(result["capture_id"], id.as_str());
    assert_eq!(
        (result["uploaded"].as_u64(), result["already_present"].as_u64()),
        (Some(3), Some(3)),
        "{result}"
    );
    assert_eq!(result["state"], "queued");

    let status = server.status(&id);
    assert_eq!(status["state"], "queued");
    assert_eq!(status["contributor_id"], "alice");
    let frames = status["frames"].as_array().expect("frames");
    assert_eq!(frames.len(), 6);
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(
            (f["index"].as_u64(), f["state"].as_str(), f["frame_id"].is_null()),
            (Some(i as u64), Some("received"), true)
        );
    }

    // Re-uploading is a no-op that reports the same capture.
    let again = roadhex_ok(&["upload", "--server", &server.url, "--json", dir.to_str().expect("utf8")]);
    let again: serde_json::Value = serde_json::from_str(again.trim()).expect("json");
    assert_eq!((again["capture_id"].as_str(), again["uploaded"].as_u64()), (Some(id.as_str()), Some(0)));

    // Tables and queue.
    let part = data.join("tables/captures/date=2026-05-01").join(format!("part-capture-{id}.parquet"));
    assert_eq!(parquet_rows(&part), 1);
    let manifest: serde_json::Value = serde_json::from_slice(&bytes).expect("manifest json");
    let telemetry = data.join("tables/telemetry/date=2026-05-01").join(format!("part-capture-{id}.parquet"));
    assert_eq!(parquet_rows(&telemetry), manifest["telemetry"].as_array().map_or(0, |a| a.len() as i64));
    assert!(data.join(format!("queue/vision/{id}.json")).exists());
    assert_eq!(files(&data.join(format!("raw/captures/{id}/frames"))).len(), 6);

    // Analysts see the capture through SQL, with the H3 functions and the date partition.
    let data_s = data.to_str().expect("utf8");
    let csv = roadhex_ok(&[
        "sql",
        "--data",
        data_s,
        "--format",
        "csv",
        "SELECT c.valid_frame_count, c.date, count(t.seq) AS samples, \
         h3_distance(h3_cell(min(t.lat), min(t.lon), 12), h3_cell(min(t.lat), min(t.lon), 12)) AS d \
         FROM captures c JOIN telemetry t USING (capture_id) GROUP BY c.valid_frame_count, c.date",
    ]);
    let samples = manifest["telemetry"].as_array().map_or(0, Vec::len);
    assert_eq!(csv, format!("valid_frame_count,date,samples,d\n6,2026-05-01,{samples},0\n"));
    let refused = roadhex(&["sql", "--data", data_s, "DELETE FROM captures"]);
    assert!(!refused.status.success());

    // The OpenAPI document describes every route.
    let api = server.openapi();
    for route in [
        "/healthz",
        "/readyz",
        "/v1/devices/challenge",
        "/v1/devices",
        "/v1/devices/{id}",
        "/v1/devices/{id}/revoke",
        "/v1/captures",
        "/v1/captures/{id}",
        "/v1/captures/{id}/frames/{sha256}",
        "/v1/captures/{id}/commit",
    ] {
        assert!(api["paths"].get(route).is_some(), "openapi lacks {route}");
    }

    // Operators scrape the node: uploads, refusals by code, queue depth, latency per route.
    let refused: serde_json::Value =
        server.put_frame(&id, &"0".repeat(64), vec![0xff, 0xd8]).json().expect("json");
    let code = refused["code"].as_str().expect("code");
    let metrics =
        server.http().get(format!("{}/metrics", server.url)).send().expect("metrics").text().expect("text");
    for line in [
        "roadhex_frames_uploaded_total 6".to_owned(),
        format!("roadhex_rejections_total{{code=\"{code}\"}} 1"),
        "roadhex_queue_depth{queue=\"vision\"} 1".to_owned(),
        "roadhex_http_request_seconds_count{route=\"/v1/captures/{id}/frames/{sha256}\",method=\"PUT\"} 7"
            .to_owned(),
    ] {
        assert!(metrics.lines().any(|l| l == line), "/metrics lacks {line:?}:\n{metrics}");
    }
}

#[test]
fn killed_upload_resumes() {
    let tmp = tempfile::tempdir().expect("tmp");
    // A tight per-device rate keeps the upload slow enough to kill it midway.
    let server = Server::start(&tmp.path().join("data"), &["--device-rate", "10", "--device-burst", "3"]);
    let key = server.register_device("bob");
    let frames = frames();
    let m = manifest(&key, 1, &frames);
    let cap = tmp.path().join("capture");
    std::fs::create_dir_all(cap.join("frames")).expect("mkdir");
    let bytes = m.to_bytes();
    std::fs::write(cap.join("manifest.sig"), key.sign(&bytes).expect("sign")).expect("sig");
    std::fs::write(cap.join("manifest.json"), &bytes).expect("manifest");
    for (b, s) in &frames {
        std::fs::write(cap.join("frames").join(format!("{s}.jpg")), b).expect("frame");
    }
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_roadhex"))
        .args(["upload", "--server", &server.url, "--json", "--parallel", "1", cap.to_str().expect("utf8")])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn upload");
    let id = roadhex_schemas::CaptureId::from_manifest_bytes(&bytes).to_string();
    let frames_dir = server.data.join(format!("raw/captures/{id}/frames"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while files(&frames_dir).len() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().expect("kill upload");
    child.wait().expect("wait");
    let stored = files(&frames_dir).len();
    assert!((2..6).contains(&stored), "killed after {stored} frames");
    assert_eq!(server.status(&id)["state"], "receiving");

    let line = roadhex_ok(&["upload", "--server", &server.url, "--json", cap.to_str().expect("utf8")]);
    let r: serde_json::Value = serde_json::from_str(line.trim()).expect("json");
    assert_eq!(r["state"], "queued", "{r}");
    assert_eq!(r["already_present"].as_u64(), Some(stored as u64), "{r}");
    assert_eq!(r["uploaded"].as_u64(), Some(6 - stored as u64), "{r}");
}

#[test]
fn framekm_bundle_builds_and_uploads() {
    use roadhex_ingest::formats::framekm;
    let tmp = tempfile::tempdir().expect("tmp");
    let server = Server::start(&tmp.path().join("data"), &[]);
    let key = tmp.path().join("device.key");
    let key_s = key.to_str().expect("utf8");
    roadhex_ok(&["device", "keygen", "--out", key_s]);
    roadhex_ok(&["device", "register", "--server", &server.url, "--key", key_s, "--contributor", "hm-owner"]);
    // The six frames, 10 m apart along the street, packed as the Hivemapper firmware packs them.
    let track = street_track(T0, 10, 10.0);
    let frames: Vec<_> = frames().into_iter().zip(&track[1..]).map(|((b, _), s)| (b, *s)).collect();
    let (bundle, meta) = framekm::write("km_20260501_102001_6_0", "1.10", &frames);
    let (b_path, m_path) = (tmp.path().join("km_20260501_102001_6_0"), tmp.path().join("km.json"));
    std::fs::write(&b_path, bundle).expect("bundle");
    std::fs::write(&m_path, meta).expect("meta");
    let out = tmp.path().join("out");
    let report = capture_build(
        &key,
        &out,
        &["--framekm", b_path.to_str().expect("utf8"), "--metadata", m_path.to_str().expect("utf8")],
    );
    assert_eq!(report["captures"][0]["frames"], 6, "{report}");
    let dir = out.join("capture-000001");
    let line = roadhex_ok(&["upload", "--server", &server.url, "--json", dir.to_str().expect("utf8")]);
    let r: serde_json::Value = serde_json::from_str(line.trim()).expect("json");
    assert_eq!((r["state"].as_str(), r["uploaded"].as_u64()), (Some("queued"), Some(6)), "{r}");
    // A bundle whose sizes do not add up is refused with its code.
    std::fs::write(&b_path, b"\xFF\xD8 short").expect("bundle");
    let out = roadhex(&[
        "capture",
        "build",
        "--key",
        key_s,
        "--framekm",
        b_path.to_str().expect("utf8"),
        "--metadata",
        m_path.to_str().expect("utf8"),
        "--out",
        tmp.path().join("out2").to_str().expect("utf8"),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("framekm_size_mismatch"));
}

#[test]
fn telemetry_inspect_reads_every_format_by_content() {
    let data = shared_data();
    let cases = [
        ("nmea_gpsd/bt-q818.log", 10),
        ("gpx_tracks/gpxpy/track_with_speed.gpx", 3),
        ("gpmf_gopro/gpmf-parser/max-heromode.mp4", 191),
        ("exif_mapillary_tools/adobe_coords.jpg", 1),
    ];
    for (file, n) in cases {
        let out = roadhex_ok(&["telemetry", "inspect", "--json", data.join(file).to_str().expect("utf8")]);
        let lines: Vec<serde_json::Value> =
            out.lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
        assert_eq!(lines.len(), n, "{file}");
        for key in ["t", "lat", "lon", "alt", "speed", "heading", "hdop", "satellites", "fix"] {
            assert!(lines[0].get(key).is_some(), "{file}: no {key}");
        }
        assert!(
            lines.windows(2).all(|w| w[0]["t"].as_i64() < w[1]["t"].as_i64()),
            "{file}: times not increasing"
        );
    }
    // A file of another kind gets a clear, coded refusal.
    let out = roadhex(&["telemetry", "inspect", data.join("gpx_tracks/README.md").to_str().expect("utf8")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("format_unknown"));
}

#[test]
fn video_is_sampled_along_its_track() {
    let tmp = tempfile::tempdir().expect("tmp");
    let key = tmp.path().join("device.key");
    let key_s = key.to_str().expect("utf8");
    roadhex_ok(&["device", "keygen", "--out", key_s]);
    // The Udacity clip (1.5 s) driven at 15 m/s along the street: a keyframe every ~8 m.
    let gpx = tmp.path().join("drive.gpx");
    write_street_gpx(&gpx, T0, 10, 15.0);
    let start = chrono::DateTime::from_timestamp_millis(T0 + 1_000).expect("t").to_rfc3339();
    let video = shared_data().join("dashcam_udacity/vehicle_detection/test_video.mp4");
    let out = tmp.path().join("out");
    let report = capture_build(
        &key,
        &out,
        &[
            "--video",
            video.to_str().expect("utf8"),
            "--track",
            gpx.to_str().expect("utf8"),
            "--start",
            &start,
        ],
    );
    let frames = report["captures"][0]["frames"].as_u64().expect("frames");
    // 1.52 s at 15 m/s is 22.8 m: keyframes at 0, ~7, ~14 and ~22 m.
    assert!((3..=4).contains(&frames), "{report}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("capture-000001/manifest.json")).expect("manifest"))
            .expect("json");
    assert_eq!(
        (manifest["camera"]["width"].as_u64(), manifest["camera"]["height"].as_u64()),
        (Some(1280), Some(720))
    );
}

#[test]
fn nmea_track_from_a_receiver_with_the_week_rollover() {
    let tmp = tempfile::tempdir().expect("tmp");
    let key = tmp.path().join("device.key");
    roadhex_ok(&["device", "keygen", "--out", key.to_str().expect("utf8")]);
    let log = tmp.path().join("drive.nmea");
    write_nmea(&log, &street_track(T0, 30, 10.0), 1);
    // The receiver's dates are 1024 weeks early; `telemetry inspect` shows them as sent.
    let first = roadhex_ok(&["telemetry", "inspect", "--json", log.to_str().expect("utf8")]);
    let first: serde_json::Value = serde_json::from_str(first.lines().next().expect("a line")).expect("json");
    assert_eq!(first["t"].as_i64(), Some(T0 - 1024 * 7 * 86_400_000));
    // capture build aligns them with the frames' clock.
    let start = chrono::DateTime::from_timestamp_millis(T0 + 2_000).expect("t").to_rfc3339();
    let frames = udacity_frames();
    let report = capture_build(
        &key,
        &tmp.path().join("out"),
        &[
            "--frames",
            frames.to_str().expect("utf8"),
            "--track",
            log.to_str().expect("utf8"),
            "--start",
            &start,
            "--interval-ms",
            "1000",
        ],
    );
    assert_eq!(report["captures"][0]["frames"], 6, "{report}");
}
