#![allow(clippy::print_stdout)] // a report printer
//! `make bench` (scale-out, issue 9): ingest and vision throughput with one and with two
//! `roadhex serve` processes per role, beside each other in the same run.
//!
//! The processes are the real binary built in the same profile (`target/<profile>/roadhex`, or
//! `$ROADHEX_BIN`), started as `tests/e2e/scaleout.rs` starts them: `--roles ingest` or
//! `--roles vision`, sharing one S3 store (s3s-fs on loopback, installed by `deploy/s3.sh`) and one
//! NATS JetStream queue (`nats-server -js` on loopback). Each measurement gets a fresh store prefix
//! and a fresh NATS server.
//!
//! - ingest: a fleet of drivers uploads pre-built, pre-signed captures of real Hivemapper Bee
//!   frames (manifest, every frame, commit), each request going to the next ingest process in
//!   turn (a round-robin load balancer); frames/s acknowledged from the first manifest to the last
//!   commit. The same fleet and load against 1 and against 2 processes.
//! - vision: captures are uploaded (not timed), the vision processes are started and loaded, then
//!   every capture is committed at once; frames/s published from the first commit until every
//!   capture's status says `published`.
//!
//! Usage: scale_bench [--drivers N] [--captures N] [--frames N] [--parallel N] [--rounds N]
//!                    [--vision-captures N] [--vision-frames N] [--vision-rounds N] [--store s3|file]

#[path = "common/mod.rs"]
mod common;

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use bytes::Bytes;
use common::fleet::{self, Capture};
use common::procs::{Log, Nats, Node, NodeSpec, S3};
use roadhex_schemas::signing::DeviceKeyFile;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// 2026-05-01T10:20:00Z, the drives' clock.
const T0: i64 = 1_777_630_800_000;
/// How long the vision phase may take before the bench gives up.
const VISION_DEADLINE: Duration = Duration::from_secs(900);

struct Args {
    drivers: usize,
    captures: usize,
    frames: usize,
    parallel: usize,
    rounds: usize,
    vision_captures: usize,
    vision_frames: usize,
    vision_rounds: usize,
    file_store: bool,
}

fn args() -> Result<Args> {
    let mut a = Args {
        drivers: 8,
        captures: 4,
        frames: 50,
        parallel: 4,
        rounds: 2,
        vision_captures: 12,
        vision_frames: 8,
        vision_rounds: 1,
        file_store: false,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let v = pair.get(1).map(String::as_str).unwrap_or("");
        let n = || v.parse::<usize>().with_context(|| format!("{} wants a number, not {v:?}", pair[0]));
        match pair[0].as_str() {
            "--drivers" => a.drivers = n()?.max(1),
            "--captures" => a.captures = n()?.max(1),
            "--frames" => a.frames = n()?.max(1),
            "--parallel" => a.parallel = n()?.max(1),
            "--rounds" => a.rounds = n()?.max(1),
            "--vision-captures" => a.vision_captures = n()?.max(1),
            "--vision-frames" => a.vision_frames = n()?.max(1),
            "--vision-rounds" => a.vision_rounds = n()?.max(1),
            "--store" => match v {
                "s3" => a.file_store = false,
                "file" => a.file_store = true,
                _ => bail!("--store s3|file, not {v:?}"),
            },
            other => eprintln!("ignoring unknown argument {other}"),
        }
    }
    Ok(a)
}

// --- helper processes --------------------------------------------------------------------------

/// The shared object store: s3s-fs with a bucket `lake` (as tests/e2e/s3.rs), or a local directory.
enum Store {
    S3(S3),
    File(tempfile::TempDir),
}

impl Store {
    fn url(&self, prefix: &str) -> String {
        match self {
            Self::S3(_) => format!("s3://lake/{prefix}"),
            Self::File(dir) => format!("file://{}/{prefix}", dir.path().display()),
        }
    }

    fn describe(&self) -> &'static str {
        match self {
            Self::S3(_) => "one S3 store (s3s-fs)",
            Self::File(_) => "one local directory",
        }
    }

    /// The `AWS_*` environment a roadhex process needs for this store.
    fn env(&self) -> Vec<(String, String)> {
        match self {
            Self::S3(s3) => s3.env(),
            Self::File(_) => Vec::new(),
        }
    }
}

// --- roadhex processes -------------------------------------------------------------------------

struct Ctx {
    bin: PathBuf,
    store: Store,
    unused: tempfile::TempDir,
}

/// `roadhex serve` processes, and beside each the captures it (a vision process) finished, counted
/// from its `capture processed` log lines.
type Procs = (Vec<Node>, Vec<Arc<AtomicUsize>>);

/// Starts `n` processes with `roles`, all at once (their start-ups overlap), and waits until each
/// has printed its first line: `listening on …`, or `running` once a vision process has its models.
fn start_nodes(ctx: &Ctx, roles: &str, n: usize, store: &str, queue: &str) -> Result<Procs> {
    let vision = roles.contains("vision");
    let mut env = vec![
        // The fleet is few devices sending many requests; per-device limits are not measured.
        ("ROADHEX_DEVICE_RATE".to_owned(), "1000000000".to_owned()),
        ("ROADHEX_DEVICE_BURST".to_owned(), "1000000000".to_owned()),
    ];
    if vision {
        // Vision's per-capture log line tells which process did each capture.
        env.push(("RUST_LOG".into(), "warn,roadhex_vision::worker=info".into()));
    }
    env.extend(ctx.store.env());
    let (mut specs, mut counts) = (Vec::new(), Vec::new());
    for i in 0..n {
        let processed = Arc::new(AtomicUsize::new(0));
        let name = format!("{roles} {i}");
        let log = if vision {
            let (count, tag) = (Arc::clone(&processed), name.clone());
            Log::Lines(Arc::new(move |line: &str| {
                if line.contains("capture processed") {
                    count.fetch_add(1, Ordering::Relaxed);
                } else {
                    eprintln!("[{tag}] {line}");
                }
            }))
        } else {
            Log::Inherit
        };
        specs.push(NodeSpec {
            name,
            bin: ctx.bin.clone(),
            roles: roles.to_owned(),
            args: vec![
                "--data".into(),
                ctx.unused.path().display().to_string(),
                "--store".into(),
                store.to_owned(),
                "--queue".into(),
                queue.to_owned(),
            ],
            env: env.clone(),
            port: 0,
            log,
        });
        counts.push(processed);
    }
    Ok((Node::start_all(specs)?, counts))
}

// --- the fleet ---------------------------------------------------------------------------------

/// Capture `seq` of driver `d`: `n` Bee frames from `first` on (wrapping; distinct within a
/// capture), one per second along a straight 9 m/s street, 2028×1024 front camera.
fn capture(
    key: &DeviceKeyFile,
    d: usize,
    seq: u64,
    bee: &[(String, Bytes)],
    first: usize,
    n: usize,
) -> Result<Capture> {
    let n = n.min(bee.len()).min(125);
    let t0 = T0 + d as i64 * 10_000_000 + seq as i64 * 1_000_000;
    let start = (37.70 + d as f64 * 0.01 + seq as f64 * 0.005, -122.45);
    let frames = (0..n).map(|i| bee[(first + i) % bee.len()].clone()).collect();
    fleet::capture(key, seq, t0, start, frames)
}

async fn register_fleet(url: &str, n: usize, tag: &str) -> Result<Vec<DeviceKeyFile>> {
    let mut keys = Vec::new();
    for i in 0..n {
        let key = DeviceKeyFile::generate();
        roadhex_ingest::client::register(url, &key, &format!("{tag}-{i}"))
            .await
            .with_context(|| format!("registering device {i}"))?;
        keys.push(key);
    }
    Ok(keys)
}

async fn expect_status(resp: reqwest::Response, want: &[u16], what: &str) -> Result<reqwest::Response> {
    let status = resp.status().as_u16();
    if want.contains(&status) {
        return Ok(resp);
    }
    let body = resp.text().await.unwrap_or_default();
    bail!("{what}: HTTP {status}: {body}")
}

/// Round-robin over the ingest processes, as a load balancer would.
struct Balancer {
    urls: Arc<Vec<String>>,
    next: usize,
}

impl Balancer {
    fn url(&mut self) -> &str {
        let i = self.next % self.urls.len();
        self.next += 1;
        &self.urls[i]
    }
}

/// One driver: every capture in turn (manifest, frames with `parallel` in flight, and the commit
/// when `commit`). Returns each frame PUT's latency and the capture ids.
async fn drive(
    http: reqwest::Client,
    mut lb: Balancer,
    caps: Vec<Capture>,
    parallel: usize,
    commit: bool,
) -> Result<(Vec<Duration>, Vec<String>)> {
    let (mut latencies, mut ids) = (Vec::new(), Vec::new());
    for c in caps {
        let resp = http
            .post(format!("{}/v1/captures", lb.url()))
            .header("x-roadhex-device", &c.device)
            .header("x-roadhex-signature", &c.signature)
            .body(c.manifest)
            .send()
            .await?;
        let opened: serde_json::Value = expect_status(resp, &[200, 201], "manifest").await?.json().await?;
        let id =
            opened["capture_id"].as_str().ok_or_else(|| anyhow!("no capture_id in {opened}"))?.to_owned();
        let mut puts: JoinSet<Result<Duration>> = JoinSet::new();
        for (sha, body) in c.frames {
            if puts.len() >= parallel {
                latencies.push(puts.join_next().await.ok_or_else(|| anyhow!("no PUT in flight"))???);
            }
            let (http, url) = (http.clone(), format!("{}/v1/captures/{id}/frames/{sha}", lb.url()));
            puts.spawn(async move {
                let t = Instant::now();
                expect_status(http.put(url).body(body).send().await?, &[201], "frame").await?;
                Ok(t.elapsed())
            });
        }
        while let Some(r) = puts.join_next().await {
            latencies.push(r??);
        }
        if commit {
            let resp = http.post(format!("{}/v1/captures/{id}/commit", lb.url())).send().await?;
            expect_status(resp, &[202], "commit").await?;
        }
        ids.push(id);
    }
    Ok((latencies, ids))
}

/// Every driver at once; returns PUT latencies and capture ids in driver order.
async fn run_fleet(
    http: &reqwest::Client,
    urls: &Arc<Vec<String>>,
    fleet: Vec<Vec<Capture>>,
    parallel: usize,
    commit: bool,
) -> Result<(Vec<Duration>, Vec<String>)> {
    let mut set = JoinSet::new();
    for (d, caps) in fleet.into_iter().enumerate() {
        // Drivers start on different processes, so both see traffic from the first request.
        let lb = Balancer { urls: Arc::clone(urls), next: d };
        set.spawn(drive(http.clone(), lb, caps, parallel, commit));
    }
    let (mut lat, mut ids) = (Vec::new(), Vec::new());
    while let Some(r) = set.join_next().await {
        let (l, i) = r.context("driver task")??;
        lat.extend(l);
        ids.extend(i);
    }
    Ok((lat, ids))
}

fn http_client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder().pool_max_idle_per_host(64).timeout(Duration::from_secs(120)).build()?)
}

// --- the two measurements ----------------------------------------------------------------------

struct IngestRun {
    secs: f64,
    frames: usize,
    bytes: u64,
    latencies: Vec<Duration>,
}

impl IngestRun {
    fn fps(&self) -> f64 {
        self.frames as f64 / self.secs
    }
    fn mbps(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.secs
    }
    fn pct_ms(&self, p: f64) -> f64 {
        let mut l = self.latencies.clone();
        l.sort();
        let i = ((l.len() as f64 - 1.0) * p).round() as usize;
        l.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    }
}

async fn ingest_phase(
    ctx: &Ctx,
    a: &Args,
    bee: &[(String, Bytes)],
    procs: usize,
    round: usize,
) -> Result<IngestRun> {
    let nats = Nats::start()?;
    let store = ctx.store.url(&format!("ingest-{procs}p-r{round}"));
    let (nodes, _) = start_nodes(ctx, "ingest", procs, &store, &nats.url)?;
    let urls = Arc::new(nodes.iter().map(|n| n.url.clone()).collect::<Vec<_>>());
    let keys = register_fleet(&urls[0], a.drivers, "ingest").await?;
    let mut fleet = Vec::new();
    for (d, key) in keys.iter().enumerate() {
        let caps = (0..a.captures)
            .map(|c| capture(key, d, c as u64 + 1, bee, (d * 7 + c * 11) % bee.len(), a.frames))
            .collect::<Result<Vec<_>>>()?;
        fleet.push(caps);
    }
    let frames: usize = fleet.iter().flatten().map(|c| c.frames.len()).sum();
    let bytes: u64 = fleet.iter().flatten().flat_map(|c| &c.frames).map(|(_, b)| b.len() as u64).sum();
    let http = http_client()?;
    let t = Instant::now();
    let (latencies, ids) = run_fleet(&http, &urls, fleet, a.parallel, true).await?;
    let secs = t.elapsed().as_secs_f64();
    ensure!(
        ids.len() == a.drivers * a.captures,
        "{} of {} captures committed",
        ids.len(),
        a.drivers * a.captures
    );
    drop(nodes);
    Ok(IngestRun { secs, frames, bytes, latencies })
}

struct VisionRun {
    secs: f64,
    captures: usize,
    frames: usize,
    published: usize,
    per_process: Vec<usize>,
}

impl VisionRun {
    fn fps(&self) -> f64 {
        self.published as f64 / self.secs
    }
}

async fn vision_phase(
    ctx: &Ctx,
    a: &Args,
    bee: &[(String, Bytes)],
    procs: usize,
    round: usize,
) -> Result<VisionRun> {
    let nats = Nats::start()?;
    let store = ctx.store.url(&format!("vision-{procs}p-r{round}"));
    let (ingest, _) = start_nodes(ctx, "ingest", 1, &store, &nats.url)?;
    let url = ingest[0].url.clone();
    let urls = Arc::new(vec![url.clone()]);
    let devices = a.drivers.min(a.vision_captures);
    let keys = register_fleet(&url, devices, "vision").await?;
    let mut fleet: Vec<Vec<Capture>> = (0..devices).map(|_| Vec::new()).collect();
    for j in 0..a.vision_captures {
        let d = j % devices;
        let seq = (j / devices) as u64 + 1;
        fleet[d].push(capture(&keys[d], d, seq, bee, j * a.vision_frames, a.vision_frames)?);
    }
    let frames: usize = fleet.iter().flatten().map(|c| c.frames.len()).sum();
    let http = http_client()?;
    // Uploaded but not committed: nothing is queued until every vision process is up.
    let (_, ids) = run_fleet(&http, &urls, fleet, a.parallel, false).await?;
    let (vision, processed) = start_nodes(ctx, "vision", procs, &store, &nats.url)?;

    let t = Instant::now();
    let mut commits = JoinSet::new();
    for id in &ids {
        let (http, u) = (http.clone(), format!("{url}/v1/captures/{id}/commit"));
        commits.spawn(
            async move { expect_status(http.post(u).send().await?, &[202], "commit").await.map(drop) },
        );
    }
    while let Some(r) = commits.join_next().await {
        r??;
    }
    // Captures finish in about queue order: wait for each in turn, polling gently (the poll shares
    // the cores with vision).
    let mut published = 0;
    for id in &ids {
        loop {
            let resp = http.get(format!("{url}/v1/captures/{id}")).send().await?;
            let s: serde_json::Value = expect_status(resp, &[200], "status").await?.json().await?;
            match s["state"].as_str() {
                Some("published") => {
                    let list = s["frames"].as_array().map(Vec::as_slice).unwrap_or_default();
                    published += list.iter().filter(|f| f["state"] == "published").count();
                    break;
                }
                Some("rejected") => bail!("capture {id} was rejected: {}", s["reasons"]),
                _ => {}
            }
            ensure!(
                t.elapsed() < VISION_DEADLINE,
                "capture {id} not published after {VISION_DEADLINE:?}: {s}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    // The log line follows the status write by a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    let count = || processed.iter().map(|n| n.load(Ordering::Relaxed)).collect::<Vec<_>>();
    while count().iter().sum::<usize>() < ids.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let per_process = count();
    drop(vision);
    drop(ingest);
    Ok(VisionRun { secs, captures: ids.len(), frames, published, per_process })
}

/// 1-process and 2-process runs, alternating which goes first each round; the best of each.
fn order(round: usize) -> [usize; 2] {
    if round.is_multiple_of(2) { [1, 2] } else { [2, 1] }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let a = args()?;
    let bin = common::procs::roadhex_bin()?;
    let bee = fleet::bee_frames()?;
    let store = if a.file_store { Store::File(tempfile::tempdir()?) } else { Store::S3(S3::start()?) };
    let ctx = Ctx { bin, store, unused: tempfile::tempdir()? };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mean_kb = bee.iter().map(|(_, b)| b.len()).sum::<usize>() as f64 / bee.len() as f64 / 1000.0;

    println!(
        "scale bench: roadhex serve processes sharing {} and one NATS JetStream queue on loopback",
        ctx.store.describe()
    );
    println!("binary: {}", ctx.bin.display());
    println!(
        "machine: {cores} cores, shared by the roadhex processes, the store, nats-server and this load \
         generator (one thread, captures built and signed before timing): two processes cannot show 2x \
         here; the ratio shows the work spreads over processes, not how far more machines would go"
    );
    println!(
        "ingest: {} drivers x {} captures x {} Bee frames (2028x1024, {mean_kb:.0} KB mean), {} PUTs in \
         flight per driver, requests round-robin over the ingest processes; best of {} rounds",
        a.drivers,
        a.captures,
        a.frames.min(bee.len()),
        a.parallel,
        a.rounds
    );
    println!(
        "vision: {} captures x {} Bee frames, committed at once once the vision processes are up; \
         timed to the last capture published; best of {} rounds",
        a.vision_captures,
        a.vision_frames.min(bee.len()),
        a.vision_rounds
    );

    let mut ingest: [Option<IngestRun>; 2] = [None, None];
    for round in 0..a.rounds {
        for procs in order(round) {
            let r = ingest_phase(&ctx, &a, &bee, procs, round).await?;
            println!(
                "  round {}: ingest, {procs} process{}: {:.0} frames/s ({} frames in {:.2} s)",
                round + 1,
                if procs == 1 { "" } else { "es" },
                r.fps(),
                r.frames,
                r.secs
            );
            let best = &mut ingest[procs - 1];
            if best.as_ref().is_none_or(|b| r.secs < b.secs) {
                *best = Some(r);
            }
        }
    }
    let mut vision: [Option<VisionRun>; 2] = [None, None];
    for round in 0..a.vision_rounds {
        for procs in order(round) {
            let r = vision_phase(&ctx, &a, &bee, procs, round).await?;
            let split: Vec<String> = r.per_process.iter().map(usize::to_string).collect();
            println!(
                "  round {}: vision, {procs} process{}: {:.2} frames/s ({} of {} frames published in {:.1} s; \
                 captures per process {})",
                round + 1,
                if procs == 1 { "" } else { "es" },
                r.fps(),
                r.published,
                r.frames,
                r.secs,
                split.join(" / ")
            );
            let best = &mut vision[procs - 1];
            if best.as_ref().is_none_or(|b| r.secs < b.secs) {
                *best = Some(r);
            }
        }
    }
    let ([Some(i1), Some(i2)], [Some(v1), Some(v2)]) = (&ingest, &vision) else {
        bail!("a measurement is missing");
    };

    println!();
    println!(
        "  {:<44} {:>10} {:>9} {:>8} {:>8}  {:>9}",
        "", "frames/s", "MB/s", "p50 ms", "p99 ms", "2/1 ratio"
    );
    println!(
        "  {:<44} {:>10.0} {:>9.1} {:>8.1} {:>8.1}",
        "ingest, 1 process (reference)",
        i1.fps(),
        i1.mbps(),
        i1.pct_ms(0.5),
        i1.pct_ms(0.99)
    );
    println!(
        "  {:<44} {:>10.0} {:>9.1} {:>8.1} {:>8.1}  {:>9.2}",
        "ingest, 2 processes",
        i2.fps(),
        i2.mbps(),
        i2.pct_ms(0.5),
        i2.pct_ms(0.99),
        i2.fps() / i1.fps()
    );
    println!("  {:<44} {:>10.2}", "vision, 1 process (reference)", v1.fps());
    println!("  {:<44} {:>10.2} {:>37.2}", "vision, 2 processes", v2.fps(), v2.fps() / v1.fps());
    let split: Vec<String> = v2.per_process.iter().map(usize::to_string).collect();
    let done: usize = v2.per_process.iter().sum();
    println!(
        "  2 vision processes: captures per process {} ({done} claims finished for {} captures{})",
        split.join(" / "),
        v2.captures,
        if done == v2.captures { ", none done twice" } else { "" }
    );
    println!(
        "ratio 2/1 on {cores} cores: ingest {:.2}, vision {:.2} (1.00 = no gain and no loss; the cores, not \
         the processes, are the limit here)",
        i2.fps() / i1.fps(),
        v2.fps() / v1.fps()
    );
    Ok(())
}
