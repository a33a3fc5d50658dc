//! End-to-end checks of the rewards stage over real table files (one test binary for the crate).

use roadhex_lake::Lake;
use roadhex_rewards::sim::{SIM_EPOCH, simulate};
use roadhex_rewards::{Epoch, RewardsConfig, ledger, merkle, run_epoch, statement};

#[tokio::test]
async fn adversaries_earn_nothing_and_the_same_seed_gives_the_same_report() {
    let cfg = RewardsConfig::default();
    let a = simulate(&Lake::open("memory://").expect("lake"), &cfg, 7).await.expect("sim");
    println!("{}", serde_json::to_string_pretty(&a).expect("json"));
    assert_eq!(a.adversarial_total, 0, "{a:?}");
    assert_eq!(a.honest_total, cfg.budget, "the whole budget goes to honest drivers");
    for flag in roadhex_rewards::flags::Flag::ALL {
        assert!(a.flagged_credits.get(flag.code()).is_some_and(|&n| n > 0), "{flag:?} never raised: {a:?}");
    }
    assert!(a.sql_matches && a.proofs_verified, "{a:?}");
    let b = simulate(&Lake::open("memory://").expect("lake"), &cfg, 7).await.expect("sim");
    assert_eq!(a, b);
    let c = simulate(&Lake::open("memory://").expect("lake"), &cfg, 8).await.expect("sim");
    assert_ne!(a.merkle_root, c.merkle_root, "another seed is another fleet");
}

#[tokio::test]
async fn reruns_are_byte_identical_and_a_killed_run_recovers() {
    let cfg = RewardsConfig::default();
    let dir = tempfile::tempdir().expect("tmp");
    let lake = Lake::open(&format!("file://{}", dir.path().display())).expect("lake");
    simulate(&lake, &cfg, 3).await.expect("sim");
    let epoch = Epoch::parse(&cfg, SIM_EPOCH).expect("epoch");
    let now = epoch.cutoff_ms + 1;
    let rewards = roadhex_lake::paths::table_file(
        roadhex_schemas::tables::Table::Rewards,
        &epoch.partition(),
        &ledger::part_key(&epoch.id, 0),
    );
    let epochs = roadhex_lake::paths::table_file(
        roadhex_schemas::tables::Table::Epochs,
        &epoch.partition(),
        &ledger::key(&epoch.id),
    );
    let (r0, e0) = (lake.get(&rewards).await.expect("get"), lake.get(&epochs).await.expect("get"));
    assert!(r0.is_some() && e0.is_some());
    let again = run_epoch(&lake, &cfg, &epoch, now, &|_| {}).await.expect("rerun");
    assert!(again.rerun && again.unchanged, "{again:?}");
    // A run killed after a partial rewards write: no epochs row, a torn rewards file.
    lake.delete(&epochs).await.expect("delete");
    lake.put(&rewards, bytes::Bytes::from_static(b"torn")).await.expect("put");
    // …and a part left over from a run that had more rows: it must not count twice.
    let stale = roadhex_lake::paths::table_file(
        roadhex_schemas::tables::Table::Rewards,
        &epoch.partition(),
        &ledger::part_key(&epoch.id, 5),
    );
    lake.put(&stale, r0.clone().expect("bytes")).await.expect("put");
    let pending =
        roadhex_rewards::run::pending(&lake, &cfg, now + cfg.settle_ms(), 2).await.expect("pending");
    assert_eq!(pending.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), [SIM_EPOCH]);
    let recovered = run_epoch(&lake, &cfg, &epoch, now, &|_| {}).await.expect("recover");
    assert!(!recovered.rerun);
    assert_eq!(lake.get(&rewards).await.expect("get"), r0);
    assert_eq!(lake.get(&epochs).await.expect("get"), e0);
    assert!(!lake.exists(&stale).await.expect("head"), "stale part deleted");
    // Every file in the table is the epoch's own: no double credit from the reruns.
    let files = lake
        .list(&roadhex_lake::paths::table_prefix(roadhex_schemas::tables::Table::Rewards))
        .await
        .expect("list");
    assert_eq!(files.len(), 2, "one file per run epoch: {files:?}");
    assert!(run_epoch(&lake, &cfg, &epoch, epoch.cutoff_ms, &|_| {}).await.is_err(), "open epochs refuse");
}

#[tokio::test]
async fn statements_carry_proofs_that_verify() {
    let cfg = RewardsConfig::default();
    let lake = Lake::open("memory://").expect("lake");
    let report = simulate(&lake, &cfg, 11).await.expect("sim");
    let s = statement(&lake, "honest-03", None).await.expect("statement");
    assert_eq!(s.epochs.len(), 2, "the previous epoch and the simulated one");
    let e = &s.epochs[0];
    assert_eq!(e.epoch_id, SIM_EPOCH);
    assert_eq!(e.merkle_root, report.merkle_root);
    assert!(e.verified && e.amount > 0);
    assert!(merkle::verify(&e.epoch_id, "honest-03", e.amount, &e.proof, &e.merkle_root));
    assert!(!merkle::verify(&e.epoch_id, "honest-03", e.amount + 1, &e.proof, &e.merkle_root));
    let adv = statement(&lake, "adv-teleport", Some(SIM_EPOCH)).await.expect("statement");
    let e = &adv.epochs[0];
    assert_eq!(e.amount, 0);
    assert!(e.verified && !e.flagged_captures.is_empty());
    assert!(e.flagged_captures.values().all(|f| f.contains("teleport")));
    assert!(statement(&lake, "x'; DROP", None).await.is_err());
    assert!(statement(&lake, "nobody", None).await.expect("empty").epochs.is_empty());
}

#[tokio::test]
async fn public_sql_matches_the_ledger_with_regions_and_tiers() {
    let r6 = roadhex_rewards::synth::cells(37.77, -122.44)[3];
    let cfg = RewardsConfig {
        version: "test-regions".into(),
        regions: vec![roadhex_rewards::config::Region {
            name: "grid".into(),
            cells: vec![format!("{r6:x}")],
            weight: 1.5,
            road_cells: 2_000,
        }],
        ..RewardsConfig::default()
    };
    let lake = Lake::open("memory://").expect("lake");
    let report = simulate(&lake, &cfg, 5).await.expect("sim");
    assert!(report.sql_matches, "{report:?}");
    let ctx = roadhex_lake::catalog::session(&lake).expect("ctx");
    let epoch = Epoch::parse(&cfg, SIM_EPOCH).expect("epoch");
    let sql = roadhex_rewards::verify::sql_points(&ctx, &cfg, &epoch).await.expect("sql");
    assert!(sql.len() >= 10, "honest contributors have points: {sql:?}");
    let plain =
        simulate(&Lake::open("memory://").expect("lake"), &RewardsConfig::default(), 5).await.expect("sim");
    assert_ne!(plain.merkle_root, report.merkle_root, "the region weight changes the ledger");
}

#[tokio::test]
async fn an_epoch_waits_for_captures_still_in_the_pipeline() {
    use roadhex_rewards::synth::{SynthCapture, SynthFrame, hex_id, write};
    use roadhex_schemas::state::{CaptureStage, CaptureStatus};
    let cfg = RewardsConfig::default();
    let epoch = Epoch::parse(&cfg, SIM_EPOCH).expect("epoch");
    let lake = Lake::open("memory://").expect("lake");
    let capture = |label: &str| SynthCapture {
        id: hex_id(label),
        device_id: hex_id("device"),
        contributor_id: "dora".into(),
        sequence: 1,
        mount: "front",
        created_ms: epoch.start_ms + 3_600_000,
        committed_ms: epoch.start_ms + 7_200_000,
        frames: vec![SynthFrame {
            t_ms: epoch.start_ms + 3_000_000,
            lat: 45.0,
            lon: 13.0,
            phash: 1,
            quality: "ok",
        }],
    };
    let (done, queued) = (capture("published"), capture("queued"));
    write(&lake, std::slice::from_ref(&done), "done").await.expect("write");
    write(&lake, std::slice::from_ref(&queued), "queued").await.expect("write");
    // The queued capture is committed but vision has published nothing of it yet.
    let day = roadhex_lake::writer::partition_date(queued.frames[0].t_ms);
    let frames = roadhex_lake::paths::table_file(roadhex_schemas::tables::Table::Frames, &day, "queued");
    lake.delete(&frames).await.expect("delete frames");
    let left = roadhex_rewards::run::unfinished(&lake, &epoch).await.expect("unfinished");
    assert_eq!(left, vec![queued.id.clone()]);
    let err = roadhex_rewards::run::check_drained(&lake, &epoch).await.expect_err("not drained");
    assert_eq!(err.code(), "epoch_not_drained");
    // Once vision rejects it (or publishes it), the epoch may close.
    let id = roadhex_schemas::CaptureId::parse(&queued.id).expect("id");
    let now = chrono::Utc::now();
    let status = CaptureStatus {
        capture_id: queued.id.clone(),
        device_id: queued.device_id.clone(),
        contributor_id: "dora".into(),
        sequence: 1,
        state: CaptureStage::Rejected,
        reasons: Vec::new(),
        received_at: now,
        committed_at: Some(now),
        updated_at: now,
        frames: Vec::new(),
        table_date: None,
    };
    lake.put_json(&roadhex_lake::paths::capture_state(&id), &status).await.expect("state");
    roadhex_rewards::run::check_drained(&lake, &epoch).await.expect("drained");
}
