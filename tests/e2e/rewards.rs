//! Rewards through the binary: the simulator, the ledger CLI, the node's rewards role and the
//! statement route.

use crate::support::{Server, files, roadhex_ok};

#[test]
fn simulate_is_reproducible_and_adversaries_earn_nothing() {
    let a = roadhex_ok(&["simulate", "--seed", "7", "--json"]);
    assert_eq!(a, roadhex_ok(&["simulate", "--seed", "7", "--json"]), "same seed, same bytes");
    let r: serde_json::Value = serde_json::from_str(&a).expect("json");
    assert_eq!(r["adversarial_total"], 0, "{r}");
    assert_eq!(r["honest_total"], r["budget"], "{r}");
    assert_eq!(r["merkle_root"].as_str().map(str::len), Some(64));
    for kind in ["duplicate_image", "teleport", "overlapping_captures", "clock_skew", "revoked_key"] {
        assert!(r["flagged_credits"][kind].as_u64().is_some_and(|n| n > 0), "{kind}: {r}");
    }
}

#[test]
fn the_node_runs_closed_epochs_and_serves_statements() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let store = format!("file://{}", data.display());
    roadhex_ok(&["simulate", "--seed", "4", "--store", &store, "--json"]);
    let data_s = data.to_str().expect("utf8");
    let rerun: serde_json::Value = serde_json::from_str(&roadhex_ok(&[
        "rewards", "run", "--data", data_s, "--epoch", "2026-W10", "--json",
    ]))
    .expect("json");
    assert_eq!((rerun["rerun"].as_bool(), rerun["unchanged"].as_bool()), (Some(true), Some(true)), "{rerun}");
    let statement: serde_json::Value = serde_json::from_str(&roadhex_ok(&[
        "rewards",
        "statement",
        "--data",
        data_s,
        "--contributor",
        "honest-01",
    ]))
    .expect("json");

    let server = Server::start_roles(&data, "ingest,rewards", &[]);
    let http = server.http();
    let get = |path: &str| http.get(format!("{}{path}", server.url)).send().expect("get");
    let body: serde_json::Value = get("/v1/contributors/honest-01/rewards").json().expect("json");
    assert_eq!(body, statement, "HTTP and CLI give the same statement");
    let e = &body["epochs"][0];
    assert_eq!(e["epoch_id"], "2026-W10");
    assert_eq!(e["verified"], true);
    assert_eq!(e["merkle_root"], rerun["merkle_root"]);
    let one: serde_json::Value =
        get("/v1/contributors/adv-clock_skew/rewards?epoch=2026-W10").json().expect("json");
    assert_eq!(one["epochs"][0]["amount"], 0);
    assert!(one["epochs"][0]["flagged_captures"].as_object().is_some_and(|m| !m.is_empty()), "{one}");
    let bad = get("/v1/contributors/a%27b/rewards");
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.json::<serde_json::Value>().expect("json")["code"], "contributor_invalid");
    assert_eq!(get("/v1/contributors/honest-01/rewards?epoch=1999-W01").status(), 404);
    let api: serde_json::Value = get("/openapi.json").json().expect("openapi");
    assert!(api["paths"].get("/v1/contributors/{id}/rewards").is_some(), "openapi lacks the rewards route");

    // The rewards role closes the recent weeks on its own (empty ones distribute nothing).
    let epochs_dir = data.join("tables/epochs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while files(&epochs_dir).len() <= 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(files(&epochs_dir).len() > 2, "no epoch closed by the node: {:?}", files(&epochs_dir));
}
