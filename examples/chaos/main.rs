#![allow(clippy::print_stdout)] // a report printer
//! `make chaos`: kill -9 a random stage process every N seconds during a multi-process run over
//! S3 (s3s-fs) and NATS, restart it, and compare the end state with a clean run (see `run.rs`).
//!
//! Usage: chaos [--seconds N] [--kill-every S] [--seed N] [--devices N] [--frames N]
//!              [--captures N] [--ack-wait S] [--drain-timeout S]

#[path = "../common/mod.rs"]
mod common;
mod run;

use anyhow::{Context as _, Result, bail};
use std::time::Duration;

fn config() -> Result<run::Config> {
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos() as u64;
    let mut c = run::Config {
        bin: common::procs::roadhex_bin()?,
        seconds: 120,
        kill_every: Duration::from_secs(10),
        seed,
        devices: 4,
        frames_per_capture: 5,
        captures: 14,
        ack_wait_s: 10,
        drain_timeout: Duration::from_secs(900),
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let v = pair.get(1).map(String::as_str).unwrap_or("");
        let n = || v.parse::<u64>().with_context(|| format!("{} wants a number, not {v:?}", pair[0]));
        match pair[0].as_str() {
            "--seconds" => c.seconds = n()?,
            "--kill-every" => c.kill_every = Duration::from_secs(n()?.max(1)),
            "--seed" => c.seed = n()?,
            "--devices" => c.devices = n()? as usize,
            "--frames" => c.frames_per_capture = n()? as usize,
            "--captures" => c.captures = n()? as usize,
            "--ack-wait" => c.ack_wait_s = n()?.max(1),
            "--drain-timeout" => c.drain_timeout = Duration::from_secs(n()?),
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(c)
}

fn main() -> Result<()> {
    let cfg = config()?;
    println!(
        "chaos: 2 ingest + 2 vision + 1 tiles,rewards processes over s3s-fs and NATS JetStream; a kill -9 \
         and restart every {} s; seed {} (--seed {} repeats the kill order)",
        cfg.kill_every.as_secs(),
        cfg.seed,
        cfg.seed
    );
    let r = run::run(&cfg)?;
    let kills: Vec<String> = r.kills.iter().map(|(role, n)| format!("{role} {n}")).collect();
    println!(
        "{} captures, {} frames acknowledged, {} requests retried; {:.0} s until drained; kills: {} ({} in all)",
        r.captures,
        r.frames_acked,
        r.retries,
        r.chaos_secs,
        kills.join(", "),
        r.kills.values().sum::<usize>()
    );
    println!("stage logs: {} warnings, {} errors (retries after kills)", r.logged.0, r.logged.1);
    println!(
        "frames table: {} rows, {} distinct frame ids{}",
        r.frame_rows.0,
        r.frame_rows.1,
        if r.frame_rows.0 == r.frame_rows.1 { " (none published twice)" } else { " (DOUBLE PUBLISH)" }
    );
    println!("  {:<24} {:<7} {:<40} clean run", "", "same", "chaos run");
    for c in &r.checks {
        println!("  {:<24} {:<7} {:<40} {}", c.what, if c.equal { "yes" } else { "NO" }, c.chaos, c.clean);
    }
    if !r.passed() {
        bail!("the chaos run's end state differs from the clean run (seed {})", r.seed);
    }
    println!("end state matches the clean run (seed {})", r.seed);
    Ok(())
}
