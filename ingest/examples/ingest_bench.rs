#![allow(clippy::print_stdout)] // a report printer
//! `make bench` (ingest): frame uploads over loopback from N concurrent clients through the real
//! router, beside raw object-store writes of the same bytes in the same run.
//!
//! Usage: ingest_bench [--clients N] [--frames-per-client N] [--parallel N] [--frame-kb N] [--rounds N]

use futures::StreamExt as _;
use roadhex_ingest::client::register;
use roadhex_ingest::{Ingest, IngestConfig};
use roadhex_lake::{EmbeddedQueue, Lake, WorkQueue};
use roadhex_schemas::geo::destination;
use roadhex_schemas::ids::sha256_hex;
use roadhex_schemas::signing::DeviceKeyFile;
use roadhex_schemas::{Camera, CaptureManifest, FixType, FrameEntry, GnssSample, Mount};
use std::sync::Arc;
use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

struct Args {
    clients: usize,
    frames_per_client: usize,
    parallel: usize,
    frame_kb: usize,
    rounds: usize,
}

fn args() -> Args {
    let mut a = Args { clients: 8, frames_per_client: 250, parallel: 4, frame_kb: 120, rounds: 2 };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let v = pair.get(1).and_then(|v| v.parse().ok()).unwrap_or(0);
        match pair[0].as_str() {
            "--clients" => a.clients = v,
            "--frames-per-client" => a.frames_per_client = v,
            "--parallel" => a.parallel = v,
            "--frame-kb" => a.frame_kb = v,
            "--rounds" => a.rounds = v,
            other => eprintln!("ignoring unknown argument {other}"),
        }
    }
    a
}

/// A valid 1280x720 JPEG padded with comment segments to `size` bytes; `seed` makes it unique.
fn frame(base: &[u8], size: usize, seed: u64) -> Vec<u8> {
    let mut out = base[..2].to_vec();
    let mut left = size.saturating_sub(base.len());
    let mut n = seed;
    while left > 4 {
        let len = (left - 4).min(65_000);
        out.extend([0xFF, 0xFE]);
        out.extend(u16::try_from(len + 2).unwrap_or(u16::MAX).to_be_bytes());
        for _ in 0..len {
            n = n.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            out.push(((n >> 33) as u8) | 1);
        }
        left -= len + 4;
    }
    out.extend_from_slice(&base[2..]);
    out
}

fn base_jpeg() -> Res<Vec<u8>> {
    let img = image::RgbImage::from_fn(1280, 720, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 90]));
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 50).encode_image(&img)?;
    Ok(out)
}

struct Capture {
    key: Arc<DeviceKeyFile>,
    manifest: Vec<u8>,
    frames: Vec<(String, bytes::Bytes)>,
}

fn captures(
    keys: &[Arc<DeviceKeyFile>],
    per_client: usize,
    frames: &mut impl Iterator<Item = Vec<u8>>,
) -> Vec<Vec<Capture>> {
    keys.iter()
        .enumerate()
        .map(|(k, key)| {
            let mut out = Vec::new();
            let mut left = per_client;
            let mut seq = 1;
            while left > 0 {
                let n = left.min(125);
                left -= n;
                let t0 = 1_777_630_800_000 + (k as i64) * 10_000_000 + seq as i64 * 1_000_000;
                let (mut lat, mut lon) = (45.0 + k as f64 * 0.01, 13.0);
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
                let bodies: Vec<Vec<u8>> = frames.take(n).collect();
                let entries = bodies
                    .iter()
                    .enumerate()
                    .map(|(i, b)| FrameEntry {
                        t_ms: t0 + 500 + i as i64 * 1000,
                        sha256: sha256_hex(b),
                        size: b.len() as u64,
                    })
                    .collect();
                let m = CaptureManifest {
                    version: 1,
                    device_id: key.device_id.to_string(),
                    sequence: seq,
                    created_at: chrono::Utc::now(),
                    camera: Camera {
                        width: 1280,
                        height: 720,
                        focal_length_px: Some(900.0),
                        hfov_deg: None,
                        mount: Mount::Front,
                        mount_height_m: 1.4,
                    },
                    telemetry,
                    imu: Vec::new(),
                    frames: entries,
                };
                let frames = bodies.into_iter().map(|b| (sha256_hex(&b), bytes::Bytes::from(b))).collect();
                out.push(Capture { key: Arc::clone(key), manifest: m.to_bytes(), frames });
                seq += 1;
            }
            out
        })
        .collect()
}

async fn upload_client(
    http: reqwest::Client,
    url: String,
    caps: Vec<Capture>,
    parallel: usize,
) -> Res<Vec<Duration>> {
    let mut latencies = Vec::new();
    for c in caps {
        let sig = c.key.sign(&c.manifest)?;
        let r = http
            .post(format!("{url}/v1/captures"))
            .header("x-roadhex-device", c.key.device_id.as_str())
            .header("x-roadhex-signature", sig)
            .body(c.manifest.clone())
            .send()
            .await?;
        let opened: serde_json::Value = r.error_for_status()?.json().await?;
        let id = opened["capture_id"].as_str().unwrap_or_default().to_owned();
        let results: Vec<Res<Duration>> = futures::stream::iter(c.frames)
            .map(|(sha, body)| {
                let (http, url, id) = (http.clone(), url.clone(), id.clone());
                async move {
                    let t = Instant::now();
                    http.put(format!("{url}/v1/captures/{id}/frames/{sha}"))
                        .body(body)
                        .send()
                        .await?
                        .error_for_status()?;
                    Ok(t.elapsed())
                }
            })
            .buffer_unordered(parallel)
            .collect()
            .await;
        for r in results {
            latencies.push(r?);
        }
        http.post(format!("{url}/v1/captures/{id}/commit")).send().await?.error_for_status()?;
    }
    Ok(latencies)
}

/// Store directories live until the process ends: deleting thousands of files between rounds
/// makes ext4's inode allocation (`recently_deleted`) dominate the next round's timings.
async fn ingest_round(
    a: &Args,
    frames: &mut impl Iterator<Item = Vec<u8>>,
    dir: &tempfile::TempDir,
) -> Res<(Duration, usize, u64, Vec<Duration>)> {
    let lake = Lake::open(&dir.path().display().to_string())?;
    let queue: Arc<dyn WorkQueue> = Arc::new(EmbeddedQueue::open(lake.clone(), "vision").await?);
    let config = IngestConfig { device_rate_per_s: 1e9, device_burst: 1e9, ..IngestConfig::default() };
    let app = roadhex_ingest::api::router(Arc::new(Ingest::new(lake, queue, config)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let mut keys = Vec::new();
    for i in 0..a.clients {
        let key = DeviceKeyFile::generate();
        register(&url, &key, &format!("bench-{i}")).await?;
        keys.push(Arc::new(key));
    }
    let caps = captures(&keys, a.frames_per_client, frames);
    let total: usize = caps.iter().flatten().map(|c| c.frames.len()).sum();
    let bytes: u64 = caps.iter().flatten().flat_map(|c| &c.frames).map(|(_, b)| b.len() as u64).sum();
    let http = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
    let t = Instant::now();
    let tasks: Vec<_> = caps
        .into_iter()
        .map(|c| tokio::spawn(upload_client(http.clone(), url.clone(), c, a.parallel)))
        .collect();
    let mut lat = Vec::new();
    for task in tasks {
        lat.extend(task.await??);
    }
    let elapsed = t.elapsed();
    server.abort();
    Ok((elapsed, total, bytes, lat))
}

async fn raw_round(
    a: &Args,
    frames: &mut impl Iterator<Item = Vec<u8>>,
    dir: &tempfile::TempDir,
) -> Res<(Duration, usize, u64)> {
    let lake = Lake::open(&dir.path().display().to_string())?;
    let total = a.clients * a.frames_per_client;
    let bodies: Vec<(String, bytes::Bytes)> =
        frames.take(total).map(|b| (sha256_hex(&b), b.into())).collect();
    let bytes: u64 = bodies.iter().map(|(_, b)| b.len() as u64).sum();
    let t = Instant::now();
    let results: Vec<roadhex_lake::Result<()>> = futures::stream::iter(bodies.into_iter().enumerate())
        .map(|(i, (sha, b))| {
            let lake = lake.clone();
            let path = object_store::path::Path::from(format!("raw/captures/c{}/frames/{sha}.jpg", i / 125));
            async move { lake.put(&path, b).await }
        })
        .buffer_unordered(a.clients * a.parallel)
        .collect()
        .await;
    for r in results {
        r?;
    }
    Ok((t.elapsed(), total, bytes))
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> Res<()> {
    let a = args();
    let base = base_jpeg()?;
    let size = a.frame_kb * 1000;
    let mut seed = 0u64;
    let mut frames = std::iter::from_fn(move || {
        seed += 1;
        Some(frame(&base, size, seed))
    });
    println!(
        "ingest bench: {} clients x {} frames of {} KB, {} in flight per client, {} rounds (best shown)",
        a.clients, a.frames_per_client, a.frame_kb, a.parallel, a.rounds
    );
    let (mut best_ingest, mut best_raw) =
        (None::<(Duration, usize, u64, Vec<Duration>)>, None::<(Duration, usize, u64)>);
    let mut dirs = Vec::new();
    for round in 0..a.rounds.max(1) {
        // Alternate which goes first, so neither always runs on a warmer (or dirtier) cache.
        for raw_turn in [round % 2 == 0, round % 2 == 1] {
            dirs.push(tempfile::tempdir()?);
            let dir = dirs.last().ok_or("no dir")?;
            if raw_turn {
                let raw = raw_round(&a, &mut frames, dir).await?;
                if best_raw.as_ref().is_none_or(|b| raw.0 < b.0) {
                    best_raw = Some(raw);
                }
            } else {
                let ing = ingest_round(&a, &mut frames, dir).await?;
                if best_ingest.as_ref().is_none_or(|b| ing.0 < b.0) {
                    best_ingest = Some(ing);
                }
            }
        }
    }
    let (Some((ti, n, bytes, mut lat)), Some((tr, nr, bytes_r))) = (best_ingest, best_raw) else {
        return Ok(());
    };
    lat.sort();
    let fps = n as f64 / ti.as_secs_f64();
    let raw_fps = nr as f64 / tr.as_secs_f64();
    let mb = |b: u64, t: Duration| b as f64 / 1e6 / t.as_secs_f64();
    println!("{:<44} {:>10} {:>10}", "", "frames/s", "MB/s");
    println!("{:<44} {:>10.0} {:>10.1}", "ingest: HTTP PUT, verified, durable", fps, mb(bytes, ti));
    println!("{:<44} {:>10.0} {:>10.1}", "reference: raw object-store writes", raw_fps, mb(bytes_r, tr));
    println!("ratio ingest/raw: {:.2} (goal >= 0.80); ingest frames/s goal >= 2000", fps / raw_fps);
    println!("frame PUT latency ms: p50 {:.1}, p99 {:.1}", pct(&lat, 0.5), pct(&lat, 0.99));
    Ok(())
}
