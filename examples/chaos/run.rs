//! The chaos run: two ingest, two vision and one tiles+rewards process over one S3 store (s3s-fs)
//! and one NATS JetStream queue, a fleet uploading through both ingest processes with retries, and
//! a killer that SIGKILLs a random stage process every few seconds and restarts it on the same
//! port. Once the queue drains, the store must hold what a clean single-process run of the same
//! captures holds: the same captures, published frames (ids and JPEG hashes), detections,
//! coverage and rewards Merkle root.
//!
//! Shared by `examples/chaos/main.rs` (`make chaos`) and `tests/e2e/chaos.rs`.

use super::common::fleet::{self, Capture};
use super::common::procs::{self, Log, Nats, Node, NodeSpec, S3};
use anyhow::{Context as _, Result, anyhow, bail, ensure};
use roadhex_schemas::signing::DeviceKeyFile;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) bin: PathBuf,
    /// The fleet's uploads are spread over this many seconds; the killer goes on until the queue
    /// has drained.
    pub(crate) seconds: u64,
    pub(crate) kill_every: Duration,
    pub(crate) seed: u64,
    pub(crate) devices: usize,
    pub(crate) frames_per_capture: usize,
    /// At most this many captures (no two share a frame, so the 70 Bee frames bound it).
    pub(crate) captures: usize,
    /// NATS ack wait: how soon a killed vision process's capture goes to another one.
    pub(crate) ack_wait_s: u64,
    /// A capture not finished this long after the last upload counts as stuck.
    pub(crate) drain_timeout: Duration,
}

/// One comparison of the chaos run with the clean run.
#[derive(Debug, Clone)]
pub(crate) struct Check {
    pub(crate) what: &'static str,
    pub(crate) chaos: String,
    pub(crate) clean: String,
    pub(crate) equal: bool,
}

#[derive(Debug)]
pub(crate) struct Report {
    pub(crate) seed: u64,
    /// Kills (each followed by a restart) per role.
    pub(crate) kills: BTreeMap<String, usize>,
    pub(crate) captures: usize,
    pub(crate) frames_acked: usize,
    /// Requests the fleet sent again after a refused or broken connection, a 5xx or a 429.
    pub(crate) retries: usize,
    /// From the first upload until every capture was finished and the queue empty.
    pub(crate) chaos_secs: f64,
    /// Frame rows of the chaos run, and how many distinct frame ids among them.
    pub(crate) frame_rows: (usize, usize),
    pub(crate) checks: Vec<Check>,
    /// WARN and ERROR lines the stage processes logged (retries, failed acks, restarts).
    pub(crate) logged: (usize, usize),
}

impl Report {
    pub(crate) fn passed(&self) -> bool {
        self.frame_rows.0 == self.frame_rows.1 && self.checks.iter().all(|c| c.equal)
    }
}

/// The stage processes of the multi-process layout, in the order the killer numbers them.
const LAYOUT: [(&str, &str); 5] = [
    ("ingest-a", "ingest"),
    ("ingest-b", "ingest"),
    ("vision-1", "vision"),
    ("vision-2", "vision"),
    ("tiles+rewards", "tiles,rewards"),
];

pub(crate) fn run(cfg: &Config) -> Result<Report> {
    let work = tempfile::tempdir()?;
    let result = run_in(cfg, work.path());
    if !result.as_ref().is_ok_and(Report::passed) {
        eprintln!("chaos: the processes' logs are kept in {}", work.keep().display());
    }
    result
}

fn run_in(cfg: &Config, work: &Path) -> Result<Report> {
    let bee = fleet::bee_frames()?;
    let plan = plan(cfg, &bee)?;
    eprintln!(
        "chaos: seed {}, {} devices, {} captures x {} frames, a kill every {:?}; logs in {}",
        cfg.seed,
        plan.keys.len(),
        plan.captures.len(),
        cfg.frames_per_capture,
        cfg.kill_every,
        work.display()
    );

    let s3 = S3::start()?;
    let nats = Nats::start()?;
    let store = "s3://lake/chaos";
    let queue = format!("{}?ack_wait_s={}", nats.url, cfg.ack_wait_s);
    let mut nodes = Vec::new();
    for (name, roles) in LAYOUT {
        let port = if roles == "vision" { 0 } else { procs::free_port()? };
        nodes.push(Node::start(NodeSpec {
            name: name.to_owned(),
            bin: cfg.bin.clone(),
            roles: roles.to_owned(),
            args: vec!["--store".into(), store.into(), "--queue".into(), queue.clone()],
            env: s3.env(),
            port,
            log: Log::File(work.join(format!("{name}.log"))),
        })?);
    }
    let ingest: Vec<String> = nodes[..2].iter().map(|n| n.url.clone()).collect();
    let tiles_url = nodes[4].url.clone();
    let client = Client::new(ingest.clone())?;
    register(&client, &plan.keys)?;

    let started = Instant::now();
    let nodes: Arc<Vec<Mutex<Node>>> = Arc::new(nodes.into_iter().map(Mutex::new).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let killer = {
        let (nodes, stop, every, seed) = (Arc::clone(&nodes), Arc::clone(&stop), cfg.kill_every, cfg.seed);
        std::thread::spawn(move || kill_loop(&nodes, &stop, every, seed))
    };
    let uploaded = upload(&client, &plan, Duration::from_secs(cfg.seconds));
    let drained = uploaded.as_ref().map_err(|e| anyhow!("{e:#}")).and_then(|_| {
        let ids: Vec<String> = plan.captures.iter().map(|c| c.id.clone()).collect();
        wait_finished(&client, &ids, cfg.drain_timeout)
    });
    stop.store(true, Ordering::Relaxed);
    let kills = killer.join().map_err(|_| anyhow!("the killer thread panicked"))??;
    let frames_acked = uploaded?;
    let chaos_states = drained?;
    wait_queue_empty(&client, &tiles_url, Duration::from_secs(cfg.ack_wait_s + 60))?;
    let chaos_secs = started.elapsed().as_secs_f64();
    eprintln!("chaos: drained after {chaos_secs:.0} s; kills {kills:?}");

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let chaos_lake = s3.lake(store)?;
    let s3_args = vec!["--store".to_owned(), store.to_owned()];
    let chaos = rt.block_on(outcome(&cfg.bin, &s3_args, &s3.env(), &chaos_lake, &plan, chaos_states))?;
    drop(nodes);

    let clean = clean_run(cfg, &plan, work, &rt)?;
    let checks = compare(&chaos, &clean);
    let logged = |level: &str| -> usize {
        LAYOUT
            .iter()
            .filter_map(|(name, _)| std::fs::read_to_string(work.join(format!("{name}.log"))).ok())
            .map(|t| t.lines().filter(|l| l.contains(level)).count())
            .sum()
    };
    Ok(Report {
        seed: cfg.seed,
        kills,
        captures: plan.captures.len(),
        frames_acked,
        retries: client.retries.load(Ordering::Relaxed),
        chaos_secs,
        frame_rows: chaos.frame_rows,
        checks,
        logged: (logged("WARN"), logged("ERROR")),
    })
}

/// The fleet: device keys, and every capture in upload order (capture `j` belongs to device
/// `j % devices`).
struct Plan {
    keys: Vec<DeviceKeyFile>,
    captures: Vec<Capture>,
}

fn plan(cfg: &Config, bee: &[(String, bytes::Bytes)]) -> Result<Plan> {
    let per = cfg.frames_per_capture.clamp(1, bee.len());
    let n = cfg.captures.min(bee.len() / per).max(1);
    let devices = cfg.devices.clamp(1, n);
    let keys: Vec<DeviceKeyFile> = (0..devices).map(|_| DeviceKeyFile::generate()).collect();
    // Drives in the last hour: the current rewards epoch counts them (committed before its cutoff).
    let base = (chrono::Utc::now().timestamp_millis() - 3_600_000) / 1000 * 1000;
    let mut at: Vec<((f64, f64), i64)> =
        (0..devices).map(|d| ((37.70 + d as f64 * 0.02, -122.45), base)).collect();
    let mut captures = Vec::new();
    for j in 0..n {
        let d = j % devices;
        let frames = bee[j * per..(j + 1) * per].to_vec();
        let (start, t0) = at[d];
        let c = fleet::capture(&keys[d], (j / devices) as u64 + 1, t0, start, frames)?;
        at[d] = (c.end, c.end_ms + 10_000);
        captures.push(c);
    }
    Ok(Plan { keys, captures })
}

/// HTTP with the retry policy of a dashcam: a broken connection, a 5xx or a 429 is sent again,
/// to the other ingest process, until it succeeds; any other refusal is an error.
struct Client {
    http: reqwest::blocking::Client,
    urls: Vec<String>,
    next: AtomicUsize,
    retries: AtomicUsize,
}

/// How long one request may keep failing before the run gives up on it.
const REQUEST_DEADLINE: Duration = Duration::from_secs(180);

impl Client {
    fn new(urls: Vec<String>) -> Result<Self> {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        Ok(Self { http, urls, next: AtomicUsize::new(0), retries: AtomicUsize::new(0) })
    }

    fn send(
        &self,
        what: &str,
        ok: &[u16],
        build: impl Fn(&reqwest::blocking::Client, &str) -> reqwest::blocking::RequestBuilder,
    ) -> Result<Value> {
        let deadline = Instant::now() + REQUEST_DEADLINE;
        let mut backoff = Duration::from_millis(100);
        loop {
            let url = &self.urls[self.next.fetch_add(1, Ordering::Relaxed) % self.urls.len()];
            let failure = match build(&self.http, url).send() {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let text = resp.text().unwrap_or_default();
                    if ok.contains(&status) {
                        return Ok(serde_json::from_str(&text).unwrap_or(Value::Null));
                    }
                    if status != 429 && status < 500 {
                        bail!("{what}: HTTP {status}: {text}");
                    }
                    format!("HTTP {status}: {text}")
                }
                Err(e) => e.to_string(),
            };
            ensure!(Instant::now() < deadline, "{what}: still failing after {REQUEST_DEADLINE:?}: {failure}");
            self.retries.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    fn status(&self, id: &str) -> Result<Value> {
        self.send("status", &[200], |h, u| h.get(format!("{u}/v1/captures/{id}")))
    }
}

fn register(client: &Client, keys: &[DeviceKeyFile]) -> Result<()> {
    for (i, key) in keys.iter().enumerate() {
        let challenge =
            client.send("challenge", &[200], |h, u| h.post(format!("{u}/v1/devices/challenge")))?;
        let nonce = challenge["nonce"].as_str().ok_or_else(|| anyhow!("no nonce in {challenge}"))?;
        let body = fleet::registration(key, &format!("chaos-{i}"), nonce)?;
        client.send("register", &[200, 201], |h, u| h.post(format!("{u}/v1/devices")).json(&body))?;
    }
    Ok(())
}

/// Uploads every capture, one thread per device, capture `j` starting `j * spacing` in.
/// Returns the frames acknowledged.
fn upload(client: &Client, plan: &Plan, over: Duration) -> Result<usize> {
    let spacing = over / plan.captures.len().max(1) as u32;
    let t0 = Instant::now();
    let acked = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let drivers: Vec<_> = (0..plan.keys.len())
            .map(|d| {
                let acked = &acked;
                s.spawn(move || -> Result<()> {
                    for (j, c) in plan.captures.iter().enumerate().skip(d).step_by(plan.keys.len()) {
                        let due = t0 + spacing * j as u32;
                        std::thread::sleep(due.saturating_duration_since(Instant::now()));
                        acked.fetch_add(upload_one(client, c)?, Ordering::Relaxed);
                    }
                    Ok(())
                })
            })
            .collect();
        drivers.into_iter().try_for_each(|h| h.join().map_err(|_| anyhow!("a driver panicked"))?)
    })?;
    Ok(acked.into_inner())
}

fn upload_one(client: &Client, c: &Capture) -> Result<usize> {
    let opened = client.send("manifest", &[200, 201], |h, u| {
        h.post(format!("{u}/v1/captures"))
            .header("x-roadhex-device", &c.device)
            .header("x-roadhex-signature", &c.signature)
            .body(c.manifest.clone())
    })?;
    ensure!(opened["capture_id"] == c.id.as_str(), "manifest answered {opened}, expected {}", c.id);
    for (sha, body) in &c.frames {
        client.send("frame", &[200, 201], |h, u| {
            h.put(format!("{u}/v1/captures/{}/frames/{sha}", c.id)).body(body.clone())
        })?;
    }
    client.send("commit", &[202], |h, u| h.post(format!("{u}/v1/captures/{}/commit", c.id)))?;
    Ok(c.frames.len())
}

/// Waits until every capture is published or rejected; returns each one's final state.
fn wait_finished(client: &Client, ids: &[String], timeout: Duration) -> Result<BTreeMap<String, String>> {
    let deadline = Instant::now() + timeout;
    let mut states = BTreeMap::new();
    for id in ids {
        loop {
            let s = client.status(id)?;
            let state = s["state"].as_str().unwrap_or_default().to_owned();
            if state == "published" || state == "rejected" {
                states.insert(id.clone(), state);
                break;
            }
            ensure!(Instant::now() < deadline, "capture {id} stuck: {s}");
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    Ok(states)
}

/// Waits for the work queue's depth (`GET /metrics`) to reach 0: nothing left stuck in it.
fn wait_queue_empty(client: &Client, url: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let text =
            client.http.get(format!("{url}/metrics")).send().and_then(|r| r.text()).unwrap_or_default();
        let depth = text
            .lines()
            .find(|l| l.starts_with("roadhex_queue_depth"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok());
        if depth == Some(0.0) {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "the queue still holds {depth:?} items after {timeout:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Every `every`, SIGKILLs one stage process and restarts it: a random order of all five per
/// round, so a short run still hits every role.
fn kill_loop(
    nodes: &[Mutex<Node>],
    stop: &AtomicBool,
    every: Duration,
    seed: u64,
) -> Result<BTreeMap<String, usize>> {
    let mut rng = SplitMix(seed);
    let mut kills: BTreeMap<String, usize> = BTreeMap::new();
    let mut round: Vec<usize> = Vec::new();
    loop {
        let due = Instant::now() + every;
        while Instant::now() < due {
            if stop.load(Ordering::Relaxed) {
                return Ok(kills);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if round.is_empty() {
            round = (0..nodes.len()).collect();
            for i in (1..round.len()).rev() {
                round.swap(i, rng.below(i + 1));
            }
        }
        let victim = round.pop().unwrap_or(0);
        let mut node = nodes[victim].lock().map_err(|_| anyhow!("node lock poisoned"))?;
        eprintln!("chaos: kill -9 {} (pid {})", node.spec.name, node.pid());
        node.kill_and_restart()?;
        *kills.entry(node.spec.roles.clone()).or_default() += 1;
    }
}

/// A small seeded generator (SplitMix64): the kill order of a seed is the same on every machine.
struct SplitMix(u64);

impl SplitMix {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % n.max(1) as u64) as usize
    }
}

/// What a run left in its store.
struct Outcome {
    states: BTreeMap<String, String>,
    captures: Vec<Value>,
    frames: Vec<Value>,
    frame_rows: (usize, usize),
    hashes: BTreeMap<String, String>,
    detections: Vec<Value>,
    coverage: Vec<Value>,
    /// (epoch, Merkle root, credits, distributed) of every epoch the fleet drove in.
    rewards: Vec<(String, String, usize, u64)>,
}

const CAPTURES_Q: &str =
    "SELECT capture_id, sequence, frame_count, valid_frame_count, bytes FROM captures ORDER BY capture_id";
const FRAMES_Q: &str = "SELECT frame_id, h3_r12, quality, bytes, phash FROM frames ORDER BY frame_id";
const DETECTIONS_Q: &str =
    "SELECT frame_id, kind, class, x, y, w, h FROM detections ORDER BY frame_id, kind, x, y, w, h";
const COVERAGE_Q: &str = "SELECT capture_id, h3_r12, mount, frame_id, frame_count FROM coverage \
                          ORDER BY capture_id, h3_r12, mount";

async fn outcome(
    bin: &Path,
    store_args: &[String],
    env: &[(String, String)],
    lake: &roadhex_lake::Lake,
    plan: &Plan,
    states: BTreeMap<String, String>,
) -> Result<Outcome> {
    let sql = |q: &str| procs::sql_rows(bin, store_args, env, q);
    let frames = sql(FRAMES_Q)?;
    let n = sql("SELECT count(*) AS n, count(DISTINCT frame_id) AS d FROM frames")?;
    let count = |k: &str| n.first().and_then(|r| r[k].as_u64()).unwrap_or(0) as usize;
    let mut hashes = BTreeMap::new();
    for row in &frames {
        let id = row["frame_id"].as_str().ok_or_else(|| anyhow!("frame row without id: {row}"))?;
        let (capture, index) =
            roadhex_lake::paths::parse_frame_id(id).ok_or_else(|| anyhow!("bad frame id {id}"))?;
        let jpeg = lake
            .get(&roadhex_lake::paths::published_frame(&capture, index))
            .await?
            .ok_or_else(|| anyhow!("frame {id} is in the table but its JPEG is missing"))?;
        hashes.insert(id.to_owned(), roadhex_schemas::ids::sha256_hex(&jpeg));
    }
    let cfg = roadhex_rewards::RewardsConfig::default();
    let mut epochs: Vec<roadhex_rewards::Epoch> = Vec::new();
    for c in &plan.captures {
        let e = roadhex_rewards::Epoch::containing(&cfg, c.end_ms);
        if !epochs.contains(&e) {
            epochs.push(e);
        }
    }
    let mut rewards = Vec::new();
    for e in &epochs {
        roadhex_rewards::run::check_drained(lake, e).await.context("rewards before the queue drained")?;
        // The epoch is still open (the fleet committed just now): compute it as `roadhex rewards
        // run` will once its cutoff has passed.
        let r = roadhex_rewards::run_epoch(lake, &cfg, e, e.cutoff_ms + 1, &|_| {}).await?;
        rewards.push((r.epoch_id, r.merkle_root, r.credits, r.distributed));
    }
    Ok(Outcome {
        states,
        captures: sql(CAPTURES_Q)?,
        frame_rows: (count("n"), count("d")),
        frames,
        hashes,
        detections: sql(DETECTIONS_Q)?,
        coverage: sql(COVERAGE_Q)?,
        rewards,
    })
}

/// The same captures through one embedded process (local directory, embedded queue), no kills.
fn clean_run(cfg: &Config, plan: &Plan, work: &Path, rt: &tokio::runtime::Runtime) -> Result<Outcome> {
    let data = work.join("clean");
    let node = Node::start(NodeSpec {
        name: "clean".into(),
        bin: cfg.bin.clone(),
        roles: "ingest,vision,tiles,rewards".into(),
        args: vec!["--data".into(), data.display().to_string()],
        env: Vec::new(),
        port: 0,
        log: Log::File(work.join("clean.log")),
    })?;
    let client = Client::new(vec![node.url.clone()])?;
    register(&client, &plan.keys)?;
    for c in &plan.captures {
        upload_one(&client, c)?;
    }
    let ids: Vec<String> = plan.captures.iter().map(|c| c.id.clone()).collect();
    let states = wait_finished(&client, &ids, cfg.drain_timeout)?;
    let lake = roadhex_lake::Lake::open(&format!("file://{}", data.display()))?;
    let args = vec!["--data".to_owned(), data.display().to_string()];
    rt.block_on(outcome(&cfg.bin, &args, &[], &lake, plan, states))
}

fn compare(chaos: &Outcome, clean: &Outcome) -> Vec<Check> {
    fn check<T: PartialEq>(what: &'static str, a: &T, b: &T, show: impl Fn(&T) -> String) -> Check {
        Check { what, chaos: show(a), clean: show(b), equal: a == b }
    }
    let rows = |v: &Vec<Value>| format!("{} rows", v.len());
    let published = |m: &BTreeMap<String, String>| {
        let n = m.values().filter(|s| *s == "published").count();
        format!("{n} published, {} rejected", m.len() - n)
    };
    let roots = |r: &Vec<(String, String, usize, u64)>| {
        r.iter()
            .map(|(e, root, credits, paid)| format!("{e} {root} ({credits} credits, {paid} paid)"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    vec![
        check("capture states", &chaos.states, &clean.states, published),
        check("captures table", &chaos.captures, &clean.captures, rows),
        check("published frames", &chaos.frames, &clean.frames, rows),
        check("published JPEG hashes", &chaos.hashes, &clean.hashes, |m| format!("{} JPEGs", m.len())),
        check("detections", &chaos.detections, &clean.detections, rows),
        check("coverage", &chaos.coverage, &clean.coverage, rows),
        check("rewards Merkle root", &chaos.rewards, &clean.rewards, roots),
    ]
}
