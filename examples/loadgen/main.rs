#![allow(clippy::print_stdout)] // a report printer
//! `make load`: simulated drivers upload real Bee frames to a real `roadhex serve` on loopback for
//! a while; per route latency and errors, throughput, each process's peak RSS, and whether every
//! acknowledged frame is in the store after the processes are killed (-9).
//!
//! Each driver closes a capture every `--frames` seconds of driving (a keyframe a second, as a
//! dashcam at 9 m/s) and uploads it over its one link: signed manifest, the frames one by one,
//! commit, status; it also checks on its previous capture. Drivers start evenly spread over one
//! cycle. The default layout is the embedded node (every role in one process, local data dir,
//! embedded queue); `--layout s3` runs 2 ingest + 1 vision + 1 tiles,rewards processes over
//! s3s-fs and NATS, each driver on one ingest process.
//!
//! Usage: loadgen [--seconds N] [--drivers N[,N…]] [--frames N] [--layout embedded|s3] [--drain-s N]
//!                [--roles ROLES (embedded layout; default all)]

mod check;
#[path = "../common/mod.rs"]
mod common;
mod drive;

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use common::procs::{self, Log, Nats, Node, NodeSpec, S3};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Args {
    seconds: u64,
    drivers: Vec<usize>,
    frames: usize,
    s3: bool,
    drain_s: u64,
    /// Roles of the embedded node.
    roles: String,
}

fn args() -> Result<Args> {
    let mut a = Args {
        seconds: 600,
        drivers: vec![200],
        frames: 10,
        s3: false,
        drain_s: 120,
        roles: "ingest,vision,sql,rewards,tiles".into(),
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let v = pair.get(1).map(String::as_str).unwrap_or("");
        let n = |s: &str| s.parse::<u64>().with_context(|| format!("{} wants a number, not {s:?}", pair[0]));
        match pair[0].as_str() {
            "--seconds" => a.seconds = n(v)?.max(1),
            "--drivers" => {
                a.drivers = v.split(',').map(|s| Ok(n(s)?.max(1) as usize)).collect::<Result<_>>()?
            }
            "--frames" => a.frames = (n(v)? as usize).clamp(1, 70),
            "--layout" => a.s3 = v == "s3",
            "--drain-s" => a.drain_s = n(v)?,
            "--roles" => a.roles = v.to_owned(),
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(a)
}

/// The processes under load and where their data lands.
struct Layout {
    nodes: Vec<Node>,
    /// Ingest URLs; driver `d` uses `ingest[d % len]`.
    ingest: Vec<String>,
    /// A process whose `/metrics` tells the queue depth.
    metrics: String,
    /// Processes whose memory is sampled (helpers included), by name.
    pids: Vec<(String, u32)>,
    lake: roadhex_lake::Lake,
    store_args: Vec<String>,
    env: Vec<(String, String)>,
    _helpers: Option<(S3, Nats)>,
}

fn start(bin: &Path, a: &Args, work: &Path) -> Result<Layout> {
    let spec = |name: &str, roles: &str, args: Vec<String>, env: Vec<(String, String)>| -> Result<NodeSpec> {
        let port = if roles == "vision" { 0 } else { procs::free_port()? };
        let log = Log::File(work.join(format!("{name}.log")));
        Ok(NodeSpec { name: name.into(), bin: bin.to_owned(), roles: roles.into(), args, env, port, log })
    };
    if !a.s3 {
        let data = work.join("data");
        let args = vec!["--data".to_owned(), data.display().to_string()];
        let node = Node::start(spec("roadhex serve", &a.roles, args.clone(), vec![])?)?;
        let (url, pid) = (node.url.clone(), node.pid());
        return Ok(Layout {
            nodes: vec![node],
            ingest: vec![url.clone()],
            metrics: url,
            pids: vec![(format!("roadhex serve ({})", a.roles), pid)],
            lake: roadhex_lake::Lake::open(&format!("file://{}", data.display()))?,
            store_args: args,
            env: Vec::new(),
            _helpers: None,
        });
    }
    let (s3, nats) = (S3::start()?, Nats::start()?);
    let store = "s3://lake/load";
    let args = vec!["--store".to_owned(), store.to_owned(), "--queue".to_owned(), nats.url.clone()];
    let mut nodes = Vec::new();
    for (name, roles) in [
        ("ingest-a", "ingest"),
        ("ingest-b", "ingest"),
        ("vision", "vision"),
        ("tiles+rewards", "tiles,rewards"),
    ] {
        nodes.push(Node::start(spec(name, roles, args.clone(), s3.env())?)?);
    }
    let mut pids: Vec<(String, u32)> = nodes.iter().map(|n| (n.spec.name.clone(), n.pid())).collect();
    pids.push(("s3s-fs".into(), s3.pid()));
    pids.push(("nats-server".into(), nats.pid()));
    Ok(Layout {
        ingest: nodes[..2].iter().map(|n| n.url.clone()).collect(),
        metrics: nodes[3].url.clone(),
        pids,
        lake: s3.lake(store)?,
        store_args: vec!["--store".to_owned(), store.to_owned()],
        env: s3.env(),
        nodes,
        _helpers: Some((s3, nats)),
    })
}

/// Peak and last memory of each sampled process, sampled every second.
#[derive(Debug, Clone, Default)]
struct Memory {
    /// Highest VmRSS seen, KiB.
    peak_rss: u64,
    /// VmHWM (the kernel's own peak) at the last sample, KiB.
    hwm: u64,
    /// VmRSS at the end of each tenth of the load window, KiB.
    tenths: Vec<u64>,
    /// CPU seconds used during the load window.
    cpu_load_s: f64,
}

fn sample(pids: Vec<(String, u32)>, stop: Arc<AtomicBool>, load: Duration) -> Arc<Mutex<Vec<Memory>>> {
    let mem = Arc::new(Mutex::new(vec![Memory::default(); pids.len()]));
    let out = Arc::clone(&mem);
    std::thread::spawn(move || {
        let t0 = Instant::now();
        let cpu0: Vec<f64> = pids.iter().map(|(_, p)| procs::cpu_secs(*p).unwrap_or(0.0)).collect();
        while !stop.load(Ordering::Relaxed) {
            let tenth = ((t0.elapsed().as_secs_f64() / load.as_secs_f64()) * 10.0) as usize;
            if let Ok(mut m) = mem.lock() {
                for (((_, pid), m), c0) in pids.iter().zip(m.iter_mut()).zip(&cpu0) {
                    if tenth < 10 {
                        m.cpu_load_s = procs::cpu_secs(*pid).map_or(m.cpu_load_s, |c| c - c0);
                    }
                    let Some((rss, hwm)) = procs::rss_kib(*pid) else { continue };
                    m.peak_rss = m.peak_rss.max(rss);
                    m.hwm = hwm;
                    if tenth < 10 {
                        m.tenths.resize(tenth + 1, 0);
                        m.tenths[tenth] = rss;
                    }
                }
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    out
}

fn queue_depth(http: &reqwest::blocking::Client, url: &str) -> Option<f64> {
    let text = http.get(format!("{url}/metrics")).send().and_then(|r| r.text()).ok()?;
    text.lines().find(|l| l.starts_with("roadhex_queue_depth"))?.rsplit(' ').next()?.parse().ok()
}

struct RunReport {
    drivers: usize,
    load_secs: f64,
    log: drive::Log,
    names: Vec<String>,
    memory: Vec<Memory>,
    depth_after_load: Option<f64>,
    drained_secs: Option<f64>,
    verdict: check::Verdict,
    table_rows: (usize, usize),
    /// 1-minute load average of the machine at the start and the end of the load window.
    loadavg: (String, String),
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next().map(str::to_owned))
        .unwrap_or_default()
}

fn run_once(a: &Args, bin: &Path, bee: &[(String, Bytes)], drivers: usize) -> Result<RunReport> {
    let work = tempfile::tempdir()?;
    let mut layout = start(bin, a, work.path())?;
    layout.pids.push(("loadgen (the drivers)".into(), std::process::id()));
    let rt = tokio::runtime::Runtime::new()?;
    let keys = rt.block_on(async {
        let mut keys = Vec::new();
        for d in 0..drivers {
            let key = roadhex_schemas::signing::DeviceKeyFile::generate();
            let url = &layout.ingest[d % layout.ingest.len()];
            roadhex_ingest::client::register(url, &key, &format!("driver-{d}")).await?;
            keys.push(key);
        }
        anyhow::Ok(keys)
    })?;
    let load = Duration::from_secs(a.seconds);
    let stop = Arc::new(AtomicBool::new(false));
    let memory = sample(layout.pids.clone(), Arc::clone(&stop), load);
    let cycle = Duration::from_secs(a.frames as u64);
    let load_start = loadavg();
    let t0 = Instant::now();
    let until = t0 + load;
    let log = rt.block_on(async {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(120)).build()?;
        let bee: Arc<Vec<(String, Bytes)>> = Arc::new(bee.to_vec());
        let mut tasks = tokio::task::JoinSet::new();
        for (index, key) in keys.into_iter().enumerate() {
            let driver = drive::Driver {
                index,
                key,
                url: layout.ingest[index % layout.ingest.len()].clone(),
                frames_per_capture: a.frames,
                offset: cycle * index as u32 / drivers as u32,
            };
            let (http, bee) = (http.clone(), Arc::clone(&bee));
            tasks.spawn(async move { driver.run(http, &bee, until).await });
        }
        let mut log = drive::Log::default();
        while let Some(l) = tasks.join_next().await {
            log.merge(l?);
        }
        anyhow::Ok(log)
    })?;
    let load_secs = t0.elapsed().as_secs_f64();
    let loadavg = (load_start, loadavg());
    let http = reqwest::blocking::Client::new();
    let depth_after_load = queue_depth(&http, &layout.metrics);
    let drain_deadline = Instant::now() + Duration::from_secs(a.drain_s);
    let mut drained_secs = None;
    while Instant::now() < drain_deadline || a.drain_s == 0 {
        if queue_depth(&http, &layout.metrics) == Some(0.0) {
            drained_secs = Some(t0.elapsed().as_secs_f64() - load_secs);
            break;
        }
        if a.drain_s == 0 {
            break;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    stop.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(1100));
    let memory = memory.lock().map(|m| m.clone()).unwrap_or_default();
    // What is queued, then kill -9 every roadhex process: only the store may answer from here on.
    let queued = rt.block_on(queue_items(&layout))?;
    layout.nodes.clear();
    let rows = procs::sql_rows(bin, &layout.store_args, &layout.env, "SELECT frame_id FROM frames")?;
    let table: BTreeSet<String> =
        rows.iter().filter_map(|r| r["frame_id"].as_str().map(str::to_owned)).collect();
    let verdict = rt.block_on(check::verify(&layout.lake, &log, &table, &queued))?;
    Ok(RunReport {
        drivers,
        load_secs,
        log,
        names: layout.pids.iter().map(|(n, _)| n.clone()).collect(),
        memory,
        depth_after_load,
        drained_secs,
        verdict,
        table_rows: (rows.len(), table.len()),
        loadavg,
    })
}

/// Ids the work queue holds: queue item objects (embedded), or the NATS stream's messages.
async fn queue_items(layout: &Layout) -> Result<BTreeSet<String>> {
    if let Some((_, nats)) = &layout._helpers {
        let q = roadhex_lake::queue_nats::NatsQueue::connect(&nats.url, "vision").await?;
        return Ok(roadhex_lake::WorkQueue::items(&q).await?.into_iter().collect());
    }
    let prefix = roadhex_lake::paths::queue_prefix("vision");
    Ok(layout
        .lake
        .list(&prefix)
        .await?
        .iter()
        .filter_map(|p| p.filename()?.strip_suffix(".json").map(str::to_owned))
        .collect())
}

fn pct_ms(sorted: &[u32], p: f64) -> f64 {
    let i = ((sorted.len().max(1) - 1) as f64 * p).round() as usize;
    sorted.get(i).map_or(0.0, |us| f64::from(*us) / 1000.0)
}

fn print_run(r: &RunReport, frames: usize) {
    println!();
    println!(
        "{} drivers for {:.0} s (a {frames}-frame capture every {frames} s each, frames sent one at a time; \
         offered {} frames/s):",
        r.drivers, r.load_secs, r.drivers
    );
    println!(
        "  {:<40} {:>9} {:>9}  {:<22} {:>8} {:>8} {:>8} {:>8}",
        "route", "requests", "2xx", "errors by code", "p50 ms", "p99 ms", "max ms", "req/s"
    );
    for (name, route) in drive::ROUTES.iter().zip(&r.log.routes) {
        let mut us = route.micros.clone();
        us.sort_unstable();
        let errors: usize = route.errors.values().sum();
        let codes: Vec<String> = route.errors.iter().map(|(c, n)| format!("{c}: {n}")).collect();
        println!(
            "  {:<40} {:>9} {:>9}  {:<22} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
            name,
            us.len() + route.errors.get("io").copied().unwrap_or(0),
            us.len() + route.errors.get("io").copied().unwrap_or(0) - errors,
            if codes.is_empty() { "-".to_owned() } else { codes.join(", ") },
            pct_ms(&us, 0.5),
            pct_ms(&us, 0.99),
            pct_ms(&us, 1.0),
            us.len() as f64 / r.load_secs
        );
    }
    let v = &r.verdict;
    println!("  machine load average {} at the start, {} at the end", r.loadavg.0, r.loadavg.1);
    println!(
        "  throughput: {:.1} frames/s acknowledged ({:.1} MB/s), {:.2} captures/s committed",
        v.frames_acked as f64 / r.load_secs,
        r.log.bytes_acked as f64 / 1e6 / r.load_secs,
        v.committed as f64 / r.load_secs
    );
    println!(
        "  vision: queue depth {} when the load stopped; {}",
        r.depth_after_load.map_or("?".into(), |d| format!("{d:.0}")),
        match r.drained_secs {
            Some(s) => format!("drained {s:.0} s later"),
            None => "not drained within --drain-s (its backlog stays queued in the store)".into(),
        }
    );
    println!(
        "  {:<40} {:>14} {:>14} {:>9}  VmRSS per tenth of the run (MiB)",
        "process", "peak VmRSS", "VmHWM", "CPU"
    );
    for (name, m) in r.names.iter().zip(&r.memory) {
        let tenths: Vec<String> = m.tenths.iter().map(|k| format!("{}", k / 1024)).collect();
        println!(
            "  {:<40} {:>10} MiB {:>10} MiB {:>8.0}%  {}",
            name,
            m.peak_rss / 1024,
            m.hwm / 1024,
            m.cpu_load_s / r.load_secs * 100.0,
            tenths.join(" ")
        );
    }
    println!(
        "  after kill -9: {} frames acknowledged, {} found ({} published, {} in raw/ awaiting vision, {} \
         rejected by a quality gate), {} lost; {} commits acknowledged: {} finished, {} still queued; frames \
         table {} rows, {} distinct",
        v.frames_acked,
        v.published + v.raw + v.judged,
        v.published,
        v.raw,
        v.judged,
        v.lost.len(),
        v.committed,
        v.finished,
        v.queued,
        r.table_rows.0,
        r.table_rows.1
    );
    for l in v.lost.iter().take(10) {
        println!("    LOST {l}");
    }
}

fn main() -> Result<()> {
    let a = args()?;
    let bin: PathBuf = procs::roadhex_bin()?;
    let bee = common::fleet::bee_frames()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "load: {} layout, binary {}, {cores} cores shared by the server(s) and this generator",
        if a.s3 { "S3 + NATS multi-process" } else { "embedded (one process, local data dir)" },
        bin.display()
    );
    let mut runs = Vec::new();
    for &n in &a.drivers {
        let r = run_once(&a, &bin, &bee, n)?;
        print_run(&r, a.frames);
        runs.push(r);
    }
    if runs.len() > 1 {
        println!();
        println!("peak VmRSS by drivers (MiB):");
        for r in &runs {
            let peaks: Vec<String> =
                r.names.iter().zip(&r.memory).map(|(n, m)| format!("{n} {}", m.peak_rss / 1024)).collect();
            println!("  {:>5} drivers: {}", r.drivers, peaks.join(", "));
        }
    }
    let lost: usize = runs.iter().map(|r| r.verdict.lost.len()).sum();
    let doubled = runs.iter().any(|r| r.table_rows.0 != r.table_rows.1);
    if lost > 0 || doubled {
        bail!("{lost} acknowledged frames or commits lost; frames published twice: {doubled}");
    }
    println!("no acknowledged frame or commit lost");
    Ok(())
}
