//! Privacy operations end to end: zones and trim settings through the API and the CLI, frames in
//! a zone or a trimmed stretch never published, a later zone withdrawing published frames (tiles
//! and imagery stop showing them), redactions re-blurring or withdrawing frames, the raw-retention
//! purge, and the audit that reports every breach.

use crate::support::*;
use crate::tiles::{Client, props, sql, tile_of};
use crate::vision::{detail, eventually, upload_frames, wait_for};
use roadhex_schemas::geo::haversine_m;
use roadhex_schemas::ids::sha256_hex;
use roadhex_schemas::signing::{DeviceKeyFile, request_message};
use roadhex_schemas::{CaptureManifest, FrameEntry};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Frames in the drive: 10 m apart, so the drive is 390 m long.
const FRAMES: usize = 40;
/// The contributor's trim distance: frames 0–11 and 28–39 lie within it.
const TRIM_M: f64 = 115.0;

fn bee_files() -> Vec<PathBuf> {
    let dir = shared_data().join("dashcam_hivemapper_bee_sf/frames");
    let mut files: Vec<_> = std::fs::read_dir(dir).expect("dir").flatten().map(|e| e.path()).collect();
    files.retain(|p| p.extension().is_some_and(|e| e == "jpg"));
    files.sort();
    files
}

/// A drive of `n` Bee frames (2028x1024), one per second at 10 m/s along the street track.
fn drive(key: &DeviceKeyFile, sequence: u64, n: usize) -> (CaptureManifest, Vec<(Vec<u8>, String)>) {
    drive_part(key, sequence, 0..n)
}

/// Frames `range` of the drive as one capture (the telemetry covers the whole drive).
fn drive_part(
    key: &DeviceKeyFile,
    sequence: u64,
    range: std::ops::Range<usize>,
) -> (CaptureManifest, Vec<(Vec<u8>, String)>) {
    let first = range.start;
    let bodies: Vec<(Vec<u8>, String)> = bee_files()[range]
        .iter()
        .map(|p| {
            let b = std::fs::read(p).expect("frame");
            (b.clone(), sha256_hex(&b))
        })
        .collect();
    let mut m = manifest(key, sequence, &bodies);
    m.camera = dashcam_camera();
    m.telemetry = street_track(T0, FRAMES as i64 + 4, 10.0);
    m.frames = bodies
        .iter()
        .enumerate()
        .map(|(i, (b, s))| FrameEntry {
            t_ms: T0 + 2_000 + (first + i) as i64 * 1000,
            sha256: s.clone(),
            size: b.len() as u64,
        })
        .collect();
    (m, bodies)
}

/// Where frame `i` of [`drive`] is.
fn frame_pos(i: usize) -> (f64, f64) {
    let t = street_track(T0, FRAMES as i64 + 4, 10.0);
    let s = &t[i + 2];
    (s.lat, s.lon)
}

fn upload(server: &Server, key: &DeviceKeyFile, m: &CaptureManifest, bodies: &[(Vec<u8>, String)]) -> String {
    let resp = server.post_manifest(key, &m.to_bytes());
    let opened: Value = resp.json().expect("json");
    let id = opened["capture_id"].as_str().expect("capture id").to_owned();
    for (b, s) in bodies {
        assert_eq!(server.put_frame(&id, s, b.clone()).status(), 201);
    }
    id
}

/// A privacy request signed by a device, as the reference client makes it.
fn signed(
    server: &Server,
    key: &DeviceKeyFile,
    method: reqwest::Method,
    path: &str,
    body: &[u8],
    unix_s: i64,
) -> reqwest::blocking::Response {
    let sig = key.sign(&request_message(method.as_str(), path, unix_s, body)).expect("sign");
    server
        .http()
        .request(method, format!("{}{path}", server.url))
        .header("x-roadhex-device", key.device_id.as_str())
        .header("x-roadhex-signature", sig)
        .header("x-roadhex-time", unix_s.to_string())
        .body(body.to_vec())
        .send()
        .expect("request")
}

fn operator(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    body: &Value,
) -> reqwest::blocking::Response {
    server
        .http()
        .request(method, format!("{}{path}", server.url))
        .bearer_auth(OPERATOR_TOKEN)
        .json(body)
        .send()
        .expect("request")
}

fn write_key(dir: &Path, name: &str, key: &DeviceKeyFile) -> String {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec(key).expect("key json")).expect("write key");
    path.to_str().expect("utf8").to_owned()
}

/// `roadhex privacy audit --json` with the node's policy: (exit success, report).
fn audit(data: &Path, policy: &[&str]) -> (bool, Value) {
    let mut args = vec!["privacy", "audit", "--data", data.to_str().expect("utf8"), "--json"];
    args.extend_from_slice(policy);
    let out = roadhex(&args);
    let report: Value = serde_json::from_slice(&out.stdout).expect("audit json");
    (out.status.success(), report)
}

/// Frame ids the z16 `frames` tile around a position draws.
fn tile_frames(server: &Server, lat: f64, lon: f64) -> BTreeSet<String> {
    let Some(layer) = Client(server).tile("frames", 16, tile_of(16, lat, lon)) else {
        return BTreeSet::new();
    };
    layer.features.iter().filter_map(|f| props(&layer, f)["id"].as_str().map(str::to_owned)).collect()
}

fn imagery(server: &Server, frame_id: &str) -> reqwest::blocking::Response {
    Client(server).get(&format!("/v1/frames/{frame_id}.jpg"), &[])
}

/// `roadhex privacy enforce` with the node's policy, parsed.
fn enforce(data: &Path) -> Value {
    let mut args = vec!["privacy", "enforce", "--data", data.to_str().expect("utf8")];
    args.extend_from_slice(&POLICY[..4]);
    serde_json::from_str(&roadhex_ok(&args)).expect("enforce json")
}

const POLICY: [&str; 6] = ["--trim-default-m", "200", "--trim-min-m", "100", "--trim-settle-s", "0"];

#[test]
fn zones_trimming_withdrawal_retention_and_audit() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let server = Server::start_roles(&data, "ingest,vision,tiles", &POLICY);
    let key = server.register_device("pia");
    let other = server.register_device("quinn");
    let key_file = write_key(tmp.path(), "pia.key", &key);
    let now = chrono::Utc::now().timestamp();

    // Refusals, each with its code.
    let circle = |r: f64| json!({"shape": {"type": "circle", "lat": 45.0, "lon": 13.0, "radius_m": r}});
    assert_refused(operator(&server, reqwest::Method::POST, "/v1/zones", &circle(1.0)), 422, "zone_invalid");
    let unsigned =
        server.http().post(format!("{}/v1/zones", server.url)).json(&circle(50.0)).send().expect("post");
    assert_refused(unsigned, 400, "header_missing");
    let body = serde_json::to_vec(&circle(50.0)).expect("json");
    assert_refused(
        signed(&server, &key, reqwest::Method::POST, "/v1/zones", &body, now - 3_600),
        401,
        "request_expired",
    );
    let put = |trim: f64| json!({"trim_m": trim});
    assert_refused(
        operator(&server, reqwest::Method::PUT, "/v1/contributors/pia/privacy", &put(50.0)),
        422,
        "trim_out_of_range",
    );
    let body = serde_json::to_vec(&put(300.0)).expect("json");
    assert_refused(
        signed(&server, &other, reqwest::Method::PUT, "/v1/contributors/pia/privacy", &body, now),
        403,
        "forbidden",
    );

    // The contributor's choices, through the CLI: trim distance and a zone around frame 20.
    let srv = server.url.as_str();
    let view: Value = serde_json::from_str(&roadhex_ok(&[
        "privacy",
        "trim",
        "--server",
        srv,
        "--key",
        &key_file,
        "--contributor",
        "pia",
        "--metres",
        "115",
    ]))
    .expect("trim json");
    assert_eq!((view["trim_m"].as_f64(), view["chosen"].as_bool()), (Some(TRIM_M), Some(true)), "{view}");
    let (zlat, zlon) = frame_pos(20);
    let circle_arg = format!("{zlat},{zlon},14");
    let add_home = || {
        roadhex_ok(&[
            "zones",
            "add",
            "--server",
            srv,
            "--key",
            &key_file,
            "--circle",
            &circle_arg,
            "--label",
            "home",
        ])
    };
    let added = add_home();
    let zone_id = added.split_whitespace().next().expect("zone id").to_owned();
    // The same request again is the same zone; another contributor cannot delete it.
    let again = add_home();
    assert!(again.starts_with(&zone_id), "{again}");
    let path = format!("/v1/zones/{zone_id}");
    assert_refused(signed(&server, &other, reqwest::Method::DELETE, &path, &[], now), 403, "forbidden");
    // A polygon (a GeoJSON Feature, as QGIS exports it) far from the drive: it changes nothing here.
    let work = tmp.path().join("work.geojson");
    let ring = json!([[13.0, 45.0], [13.01, 45.0], [13.01, 45.01], [13.0, 45.01], [13.0, 45.0]]);
    let feature =
        json!({"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [ring]}});
    std::fs::write(&work, feature.to_string()).expect("geojson");
    let poly = roadhex_ok(&[
        "zones",
        "add",
        "--server",
        srv,
        "--key",
        &key_file,
        "--polygon",
        work.to_str().expect("utf8"),
    ]);
    assert!(poly.contains("polygon of 5 vertices"), "{poly}");
    let listed = roadhex_ok(&["zones", "list", "--server", srv, "--key", &key_file, "--json"]);
    let zones_file = tmp.path().join("zones.json");
    std::fs::write(&zones_file, &listed).expect("zones file");
    let zones: Value = serde_json::from_str(&listed).expect("zones json");
    assert_eq!(zones.as_array().map(Vec::len), Some(2), "{zones}");

    // capture build drops zone frames before anything is uploaded.
    let frames_dir = tmp.path().join("frames");
    std::fs::create_dir_all(&frames_dir).expect("dir");
    for (i, p) in bee_files().iter().take(30).enumerate() {
        std::fs::copy(p, frames_dir.join(format!("{i:03}.jpg"))).expect("copy");
    }
    let gpx = tmp.path().join("track.gpx");
    write_street_gpx(&gpx, T0, 34, 10.0);
    let start = chrono::DateTime::from_timestamp_millis(T0 + 2_000).expect("t").to_rfc3339();
    let build_key = tmp.path().join("build.key");
    roadhex_ok(&["device", "keygen", "--out", build_key.to_str().expect("utf8")]);
    let report = capture_build(
        &build_key,
        &tmp.path().join("built"),
        &[
            "--frames",
            frames_dir.to_str().expect("utf8"),
            "--track",
            gpx.to_str().expect("utf8"),
            "--start",
            &start,
            "--interval-ms",
            "1000",
            "--zones",
            zones_file.to_str().expect("utf8"),
        ],
    );
    let in_zone: BTreeSet<&str> = report["skipped"]
        .as_array()
        .expect("skipped")
        .iter()
        .filter(|s| s["code"] == "privacy_zone")
        .filter_map(|s| s["file"].as_str()?.rsplit('/').next())
        .collect();
    assert_eq!(in_zone, BTreeSet::from(["019.jpg", "020.jpg", "021.jpg"]), "{report}");

    // The server applies the zone and the trimming to a capture uploaded without them.
    let (m, bodies) = drive(&key, 1, FRAMES);
    let id = upload(&server, &key, &m, &bodies);
    assert_eq!(server.commit(&id).status(), 202);
    let status = wait_for(&server, &id, &["published", "rejected"], 600, 300);
    assert_eq!(status["state"], "published", "{status}");
    let mut published = Vec::new();
    for (i, f) in status["frames"].as_array().expect("frames").iter().enumerate() {
        let code = f["reason"]["code"].as_str();
        if !(12..28).contains(&i) {
            assert_eq!(
                (f["state"].as_str(), code),
                (Some("dropped"), Some("trip_trimmed")),
                "frame {i}: {f}"
            );
        } else if (19..=21).contains(&i) {
            assert_eq!(
                (f["state"].as_str(), code),
                (Some("dropped"), Some("privacy_zone")),
                "frame {i}: {f}"
            );
        } else if f["state"] == "published" {
            published.push(i);
        } else {
            assert_eq!(f["state"], "rejected", "frame {i}: {f}");
        }
    }
    assert!(published.len() >= 5, "{status}");
    // Nothing of the trimmed stretches or the zone reached the store or the tables.
    let stored = files(&data.join(format!("frames/{id}")));
    let expected: BTreeSet<String> = published.iter().map(|i| format!("{i:04}.jpg")).collect();
    assert_eq!(stored, expected);
    let data_s = data.to_str().expect("utf8");
    let rows = sql(
        &data,
        &format!("SELECT frame_index, lat, lon FROM frames WHERE capture_id = '{id}' ORDER BY frame_index"),
    );
    assert_eq!(rows.len(), published.len());
    let (a, b) = (&rows[0], &rows[rows.len() - 1]);
    let from_start = haversine_m(
        frame_pos(0).0,
        frame_pos(0).1,
        a["lat"].as_f64().expect("lat"),
        a["lon"].as_f64().expect("lon"),
    );
    let to_end = haversine_m(
        frame_pos(39).0,
        frame_pos(39).1,
        b["lat"].as_f64().expect("lat"),
        b["lon"].as_f64().expect("lon"),
    );
    assert!(from_start > TRIM_M - 10.0 && to_end > TRIM_M - 10.0, "{from_start} {to_end}");
    let (clean, report) = audit(&data, &POLICY[..4]);
    assert!(clean, "{report}");
    assert_eq!(report["frame_rows"].as_u64(), Some(published.len() as u64));

    // A network zone set later over a published frame: the audit sees the breach, enforce
    // withdraws the frame, and tiles and imagery stop showing it.
    let target = published[published.len() / 2];
    let (tlat, tlon) = frame_pos(target);
    let inside: Vec<String> = rows
        .iter()
        .filter(|r| {
            haversine_m(tlat, tlon, r["lat"].as_f64().expect("lat"), r["lon"].as_f64().expect("lon")) <= 10.0
        })
        .map(|r| format!("{id}-{:04}", r["frame_index"].as_u64().expect("index")))
        .collect();
    let target_id = format!("{id}-{target:04}");
    assert!(inside.contains(&target_id));
    assert!(eventually(|| imagery(&server, &target_id).status() == 200), "tiles never loaded the capture");
    assert!(tile_frames(&server, tlat, tlon).contains(&target_id));
    let circle_arg = format!("{tlat},{tlon},10");
    roadhex_ok(&[
        "zones",
        "add",
        "--server",
        srv,
        "--operator-token",
        OPERATOR_TOKEN,
        "--circle",
        &circle_arg,
    ]);
    let (clean, report) = audit(&data, &POLICY[..4]);
    assert!(!clean);
    assert_eq!(report["counts"]["frame_in_zone"].as_u64(), Some(inside.len() as u64), "{report}");
    let enforced = enforce(&data);
    assert_eq!(enforced["in_zone"].as_u64(), Some(inside.len() as u64), "{enforced}");
    assert_eq!(enforced["withdrawal"]["frames"].as_u64(), Some(inside.len() as u64), "{enforced}");
    assert!(eventually(|| imagery(&server, &target_id).status() == 404), "imagery still served");
    assert!(
        eventually(|| !tile_frames(&server, tlat, tlon).contains(&target_id)),
        "tile still draws the frame"
    );
    let status = server.status(&id);
    assert_eq!(status["frames"][target]["state"], "withdrawn", "{status}");
    assert_eq!(status["frames"][target]["reason"]["code"], "privacy_zone");
    assert!(!data.join(format!("frames/{id}/{target:04}.jpg")).exists());
    let left = published.len() - inside.len();
    let counts = sql(
        &data,
        &format!(
            "SELECT (SELECT count(*) FROM frames WHERE capture_id = '{id}') AS frames, \
             (SELECT sum(frame_count) FROM coverage WHERE capture_id = '{id}') AS covered"
        ),
    );
    assert_eq!(counts[0]["frames"].as_u64(), Some(left as u64), "{counts:?}");
    assert_eq!(counts[0]["covered"].as_u64(), Some(left as u64), "coverage follows the frames: {counts:?}");
    let (clean, report) = audit(&data, &POLICY[..4]);
    assert!(clean, "{report}");
    // Enforcing again changes nothing.
    let again = enforce(&data);
    assert_eq!(again["withdrawal"]["frames"].as_u64(), Some(0), "{again}");

    // Retention: an upload abandoned before commit is purged after the limit.
    let (m2, bodies2) = drive(&key, 2, 3);
    let abandoned = upload(&server, &key, &m2, &bodies2[..1]);
    let raw = data.join(format!("raw/captures/{abandoned}"));
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(25 * 3_600);
    for f in files(&raw) {
        std::fs::File::options()
            .write(true)
            .open(raw.join(&f))
            .expect("open")
            .set_modified(old)
            .expect("mtime");
    }
    let (clean, report) = audit(&data, &POLICY[..4]);
    assert!(!clean);
    assert_eq!(report["counts"]["raw_past_retention"].as_u64(), Some(1), "{report}");
    let purged: Value =
        serde_json::from_str(&roadhex_ok(&["privacy", "purge", "--data", data_s])).expect("purge json");
    assert_eq!(purged["captures_purged"].as_u64(), Some(1), "{purged}");
    assert!(!raw.exists());
    let s = server.status(&abandoned);
    assert_eq!(s["state"], "rejected", "{s}");
    assert!(
        s["reasons"].as_array().expect("reasons").iter().any(|r| r["code"] == "raw_retention_expired"),
        "{s}"
    );
    let (clean, report) = audit(&data, &POLICY[..4]);
    assert!(clean, "{report}");

    // The owner deletes their zone; the withdrawn frames stay withdrawn.
    roadhex_ok(&["zones", "delete", "--server", srv, "--key", &key_file, &zone_id]);
    let listed: Value =
        serde_json::from_str(&roadhex_ok(&["zones", "list", "--server", srv, "--key", &key_file, "--json"]))
            .expect("json");
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "the polygon and the network zone remain: {listed}");
}

/// Trimming follows the drive, not the capture: vision holds a capture until the next one of the
/// drive arrives (or the settle time passes), so the seam between two captures is kept.
#[test]
fn trimming_spans_the_captures_of_a_drive() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let policy = ["--trim-default-m", "95", "--trim-min-m", "50", "--trim-settle-s", "20"];
    let server = Server::start_roles(&data, "ingest,vision", &policy);
    let key = server.register_device("sam");
    let (m1, b1) = drive_part(&key, 1, 0..20);
    let (m2, b2) = drive_part(&key, 2, 20..FRAMES);
    let c1 = upload(&server, &key, &m1, &b1);
    assert_eq!(server.commit(&c1).status(), 202);
    // The first capture waits: its drive may go on.
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(server.status(&c1)["state"], "queued");
    let c2 = upload(&server, &key, &m2, &b2);
    assert_eq!(server.commit(&c2).status(), 202);
    let s1 = wait_for(&server, &c1, &["published", "rejected"], 600, 300);
    let s2 = wait_for(&server, &c2, &["published", "rejected"], 600, 300);
    let trimmed = |s: &Value| -> Vec<usize> {
        let frames = s["frames"].as_array().expect("frames");
        frames
            .iter()
            .enumerate()
            .filter(|(_, f)| f["reason"]["code"] == "trip_trimmed")
            .map(|(i, _)| i)
            .collect()
    };
    // Frames 0–9 of the drive (the first 95 m) and 30–39 (the last 95 m), nothing at the seam.
    assert_eq!(trimmed(&s1), (0..10).collect::<Vec<_>>(), "{s1}");
    assert_eq!(trimmed(&s2), (10..20).collect::<Vec<_>>(), "{s2}");
}

#[test]
fn redactions_reblur_withdraw_and_reject() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let server = Server::start_roles(&data, "ingest,vision,tiles", &[]);
    let key = server.register_device("rosa");
    let images: Vec<image::RgbImage> = (0..3).map(crate::vision::bee_frame).collect();
    let id = upload_frames(&server, &key, &images.iter().collect::<Vec<_>>());
    let status = wait_for(&server, &id, &["published", "rejected"], 600, 300);
    assert_eq!(status["state"], "published", "{status}");
    let (f0, f1, f2) = (format!("{id}-0000"), format!("{id}-0001"), format!("{id}-0002"));
    let c = Client(&server);
    let data_s = data.to_str().expect("utf8");

    let post = |body: &Value| c.post("/v1/redactions", body);
    assert_refused(post(&json!({"frame_id": format!("{id}-0099"), "reason": "x"})), 404, "frame_not_found");
    let outside = json!({"frame_id": f0, "boxes": [[2000, 0, 100, 100]], "reason": "my face"});
    assert_refused(post(&outside), 422, "redaction_invalid");
    assert_refused(post(&json!({"frame_id": f0, "reason": ""})), 422, "redaction_invalid");

    let boxed: Gt = (600, 300, 500, 400);
    let r = post(
        &json!({"frame_id": f0, "boxes": [[boxed.0, boxed.1, boxed.2, boxed.3]], "reason": "my face", "contact": "me@example.org"}),
    );
    assert_eq!(r.status(), 201);
    let r0: Value = r.json().expect("json");
    assert_eq!(r0["step"], "requested");
    assert!(r0.get("contact").is_none(), "the contact is not shown publicly: {r0}");
    let r0_id = r0["redaction_id"].as_str().expect("id").to_owned();
    let shown: Value = c.get(&format!("/v1/redactions/{r0_id}"), &[]).json().expect("json");
    assert_eq!(shown["step"], "requested");
    assert_refused(c.get("/v1/redactions", &[]), 401, "unauthorized");
    let auth = format!("Bearer {OPERATOR_TOKEN}");
    let pending: Value = c.get("/v1/redactions", &[("authorization", &auth)]).json().expect("json");
    assert_eq!(pending.as_array().map(Vec::len), Some(1), "{pending}");
    let listed: Value =
        serde_json::from_str(&roadhex_ok(&["redactions", "list", "--data", data_s, "--json"])).expect("json");
    assert_eq!(listed[0]["contact"], "me@example.org", "the operator sees the contact");

    // Approval re-blurs the box into a new version; the old bytes are gone.
    assert!(eventually(|| imagery(&server, &f2).status() == 200), "tiles never loaded the capture");
    let before = imagery(&server, &f0);
    let before_etag = before.headers()["etag"].to_str().expect("etag").to_owned();
    let before = image::load_from_memory(&before.bytes().expect("bytes")).expect("decode").to_luma8();
    let applied: Value =
        serde_json::from_str(&roadhex_ok(&["redactions", "approve", &r0_id, "--data", data_s]))
            .expect("json");
    assert_eq!((applied["step"].as_str(), applied["outcome"].as_str()), (Some("applied"), Some("reblurred")));
    assert!(!data.join(format!("frames/{id}/0000.jpg")).exists(), "old version deleted");
    assert!(data.join(format!("frames/{id}/0000-{r0_id}.jpg")).exists());
    assert!(eventually(|| imagery(&server, &f0)
        .headers()
        .get("etag")
        .is_some_and(|e| e != before_etag.as_str())));
    let after = imagery(&server, &f0);
    assert_eq!(after.status(), 200);
    let after = image::load_from_memory(&after.bytes().expect("bytes")).expect("decode").to_luma8();
    let (a, b) = (detail(&before, boxed), detail(&after, boxed));
    assert!(b < a * 0.15, "box keeps detail: {b:.1} of {a:.1}");
    let outside_box: Gt = (1300, 100, 300, 200);
    assert!(detail(&after, outside_box) > detail(&before, outside_box) * 0.5, "only the box is blurred");
    assert_refused(
        operator(&server, reqwest::Method::POST, &format!("/v1/redactions/{r0_id}/approve"), &json!({})),
        409,
        "redaction_decided",
    );

    // A whole-frame request, approved over HTTP: the frame is withdrawn.
    let r1: Value = post(&json!({"frame_id": f1, "reason": "my house"})).json().expect("json");
    let r1_id = r1["redaction_id"].as_str().expect("id").to_owned();
    let (lat, lon) = {
        let row = sql(&data, &format!("SELECT lat, lon FROM frames WHERE frame_id = '{f1}'"));
        (row[0]["lat"].as_f64().expect("lat"), row[0]["lon"].as_f64().expect("lon"))
    };
    assert!(tile_frames(&server, lat, lon).contains(&f1));
    let applied: Value = operator(
        &server,
        reqwest::Method::POST,
        &format!("/v1/redactions/{r1_id}/approve"),
        &json!({"note": "ok"}),
    )
    .json()
    .expect("json");
    assert_eq!(applied["outcome"], "withdrawn", "{applied}");
    assert!(eventually(|| imagery(&server, &f1).status() == 404));
    assert!(eventually(|| !tile_frames(&server, lat, lon).contains(&f1)));
    assert_eq!(server.status(&id)["frames"][1]["state"], "withdrawn");

    // A rejected request changes nothing and cannot be approved afterwards.
    let r2: Value = post(&json!({"frame_id": f2, "reason": "spam"})).json().expect("json");
    let r2_id = r2["redaction_id"].as_str().expect("id").to_owned();
    roadhex_ok(&["redactions", "reject", &r2_id, "--data", data_s, "--note", "nothing identifiable"]);
    assert_refused(
        operator(&server, reqwest::Method::POST, &format!("/v1/redactions/{r2_id}/approve"), &json!({})),
        409,
        "redaction_decided",
    );
    assert_eq!(imagery(&server, &f2).status(), 200);

    // Every step is in the audit table.
    let steps = sql(&data, "SELECT redaction_id, step FROM redactions ORDER BY \"at\", step");
    let of = |rid: &str| -> Vec<String> {
        steps
            .iter()
            .filter(|s| s["redaction_id"] == rid)
            .filter_map(|s| s["step"].as_str().map(str::to_owned))
            .collect()
    };
    let set = |rid: &str| of(rid).into_iter().collect::<BTreeSet<_>>();
    assert_eq!(set(&r0_id), BTreeSet::from(["requested", "approved", "applied"].map(String::from)));
    assert_eq!(set(&r1_id), BTreeSet::from(["requested", "approved", "applied"].map(String::from)));
    assert_eq!(set(&r2_id), BTreeSet::from(["requested", "rejected"].map(String::from)));
    let (clean, report) = audit(&data, &["--trim-default-m", "0", "--trim-min-m", "0"]);
    assert!(clean, "{report}");
}

type Gt = crate::vision::Gt;
