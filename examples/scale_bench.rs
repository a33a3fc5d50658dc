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

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use bytes::Bytes;
use roadhex_schemas::geo::destination;
use roadhex_schemas::ids::sha256_hex;
use roadhex_schemas::signing::DeviceKeyFile;
use roadhex_schemas::{Camera, CaptureManifest, FixType, FrameEntry, GnssSample, Mount};
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
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

fn shared_data() -> PathBuf {
    std::env::var_os("ROADHEX_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"))
}

/// The 70 Hivemapper Bee frames (2028×1024) as (sha256, bytes), in drive order.
fn bee_frames() -> Result<Vec<(String, Bytes)>> {
    let dir = shared_data().join("dashcam_hivemapper_bee_sf/frames");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {} (set ROADHEX_SHARED_DATA)", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    paths.sort();
    ensure!(!paths.is_empty(), "no frames in {}", dir.display());
    paths
        .iter()
        .map(|p| {
            let b = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            Ok((sha256_hex(&b), Bytes::from(b)))
        })
        .collect()
}

/// The `roadhex` binary of this example's profile: `target/<profile>/examples/scale_bench` →
/// `target/<profile>/roadhex`.
fn roadhex_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("ROADHEX_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().context("locating this example")?;
    let dir =
        exe.parent().and_then(Path::parent).ok_or_else(|| anyhow!("{} has no profile dir", exe.display()))?;
    let bin = dir.join("roadhex");
    let profile = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    ensure!(
        bin.is_file(),
        "{} is missing: cargo build --profile {profile} --bin roadhex --features roadhex-lake/sql,nats",
        bin.display()
    );
    Ok(bin)
}

// --- helper processes --------------------------------------------------------------------------

/// A child process, killed (SIGKILL) when dropped, as the e2e tests do.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_port(port: u16, what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        ensure!(Instant::now() < deadline, "{what} did not start on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// The shared object store: s3s-fs with a bucket `lake` (as tests/e2e/s3.rs), or a local directory.
struct Store {
    _server: Option<Killed>,
    endpoint: Option<String>,
    dir: tempfile::TempDir,
}

impl Store {
    fn s3() -> Result<Self> {
        let root = std::env::var_os("ROADHEX_S3S_ROOT").map(PathBuf::from).unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/roadhex/s3s")
        });
        let bin = root.join("bin/s3s-fs");
        ensure!(bin.is_file(), "{} is missing: run deploy/s3.sh (make bench does)", bin.display());
        let dir = tempfile::tempdir()?;
        std::fs::create_dir_all(dir.path().join("lake"))?;
        let port = free_port()?;
        let child = Command::new(&bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", "testing", "--secret-key", "testing"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let server = Killed(child);
        wait_port(port, "s3s-fs")?;
        Ok(Self { _server: Some(server), endpoint: Some(format!("http://127.0.0.1:{port}")), dir })
    }

    fn file() -> Result<Self> {
        Ok(Self { _server: None, endpoint: None, dir: tempfile::tempdir()? })
    }

    fn url(&self, prefix: &str) -> String {
        match self.endpoint {
            Some(_) => format!("s3://lake/{prefix}"),
            None => format!("file://{}/{prefix}", self.dir.path().display()),
        }
    }

    fn describe(&self) -> &'static str {
        if self.endpoint.is_some() { "one S3 store (s3s-fs)" } else { "one local directory" }
    }

    /// The `AWS_*` environment a roadhex process needs for this store.
    fn env(&self) -> Vec<(&'static str, String)> {
        let Some(endpoint) = &self.endpoint else { return Vec::new() };
        vec![
            ("AWS_ENDPOINT", endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }
}

/// `nats-server -js` on a free loopback port, with its store in a temp dir.
struct Nats {
    _server: Killed,
    url: String,
    _dir: tempfile::TempDir,
}

impl Nats {
    fn start() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let bin = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
            .into_iter()
            .find(|p| Path::new(p).is_file())
            .ok_or_else(|| {
                anyhow!("nats-server is missing: apt-get install nats-server (deploy/setup.sh does)")
            })?;
        let child = Command::new(bin)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting nats-server")?;
        let server = Killed(child);
        wait_port(port, "nats-server")?;
        Ok(Self { _server: server, url: format!("nats://127.0.0.1:{port}"), _dir: dir })
    }
}

// --- roadhex processes -------------------------------------------------------------------------

struct Ctx {
    bin: PathBuf,
    store: Store,
    unused: tempfile::TempDir,
}

/// One `roadhex serve` process.
struct Node {
    _child: Killed,
    _stdout: BufReader<ChildStdout>,
    /// `http://…` for processes with an HTTP role.
    url: String,
    /// Captures this (vision) process finished, counted from its `capture processed` log lines.
    processed: Arc<AtomicUsize>,
}

/// Starts `n` processes with `roles`, all at once (their start-ups overlap), and waits until each
/// has printed its first line: `listening on …`, or `running` once a vision process has its models.
fn start_nodes(ctx: &Ctx, roles: &str, n: usize, store: &str, queue: &str) -> Result<Vec<Node>> {
    let vision = roles.contains("vision");
    let mut started = Vec::new();
    for i in 0..n {
        let mut child = Command::new(&ctx.bin)
            .args(["serve", "--data"])
            .arg(ctx.unused.path())
            .args(["--listen", "127.0.0.1:0", "--roles", roles, "--store", store, "--queue", queue])
            // Vision's per-capture log line tells which process did each capture.
            .env("RUST_LOG", if vision { "warn,roadhex_vision::worker=info" } else { "warn" })
            .env("NO_COLOR", "1")
            // Short synthetic drives: trip trimming (200 m at each end, and a 120 s wait for the
            // drive's next capture) would hold them back, as in the e2e tests.
            .env("ROADHEX_TRIM_DEFAULT_M", "0")
            .env("ROADHEX_TRIM_MIN_M", "0")
            // The fleet is few devices sending many requests; per-device limits are not measured.
            .env("ROADHEX_DEVICE_RATE", "1000000000")
            .env("ROADHEX_DEVICE_BURST", "1000000000")
            .env("ROADHEX_FEATURES_EVERY_S", "0")
            .envs(ctx.store.env())
            .stdout(Stdio::piped())
            .stderr(if vision { Stdio::piped() } else { Stdio::inherit() })
            .spawn()
            .with_context(|| format!("starting {}", ctx.bin.display()))?;
        let processed = Arc::new(AtomicUsize::new(0));
        if let Some(stderr) = child.stderr.take() {
            let (count, tag) = (Arc::clone(&processed), format!("{roles} {i}"));
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(std::io::Result::ok) {
                    if line.contains("capture processed") {
                        count.fetch_add(1, Ordering::Relaxed);
                    } else {
                        eprintln!("[{tag}] {line}");
                    }
                }
            });
        }
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        started.push((Killed(child), BufReader::new(stdout), processed));
    }
    let mut nodes = Vec::new();
    for (child, mut stdout, processed) in started {
        let mut line = String::new();
        stdout.read_line(&mut line).context("reading the first line of roadhex serve")?;
        let url = match line.trim().strip_prefix("listening on ") {
            Some(url) => url.to_owned(),
            None if line.starts_with("running") => String::new(),
            None => bail!(
                "roadhex serve --roles {roles} did not start (first line {line:?}); is {} built with \
                 --features nats?",
                ctx.bin.display()
            ),
        };
        nodes.push(Node { _child: child, _stdout: stdout, url, processed });
    }
    Ok(nodes)
}

// --- the fleet ---------------------------------------------------------------------------------

/// One pre-built, pre-signed capture.
struct Capture {
    device: String,
    signature: String,
    manifest: Bytes,
    frames: Vec<(String, Bytes)>,
}

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
    let (mut lat, mut lon) = (37.70 + d as f64 * 0.01 + seq as f64 * 0.005, -122.45);
    let mut telemetry = Vec::new();
    for i in 0..=(n as i64 + 1) {
        telemetry.push(GnssSample {
            t_ms: t0 + i * 1000,
            lat,
            lon,
            alt: 10.0,
            speed: 9.0,
            heading: 0.0,
            hdop: Some(0.9),
            satellites: Some(12),
            fix: Some(FixType::Fix3d),
        });
        (lat, lon) = destination(lat, lon, 0.0, 9.0);
    }
    let frames: Vec<(String, Bytes)> = (0..n).map(|i| bee[(first + i) % bee.len()].clone()).collect();
    let m = CaptureManifest {
        version: 1,
        device_id: key.device_id.to_string(),
        sequence: seq,
        created_at: chrono::Utc::now(),
        camera: Camera {
            width: 2028,
            height: 1024,
            focal_length_px: None,
            hfov_deg: Some(120.0),
            mount: Mount::Front,
            mount_height_m: 1.4,
        },
        telemetry,
        imu: Vec::new(),
        frames: frames
            .iter()
            .enumerate()
            .map(|(i, (sha, b))| FrameEntry {
                t_ms: t0 + 500 + i as i64 * 1000,
                sha256: sha.clone(),
                size: b.len() as u64,
            })
            .collect(),
    };
    let manifest = m.to_bytes();
    let signature = key.sign(&manifest).map_err(|e| anyhow!("signing a manifest: {e}"))?;
    Ok(Capture { device: key.device_id.to_string(), signature, manifest: manifest.into(), frames })
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
    let nodes = start_nodes(ctx, "ingest", procs, &store, &nats.url)?;
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
    let ingest = start_nodes(ctx, "ingest", 1, &store, &nats.url)?;
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
    let vision = start_nodes(ctx, "vision", procs, &store, &nats.url)?;

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
    let count = || vision.iter().map(|n| n.processed.load(Ordering::Relaxed)).collect::<Vec<_>>();
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
    let bin = roadhex_bin()?;
    let bee = bee_frames()?;
    let store = if a.file_store { Store::file()? } else { Store::s3()? };
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
