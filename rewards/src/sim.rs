//! `roadhex simulate`: honest and adversarial fleets drive a synthetic street grid; their captures
//! become real table rows in a lake, the real epoch computation runs over them, and the report says
//! what each kind earned. Everything derives from the seed, so a seed always gives the same report.

use crate::config::RewardsConfig;
use crate::epoch::Epoch;
use crate::error::Result;
use crate::run::{RunReport, run_epoch};
use crate::synth::{SynthCapture, SynthFrame, hex_id, register, write};
use roadhex_lake::Lake;
use serde::Serialize;
use std::collections::BTreeMap;

/// Adversary kinds, one per fraud flag.
pub const KINDS: [&str; 6] =
    ["duplicate_image", "duplicate_upload", "teleport", "overlapping_captures", "clock_skew", "revoked_key"];
/// The epoch every simulation credits (weekly config).
pub const SIM_EPOCH: &str = "2026-W10";

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
const FRAME_SPACING_M: f64 = 8.0;
const SPEED_MPS: f64 = 10.0;
const FRAMES_PER_CAPTURE: usize = 125;
const GRID: i64 = 14;
const BLOCK_M: f64 = 200.0;
const ORIGIN: (f64, f64) = (37.76, -122.45);
/// A second city ~67 km away (teleport target).
const FAR: (f64, f64) = (38.36, -122.45);

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimReport {
    pub seed: u64,
    pub epoch: String,
    pub budget: u64,
    pub honest_total: u64,
    pub adversarial_total: u64,
    /// Kind (honest or an adversary kind) → tokens earned in the epoch.
    pub kinds: BTreeMap<String, u64>,
    /// Flag code → credits it zeroed.
    pub flagged_credits: BTreeMap<String, u64>,
    pub honest_contributors: usize,
    pub credits: usize,
    pub merkle_root: String,
    /// The public SQL (`sql::points_sql`) gives the same points per contributor.
    pub sql_matches: bool,
    /// Every contributor's statement proof verifies against the root.
    pub proofs_verified: bool,
}

use roadhex_schemas::rng::SplitMix64 as Rng;

/// A walk along the grid's streets: `n` positions `FRAME_SPACING_M` apart, from `t0`.
fn drive(rng: &mut Rng, origin: (f64, f64), t0: i64, n: usize) -> Vec<(i64, f64, f64)> {
    let dlat = BLOCK_M / 111_320.0;
    let dlon = BLOCK_M / (111_320.0 * origin.0.to_radians().cos());
    let (mut x, mut y) = (rng.range(0, GRID), rng.range(0, GRID));
    let dirs = [(1, 0), (0, 1), (-1, 0), (0, -1)];
    let mut dir = dirs[rng.below(4) as usize];
    let mut along = 0.0;
    let dt = (FRAME_SPACING_M / SPEED_MPS * 1000.0) as i64;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let f = along / BLOCK_M;
        let lat = origin.0 + (y as f64 + f * dir.1 as f64) * dlat;
        let lon = origin.1 + (x as f64 + f * dir.0 as f64) * dlon;
        out.push((t0 + i as i64 * dt, lat, lon));
        along += FRAME_SPACING_M;
        if along >= BLOCK_M {
            along -= BLOCK_M;
            (x, y) = (x + dir.0, y + dir.1);
            // Mostly straight on; turn at random or at the edge, never back.
            let options: Vec<(i64, i64)> = dirs
                .iter()
                .copied()
                .filter(|d| *d != (-dir.0, -dir.1))
                .filter(|d| (0..GRID).contains(&(x + d.0)) && (0..GRID).contains(&(y + d.1)))
                .collect();
            let straight = options.contains(&dir) && rng.below(10) < 6;
            if !straight && !options.is_empty() {
                dir = options[rng.below(options.len() as u64) as usize];
            }
        }
    }
    out
}

#[derive(Debug)]
struct Fleet {
    rng: Rng,
    captures: Vec<SynthCapture>,
    seq: u64,
}

impl Fleet {
    /// Cuts a drive into captures of one device and adds them.
    fn add(
        &mut self,
        device: &str,
        contributor: &str,
        track: &[(i64, f64, f64)],
        commit_after: i64,
    ) -> Vec<usize> {
        let mut added = Vec::new();
        for chunk in track.chunks(FRAMES_PER_CAPTURE) {
            self.seq += 1;
            let frames: Vec<SynthFrame> = chunk
                .iter()
                .map(|&(t_ms, lat, lon)| {
                    let quality = if self.rng.below(25) == 0 { "blurred" } else { "ok" };
                    SynthFrame { t_ms, lat, lon, phash: self.rng.next_u64(), quality }
                })
                .collect();
            let end = chunk.last().map_or(0, |p| p.0);
            self.captures.push(SynthCapture {
                id: hex_id(&format!("sim-capture-{}-{}", self.seq, device)),
                device_id: device.to_owned(),
                contributor_id: contributor.to_owned(),
                sequence: self.seq,
                mount: "front",
                created_ms: end + 2000,
                committed_ms: end + commit_after,
                frames,
            });
            added.push(self.captures.len() - 1);
        }
        added
    }

    /// A copy of capture `i` shifted by `shift_ms`, under another device, committed `commit_after`
    /// after its new end; `flip` flips one phash bit per frame (a near-duplicate, not a byte copy).
    fn copy(
        &mut self,
        i: usize,
        device: &str,
        contributor: &str,
        shift_ms: i64,
        flip: bool,
        commit_after: i64,
    ) {
        self.seq += 1;
        let src = self.captures[i].clone();
        let frames: Vec<SynthFrame> = src
            .frames
            .iter()
            .enumerate()
            .map(|(k, f)| SynthFrame {
                t_ms: f.t_ms + shift_ms,
                phash: if flip { f.phash ^ (1 << (k % 64)) } else { f.phash },
                ..f.clone()
            })
            .collect();
        let end = frames.last().map_or(0, |f| f.t_ms);
        self.captures.push(SynthCapture {
            id: hex_id(&format!("sim-copy-{}-{}", self.seq, device)),
            device_id: device.to_owned(),
            contributor_id: contributor.to_owned(),
            sequence: self.seq,
            mount: "front",
            created_ms: end + 2000,
            committed_ms: end + commit_after,
            frames,
        });
    }
}

/// Writes the simulated fleets into `lake`, runs the epoch before [`SIM_EPOCH`] and then
/// [`SIM_EPOCH`] itself, and reports what each kind earned in [`SIM_EPOCH`].
pub async fn simulate(lake: &Lake, cfg: &RewardsConfig, seed: u64) -> Result<SimReport> {
    let cfg = RewardsConfig { epoch_days: 7, ..cfg.clone() };
    let epoch = Epoch::parse(&cfg, SIM_EPOCH)?;
    let prev = epoch.previous(&cfg);
    let mut fleet = Fleet { rng: Rng(seed), captures: Vec::new(), seq: 0 };
    let mut kind_of: BTreeMap<String, String> = BTreeMap::new();
    let drive_len = 3 * FRAMES_PER_CAPTURE;
    let in_epoch =
        |rng: &mut Rng, lo_day: i64, hi_day: i64| epoch.start_ms + rng.range(lo_day * DAY, hi_day * DAY);
    // Honest drivers: some driving in the previous epoch too, so freshness carries over.
    for d in 0..16 {
        let (device, contributor) = (hex_id(&format!("sim-device-honest-{d}")), format!("honest-{d:02}"));
        register(lake, &device, &contributor, None).await?;
        kind_of.insert(contributor.clone(), "honest".into());
        let t = prev.end_ms - fleet.rng.range(HOUR, 3 * DAY);
        let track = drive(&mut fleet.rng, ORIGIN, t, drive_len);
        let lag = fleet.rng.range(5 * 60_000, 12 * HOUR);
        fleet.add(&device, &contributor, &track, lag);
        for _ in 0..4 {
            let t = in_epoch(&mut fleet.rng, 0, 6);
            let track = drive(&mut fleet.rng, ORIGIN, t, drive_len);
            let lag = fleet.rng.range(5 * 60_000, 12 * HOUR);
            fleet.add(&device, &contributor, &track, lag);
        }
    }
    let honest: Vec<usize> = (0..fleet.captures.len())
        .filter(|&i| {
            let t = fleet.captures[i].frames[0].t_ms;
            t >= epoch.start_ms && t < epoch.end_ms - 2 * DAY
        })
        .collect();
    for kind in KINDS {
        let (device, contributor) = (hex_id(&format!("sim-device-adv-{kind}")), format!("adv-{kind}"));
        let revoked = (kind == "revoked_key").then_some(epoch.start_ms + 3 * DAY);
        register(lake, &device, &contributor, revoked).await?;
        kind_of.insert(contributor.clone(), kind.into());
        match kind {
            "duplicate_image" => {
                for k in 0..6 {
                    let i = honest[(k * 7 + seed as usize) % honest.len()];
                    fleet.copy(i, &device, &contributor, DAY, k % 2 == 0, 10 * 60_000);
                }
            }
            "duplicate_upload" => {
                // Drives late in the previous epoch (earning there), then uploads the same
                // images again with new times in this epoch.
                for _ in 0..2 {
                    let t = prev.end_ms - fleet.rng.range(DAY, 2 * DAY);
                    let track = drive(&mut fleet.rng, ORIGIN, t, drive_len);
                    for i in fleet.add(&device, &contributor, &track, 30 * 60_000) {
                        fleet.copy(i, &device, &contributor, 4 * DAY, false, 30 * 60_000);
                    }
                }
            }
            "teleport" => {
                for _ in 0..3 {
                    let mut t = in_epoch(&mut fleet.rng, 0, 6);
                    for leg in 0..4 {
                        let city = if leg % 2 == 0 { ORIGIN } else { FAR };
                        let track = drive(&mut fleet.rng, city, t, FRAMES_PER_CAPTURE);
                        fleet.add(&device, &contributor, &track, HOUR);
                        t = track.last().map_or(t, |p| p.0) + 30_000;
                    }
                }
            }
            "overlapping_captures" => {
                for _ in 0..3 {
                    let t = in_epoch(&mut fleet.rng, 0, 6);
                    for offset in [0, 20_000] {
                        let track = drive(&mut fleet.rng, ORIGIN, t + offset, FRAMES_PER_CAPTURE);
                        fleet.add(&device, &contributor, &track, HOUR);
                    }
                }
            }
            "clock_skew" => {
                // The device clock runs a day ahead: frames carry times after the server's commit.
                for _ in 0..3 {
                    let t = in_epoch(&mut fleet.rng, 0, 5);
                    let track = drive(&mut fleet.rng, ORIGIN, t + DAY, drive_len);
                    fleet.add(&device, &contributor, &track, 10 * 60_000 - DAY);
                }
            }
            _ => {
                for _ in 0..3 {
                    let t = in_epoch(&mut fleet.rng, 3, 6);
                    let track = drive(&mut fleet.rng, ORIGIN, t, drive_len);
                    fleet.add(&device, &contributor, &track, HOUR);
                }
            }
        }
    }
    write(lake, &fleet.captures, "sim").await?;
    let now = epoch.cutoff_ms + 1;
    run_epoch(lake, &cfg, &prev, now, &|_| {}).await?;
    let run = run_epoch(lake, &cfg, &epoch, now, &|_| {}).await?;
    report(lake, &cfg, &epoch, seed, run, &kind_of).await
}

async fn report(
    lake: &Lake,
    cfg: &RewardsConfig,
    epoch: &Epoch,
    seed: u64,
    run: RunReport,
    kind_of: &BTreeMap<String, String>,
) -> Result<SimReport> {
    let mut kinds: BTreeMap<String, u64> =
        std::iter::once("honest").chain(KINDS).map(|k| (k.to_owned(), 0)).collect();
    let ctx = roadhex_lake::catalog::session(lake)?;
    let sql_points = crate::verify::sql_points(&ctx, cfg, epoch).await?;
    let ledger_points = crate::verify::ledger_points(&ctx, &epoch.id).await?;
    let mut proofs_verified = true;
    for (contributor, (_, amount)) in &ledger_points {
        let kind = kind_of.get(contributor).map_or("unknown", String::as_str);
        *kinds.entry(kind.to_owned()).or_default() += amount;
        let s = crate::statement::statement(lake, contributor, Some(&epoch.id)).await?;
        proofs_verified &= s.epochs.iter().all(|e| e.verified && e.amount == *amount);
    }
    let sql_matches = sql_points
        == ledger_points.iter().filter(|(_, (p, _))| p.1 > 0).map(|(c, (p, _))| (c.clone(), *p)).collect();
    let honest_total = kinds.get("honest").copied().unwrap_or(0);
    Ok(SimReport {
        seed,
        epoch: epoch.id.clone(),
        budget: run.budget,
        honest_total,
        adversarial_total: kinds.iter().filter(|(k, _)| k.as_str() != "honest").map(|(_, v)| v).sum(),
        honest_contributors: kind_of.values().filter(|k| k.as_str() == "honest").count(),
        kinds,
        flagged_credits: run.flags,
        credits: run.credits,
        merkle_root: run.merkle_root,
        sql_matches,
        proofs_verified,
    })
}
