//! SIGKILL right after an acknowledged frame and right after an acknowledged commit: after a
//! restart the acknowledged data is there and the queue still holds the capture.

use crate::support::*;

#[test]
fn acknowledged_data_survives_kill9() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let server = Server::start(&data, &[]);
    let key = server.register_device("dave");
    let frames = frames();
    let m = manifest(&key, 1, &frames);
    let bytes = m.to_bytes();
    let opened: serde_json::Value = server.post_manifest(&key, &bytes).json().expect("json");
    let id = opened["capture_id"].as_str().expect("id").to_owned();
    assert_eq!(server.put_frame(&id, &frames[0].1, frames[0].0.clone()).status(), 201);
    server.kill9();

    let server = Server::start(&data, &[]);
    let resumed: serde_json::Value = server.post_manifest(&key, &bytes).json().expect("json");
    assert_eq!(resumed["capture_id"], id.as_str());
    let missing = resumed["missing"].as_array().expect("missing");
    assert_eq!(missing.len(), 5, "the acknowledged frame must survive: {resumed}");
    assert!(!missing.iter().any(|s| s == frames[0].1.as_str()));
    for (b, s) in &frames[1..] {
        assert_eq!(server.put_frame(&id, s, b.clone()).status(), 201);
    }
    assert_eq!(server.commit(&id).status(), 202);
    server.kill9();

    let server = Server::start(&data, &[]);
    let status = server.status(&id);
    assert_eq!(status["state"], "queued");
    assert!(data.join(format!("queue/vision/{id}.json")).exists(), "the queue lost the capture");
    // Committing again is idempotent and keeps one queue entry and one table file per table.
    assert_eq!(server.commit(&id).status(), 202);
    assert_eq!(files(&data.join("queue/vision")).len(), 1);
    assert_eq!(files(&data.join("tables/captures")).len(), 1);
}
