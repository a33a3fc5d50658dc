//! The epoch computation over loaded inputs: validity, freshness, points, amounts, Merkle root.
//!
//! Freshness per (res-12 cell, mount): a valid observation at time t whose previous valid
//! observation (any contributor, earlier epochs included) was at t' earns min(1, (t − t') / refill);
//! the first ever earns 1. Ties in time are ordered by capture id. This is a LAG window over valid
//! observations, which is how `sql::points_sql` writes it.

use crate::config::RewardsConfig;
use crate::epoch::{ANCHOR_MS, Epoch};
use crate::flags::{Flags, detect};
use crate::input::Inputs;
use crate::merkle;
use crate::split::pro_rata;

/// One ledger row: a capture's first valid entry into a cell in the epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct Credit {
    pub capture: u32,
    pub cell: u64,
    pub mount: u8,
    pub t_ms: i64,
    pub multiplier: f64,
    /// Millionths of a point: round(multiplier × region weight × progress multiplier × 10⁶).
    pub points: u64,
    pub amount: u64,
    /// Non-zero: the credit was zeroed by these fraud flags.
    pub flags: Flags,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContributorTotal {
    /// Index into `Inputs::contributors` (sorted ids, so this is also the leaf order).
    pub contributor: u32,
    pub points: u64,
    pub amount: u64,
    pub credits: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ledger {
    pub epoch: Epoch,
    pub config_version: String,
    pub budget: u64,
    /// Sorted by contributor id, time, cell, mount, capture id.
    pub credits: Vec<Credit>,
    pub contributors: Vec<ContributorTotal>,
    pub total_points: u64,
    /// Lowercase hex SHA-256.
    pub merkle_root: String,
}

impl Ledger {
    pub fn distributed(&self) -> u64 {
        self.contributors.iter().map(|c| c.amount).sum()
    }
}

/// Computes `epoch` from inputs covering `[epoch.start − max(refill, duplicate lookback) …, end)`.
pub fn compute(inputs: &Inputs, cfg: &RewardsConfig, epoch: &Epoch) -> Ledger {
    let from = epoch.start_ms - cfg.refill_ms();
    // Each observation is judged by the epoch it belongs to (its cutoff, its flags).
    let span = epoch.span_back(cfg, from);
    let first_index = span.first().map_or(0, |e| e.index(cfg));
    let judged: Vec<(Epoch, Vec<Flags>)> = span.iter().map(|p| (p.clone(), detect(inputs, cfg, p))).collect();
    let mut valid: Vec<(u64, u8, i64, u32, u64)> = Vec::with_capacity(inputs.observations.len());
    let mut credits = Vec::new();
    for o in &inputs.observations {
        if o.t_ms < from || o.t_ms >= epoch.end_ms {
            continue;
        }
        let k = (o.t_ms - ANCHOR_MS).div_euclid(cfg.epoch_ms()) - first_index;
        let Some((p, flags)) = usize::try_from(k).ok().and_then(|k| judged.get(k)) else { continue };
        if inputs.captures[o.capture as usize].committed_ms > p.cutoff_ms {
            continue;
        }
        let f = flags[o.capture as usize];
        if f == 0 {
            valid.push((o.cell, o.mount, o.t_ms, o.capture, o.r6));
        } else if o.t_ms >= epoch.start_ms {
            let c = Credit { capture: o.capture, cell: o.cell, mount: o.mount, t_ms: o.t_ms, multiplier: 0.0, points: 0, amount: 0, flags: f };
            credits.push((o.r6, c));
        }
    }
    valid.sort_unstable();
    let refill = cfg.refill_ms() as f64;
    let mut prev: Option<(u64, u8, i64)> = None;
    for &(cell, mount, t, capture, r6) in &valid {
        let multiplier = match prev {
            Some((pc, pm, pt)) if pc == cell && pm == mount => ((t - pt) as f64 / refill).min(1.0),
            _ => 1.0,
        };
        prev = Some((cell, mount, t));
        if t >= epoch.start_ms {
            credits.push((r6, Credit { capture, cell, mount, t_ms: t, multiplier, points: 0, amount: 0, flags: 0 }));
        }
    }
    apply_weights(cfg, &mut credits);
    let mut credits: Vec<Credit> = credits.into_iter().map(|(_, c)| c).collect();
    let contributor_of = |c: &Credit| inputs.captures[c.capture as usize].contributor;
    credits.sort_by(|a, b| {
        (contributor_of(a), a.t_ms, a.cell, &inputs.mounts[a.mount as usize], a.capture).cmp(&(
            contributor_of(b),
            b.t_ms,
            b.cell,
            &inputs.mounts[b.mount as usize],
            b.capture,
        ))
    });
    let contributors = split(cfg.budget, &mut credits, contributor_of);
    let leaves: Vec<merkle::Hash> = contributors
        .iter()
        .map(|c| merkle::leaf_hash(&epoch.id, &inputs.contributors[c.contributor as usize], c.amount))
        .collect();
    Ledger {
        epoch: epoch.clone(),
        config_version: cfg.version.clone(),
        budget: cfg.budget,
        total_points: contributors.iter().map(|c| c.points).sum(),
        merkle_root: hex::encode(merkle::root(&leaves)),
        credits,
        contributors,
    }
}

/// Region weights and progress multipliers (progress: distinct res-12 cells credited in the epoch
/// over the region's road cells).
fn apply_weights(cfg: &RewardsConfig, credits: &mut [(u64, Credit)]) {
    let regions = cfg.region_index().unwrap_or_default();
    let mut covered: Vec<(usize, u64)> = credits
        .iter()
        .filter(|(_, c)| c.flags == 0)
        .filter_map(|(r6, c)| regions.get(r6).map(|&r| (r, c.cell)))
        .collect();
    covered.sort_unstable();
    covered.dedup();
    let mut cells = vec![0u64; cfg.regions.len()];
    for (r, _) in covered {
        cells[r] += 1;
    }
    let tier: Vec<f64> =
        cfg.regions.iter().zip(&cells).map(|(r, &n)| cfg.tier_multiplier(n, r.road_cells)).collect();
    for (r6, c) in credits.iter_mut() {
        if c.flags != 0 {
            continue;
        }
        let (weight, t) = regions.get(r6).map_or((cfg.default_weight, 1.0), |&r| (cfg.regions[r].weight, tier[r]));
        c.points = (c.multiplier * weight * t * 1_000_000.0).round() as u64;
    }
}

/// Budget → contributors by points, then each contributor's amount → their credits by points.
fn split(budget: u64, credits: &mut [Credit], contributor_of: impl Fn(&Credit) -> u32) -> Vec<ContributorTotal> {
    let mut totals: Vec<ContributorTotal> = Vec::new();
    let mut ranges = Vec::new();
    let mut start = 0;
    for group in credits.chunk_by(|a, b| contributor_of(a) == contributor_of(b)) {
        let contributor = group.first().map_or(0, &contributor_of);
        let points = group.iter().map(|c| c.points).sum();
        totals.push(ContributorTotal { contributor, points, amount: 0, credits: group.len() as u64 });
        ranges.push(start..start + group.len());
        start += group.len();
    }
    let amounts = pro_rata(budget, &totals.iter().map(|t| t.points).collect::<Vec<_>>());
    for ((t, amount), range) in totals.iter_mut().zip(amounts).zip(ranges) {
        t.amount = amount;
        let rows = &mut credits[range];
        let shares = pro_rata(amount, &rows.iter().map(|c| c.points).collect::<Vec<_>>());
        for (c, s) in rows.iter_mut().zip(shares) {
            c.amount = s;
        }
    }
    totals
}
