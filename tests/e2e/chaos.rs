//! A short `make chaos`: stage processes over S3 and NATS are SIGKILLed and restarted while a
//! fleet uploads; once drained, the store equals a clean single-process run of the same captures.
//! The run itself is `examples/chaos/run.rs`, shared with `make chaos`.

#[path = "../../examples/common/mod.rs"]
pub(crate) mod common;
#[path = "../../examples/chaos/run.rs"]
mod run;

use std::time::Duration;

#[test]
fn kill9_of_any_stage_leaves_the_end_state_of_a_clean_run() {
    let cfg = run::Config {
        bin: env!("CARGO_BIN_EXE_roadhex").into(),
        seconds: 8,
        kill_every: Duration::from_secs(2),
        seed: 7,
        devices: 2,
        frames_per_capture: 3,
        captures: 4,
        ack_wait_s: 3,
        drain_timeout: Duration::from_secs(300),
    };
    let r = run::run(&cfg).expect("chaos run");
    eprintln!(
        "seed {}: {} captures, {} retries, drained in {:.0} s, kills {:?}, logged {:?}",
        r.seed, r.captures, r.retries, r.chaos_secs, r.kills, r.logged
    );
    for c in &r.checks {
        eprintln!("{:<24} equal={} chaos: {} / clean: {}", c.what, c.equal, c.chaos, c.clean);
    }
    assert_eq!(r.frame_rows.0, r.frame_rows.1, "a frame was published twice");
    assert!(r.passed(), "{:?}", r.checks);
    assert_eq!(r.frames_acked, 12);
    // Every role was killed at least once (the killer goes through all five in a random order).
    for role in ["ingest", "vision", "tiles,rewards"] {
        assert!(r.kills.get(role).is_some_and(|n| *n > 0), "{role} never killed: {:?}", r.kills);
    }
    let rewards = r.checks.iter().find(|c| c.what == "rewards Merkle root").expect("rewards check");
    assert!(!rewards.chaos.contains(" 0 credits"), "the fleet earned nothing: {}", rewards.chaos);
}
