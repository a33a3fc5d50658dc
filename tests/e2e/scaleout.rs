//! Scale-out on loopback: two ingest and two vision processes and one tiles+rewards process share
//! an S3 store (s3s-fs) and a NATS JetStream queue. A vision process is killed while captures are in
//! flight; every capture is still published once, and the tables equal a single-process run.

use crate::s3::{NatsServer, S3Server};
use crate::support::*;
use roadhex_schemas::signing::DeviceKeyFile;
use serde_json::Value;
use std::time::{Duration, Instant};

const DEVICES: usize = 3;
const CAPTURES_PER_DEVICE: u64 = 2;

/// One capture to upload: device index, manifest bytes, frames (bytes, sha256).
type Upload = (usize, Vec<u8>, Vec<(Vec<u8>, String)>);

/// Every capture of the fleet.
fn fleet(keys: &[DeviceKeyFile]) -> Vec<Upload> {
    let frames = frames();
    let mut out = Vec::new();
    for (d, key) in keys.iter().enumerate() {
        for seq in 1..=CAPTURES_PER_DEVICE {
            // Each capture drops a different frame, so no two captures are alike.
            let skip = (d * 2 + seq as usize) % frames.len();
            let mine: Vec<_> =
                frames.iter().enumerate().filter(|(i, _)| *i != skip).map(|(_, f)| f.clone()).collect();
            out.push((d, manifest(key, seq, &mine).to_bytes(), mine));
        }
    }
    out
}

/// Uploads the fleet: manifests to `a`, frames alternately to `a` and `b`, commits to `b`.
fn upload_fleet(a: &Server, b: &Server, keys: &[DeviceKeyFile]) -> Vec<String> {
    let mut ids = Vec::new();
    for (d, bytes, frames) in fleet(keys) {
        let opened: Value = a.post_manifest(&keys[d], &bytes).json().expect("json");
        let id = opened["capture_id"].as_str().expect("capture id").to_owned();
        for (i, (body, sha)) in frames.iter().enumerate() {
            let to = if i % 2 == 0 { a } else { b };
            assert_eq!(to.put_frame(&id, sha, body.clone()).status(), 201);
        }
        assert_eq!(b.commit(&id).status(), 202, "commit on the other ingest process");
        ids.push(id);
    }
    ids
}

fn wait_all(server: &Server, ids: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(600);
    for id in ids {
        loop {
            let s = server.status(id);
            if s["state"] == "published" {
                break;
            }
            assert!(s["state"] != "rejected" && Instant::now() < deadline, "{s}");
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

fn sql_rows(store_args: &[&str], env: &[(&'static str, String)], q: &str) -> Vec<Value> {
    let mut args = vec!["sql"];
    args.extend_from_slice(store_args);
    args.extend_from_slice(&["--format", "json-array", q]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_roadhex"))
        .args(&args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("sql");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("json")
}

const FRAMES_Q: &str = "SELECT frame_id, h3_r12, quality, bytes FROM frames ORDER BY frame_id";
const COVERAGE_Q: &str =
    "SELECT capture_id, h3_r12, frame_id, frame_count FROM coverage ORDER BY capture_id, h3_r12";

#[test]
fn roles_in_separate_processes_share_s3_and_nats() {
    let s3 = S3Server::start();
    let nats = NatsServer::start();
    let tmp = tempfile::tempdir().expect("tmp");
    let unused = tmp.path().join("unused");
    let store = "s3://lake/fleet";
    // A short ack wait, so the killed worker's capture comes back within the test.
    let queue = format!("{}?ack_wait_s=5", nats.url);
    let args = ["--store", store, "--queue", queue.as_str()];
    let env = s3.env();
    let ingest_a = Server::start_env(&unused, "ingest", &args, &env);
    let ingest_b = Server::start_env(&unused, "ingest", &args, &env);
    let vision_1 = Server::start_env(&unused, "vision", &args, &env);
    let vision_2 = Server::start_env(&unused, "vision", &args, &env);
    let tiles = Server::start_env(&unused, "tiles,rewards", &args, &env);

    let keys: Vec<DeviceKeyFile> =
        (0..DEVICES).map(|i| ingest_a.register_device(&format!("fleet-{i}"))).collect();
    let ids = upload_fleet(&ingest_a, &ingest_b, &keys);
    // Kill one vision process while captures are in flight.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ids.iter().any(|id| ingest_a.status(id)["state"] == "processing") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    vision_1.kill9();
    wait_all(&ingest_a, &ids);
    // The tiles process serves what the vision processes published.
    let frame = format!("{}-0000", ids[0]);
    let served = crate::vision::eventually(|| {
        tiles
            .http()
            .get(format!("{}/v1/frames/{frame}.jpg", tiles.url))
            .send()
            .is_ok_and(|r| r.status() == 200)
    });
    assert!(served, "the tiles process serves the frame");
    drop(vision_2);

    let s3_args = ["--store", store];
    let frames = sql_rows(&s3_args, &env, FRAMES_Q);
    let dup = sql_rows(&s3_args, &env, "SELECT count(*) AS n, count(DISTINCT frame_id) AS d FROM frames");
    assert_eq!(dup[0]["n"], dup[0]["d"], "every frame published once: {dup:?}");
    let coverage = sql_rows(&s3_args, &env, COVERAGE_Q);

    // The same fleet through one embedded process gives the same tables.
    let data = tmp.path().join("single");
    let single = Server::start_roles(&data, "ingest,vision", &[]);
    let keys_again: Vec<DeviceKeyFile> = keys.clone();
    for (i, k) in keys_again.iter().enumerate() {
        let resp = single.register(&k.public_key, &format!("fleet-{i}"), |m| k.sign(m).expect("sign"));
        assert_eq!(resp.status(), 201);
    }
    let ids_single = upload_fleet(&single, &single, &keys_again);
    assert_eq!(ids_single, ids, "same manifests, same capture ids");
    wait_all(&single, &ids_single);
    let local = ["--data", data.to_str().expect("utf8")];
    assert_eq!(sql_rows(&local, &[], FRAMES_Q), frames);
    assert_eq!(sql_rows(&local, &[], COVERAGE_Q), coverage);
    assert!(!frames.is_empty());
}

/// The queue goes down between a capture's `queued` state and its queue item, and the ingest
/// process dies with the item unsent: the commit was refused, so the driver retries it against a
/// new process once the queue is back, which enqueues it, and it is published.
#[test]
fn a_commit_during_a_queue_outage_is_queued_on_retry() {
    let mut nats = NatsServer::start();
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let queue = format!("{}?ack_wait_s=5", nats.url);
    let args = ["--queue", queue.as_str()];
    let ingest = Server::start_env(&data, "ingest", &args, &[]);
    let key = ingest.register_device("outage");
    let frames = frames();
    let opened: Value =
        ingest.post_manifest(&key, &manifest(&key, 1, &frames).to_bytes()).json().expect("json");
    let id = opened["capture_id"].as_str().expect("capture id").to_owned();
    for (b, s) in &frames {
        assert_eq!(ingest.put_frame(&id, s, b.clone()).status(), 201);
    }
    nats.stop();
    let refused = ingest.commit(&id);
    assert_eq!(refused.status(), 503, "commit during the outage: {:?}", refused.text());
    assert_eq!(ingest.status(&id)["state"], "queued");
    // The NATS client holds the unsent item; killing the process loses it.
    ingest.kill9();
    nats.restart();
    let ingest = Server::start_env(&data, "ingest", &args, &[]);
    assert_eq!(ingest.commit(&id).status(), 202);
    let vision = Server::start_env(&data, "vision", &args, &[]);
    wait_all(&ingest, std::slice::from_ref(&id));
    drop(vision);
}
