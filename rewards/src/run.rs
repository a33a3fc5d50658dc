//! Running an epoch end to end, and the node's loop that runs every closed epoch once.

use crate::compute::{Ledger, compute};
use crate::config::RewardsConfig;
use crate::epoch::{Epoch, rfc3339};
use crate::error::{Result, RewardsError};
use crate::flags::{Flag, Flags};
use crate::input::{Window, load};
use crate::ledger;
use roadhex_lake::Lake;
use serde::Serialize;
use std::collections::BTreeMap;

/// Stages of a run, for progress bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Loading,
    Computing,
    Writing,
}

impl Step {
    pub const COUNT: u64 = 3;
    pub fn label(self) -> &'static str {
        match self {
            Self::Loading => "reading tables",
            Self::Computing => "flags, freshness, split",
            Self::Writing => "writing ledger",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunReport {
    pub epoch_id: String,
    pub config_version: String,
    pub budget: u64,
    pub distributed: u64,
    pub total_points: f64,
    pub contributors: usize,
    pub credits: usize,
    pub flagged_credits: usize,
    /// Flag code → credits it zeroed.
    pub flags: BTreeMap<String, u64>,
    pub merkle_root: String,
    /// An epochs row existed before this run.
    pub rerun: bool,
    /// The rerun produced the same bytes (nothing was rewritten).
    pub unchanged: bool,
}

/// The window of data an epoch needs.
pub fn window(cfg: &RewardsConfig, epoch: &Epoch) -> Window {
    let observations_from_ms = epoch.start_ms - cfg.refill_ms();
    let first = epoch.span_back(cfg, observations_from_ms).first().map_or(epoch.start_ms, |e| e.start_ms);
    Window {
        context_from_ms: first.min(observations_from_ms) - cfg.duplicate_lookback_ms(),
        observations_from_ms,
        end_ms: epoch.end_ms,
    }
}

pub fn flag_counts(l: &Ledger) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for c in l.credits.iter().filter(|c| c.flags != 0) {
        for f in Flag::ALL {
            if c.flags & (1 << (f as Flags)) != 0 {
                *out.entry(f.code().to_owned()).or_default() += 1;
            }
        }
    }
    out
}

/// Computes and writes `epoch`. Refuses an epoch whose cutoff is after `now_ms`.
pub async fn run_epoch(
    lake: &Lake,
    cfg: &RewardsConfig,
    epoch: &Epoch,
    now_ms: i64,
    progress: &(dyn Fn(Step) + Sync),
) -> Result<RunReport> {
    if now_ms <= epoch.cutoff_ms {
        return Err(RewardsError::EpochOpen { epoch: epoch.id.clone(), cutoff: rfc3339(epoch.cutoff_ms) });
    }
    progress(Step::Loading);
    let inputs = load(lake, window(cfg, epoch)).await?;
    progress(Step::Computing);
    let l = compute(&inputs, cfg, epoch);
    progress(Step::Writing);
    let written = ledger::write(lake, &inputs, &l).await?;
    let flags = flag_counts(&l);
    Ok(RunReport {
        epoch_id: l.epoch.id.clone(),
        config_version: l.config_version.clone(),
        budget: l.budget,
        distributed: l.distributed(),
        total_points: l.total_points as f64 / 1e6,
        contributors: l.contributors.len(),
        credits: l.credits.len(),
        flagged_credits: l.credits.iter().filter(|c| c.flags != 0).count(),
        flags,
        merkle_root: l.merkle_root.clone(),
        rerun: written.existed,
        unchanged: written.unchanged,
    })
}

/// How long past its settle time the node waits for unfinished captures before it closes an epoch
/// anyway. The raw-retention purge rejects any capture stuck for a day, so this is a safety net.
pub const MAX_DRAIN_WAIT_MS: i64 = 48 * 3_600_000;

/// Captures committed before the epoch's cutoff, with frames in the epoch, that vision has not
/// finished (neither published nor rejected). An epoch closed before they finish would miss them.
pub async fn unfinished(lake: &Lake, epoch: &Epoch) -> Result<Vec<String>> {
    use roadhex_schemas::state::{CaptureStage, CaptureStatus};
    let ctx = roadhex_lake::catalog::session(lake)?;
    use crate::input::{PARTITION_SLACK_MS, day};
    // Partitions are by the day of a capture's first frame (the slack covers any capture).
    let (d0, d1) = (day(epoch.start_ms - PARTITION_SLACK_MS), day(epoch.end_ms));
    let sql = format!(
        "SELECT capture_id FROM captures
         WHERE date >= '{d0}' AND date <= '{d1}'
           AND CAST(end_time AS BIGINT) >= {start} AND CAST(start_time AS BIGINT) < {end}
           AND CAST(committed_at AS BIGINT) <= {cutoff}
           AND capture_id NOT IN (SELECT DISTINCT capture_id FROM frames WHERE date >= '{d0}' AND date <= '{d1}')",
        start = epoch.start_ms,
        end = epoch.end_ms,
        cutoff = epoch.cutoff_ms,
    );
    let mut out = Vec::new();
    for b in ctx.sql(&sql).await?.collect().await? {
        let ids = roadhex_lake::columns::text(&b, "capture_id")?;
        for i in 0..b.num_rows() {
            let Some(id) = roadhex_schemas::CaptureId::parse(ids.value(i)) else { continue };
            let state: Option<CaptureStatus> =
                lake.get_json(&roadhex_lake::paths::capture_state(&id)).await?;
            if state.is_none_or(|s| !matches!(s.state, CaptureStage::Published | CaptureStage::Rejected)) {
                out.push(id.to_string());
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Refuses to close an epoch while captures it should count are still in the pipeline.
pub async fn check_drained(lake: &Lake, epoch: &Epoch) -> Result<()> {
    let left = unfinished(lake, epoch).await?;
    match left.first() {
        None => Ok(()),
        Some(first) => {
            Err(RewardsError::NotDrained { epoch: epoch.id.clone(), count: left.len(), first: first.clone() })
        }
    }
}

/// Closed epochs (cutoff plus settle time passed) among the last `catch_up` that have no epochs
/// row yet, oldest first.
pub async fn pending(lake: &Lake, cfg: &RewardsConfig, now_ms: i64, catch_up: i64) -> Result<Vec<Epoch>> {
    let mut last = Epoch::containing(cfg, now_ms);
    while last.cutoff_ms + cfg.settle_ms() > now_ms {
        last = last.previous(cfg);
    }
    let mut out = Vec::new();
    for i in (last.index(cfg) - catch_up.max(1) + 1)..=last.index(cfg) {
        let e = Epoch::at_index(cfg, i);
        let marker = roadhex_lake::paths::table_file(
            roadhex_schemas::tables::Table::Epochs,
            &e.partition(),
            &ledger::key(&e.id),
        );
        if !lake.exists(&marker).await? {
            out.push(e);
        }
    }
    Ok(out)
}

/// The node's rewards role: every `poll` runs each pending epoch, until `stop` turns true.
pub async fn serve(
    lake: Lake,
    cfg: RewardsConfig,
    catch_up: i64,
    poll: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let now = chrono::Utc::now().timestamp_millis();
        match pending(&lake, &cfg, now, catch_up).await {
            Ok(epochs) => {
                for e in epochs {
                    // Wait for vision to finish what was uploaded in time, up to a bound.
                    match check_drained(&lake, &e).await {
                        Err(err @ RewardsError::NotDrained { .. })
                            if now < e.cutoff_ms + cfg.settle_ms() + MAX_DRAIN_WAIT_MS =>
                        {
                            tracing::info!(epoch = %e.id, reason = %err, "epoch waits for the pipeline");
                            continue;
                        }
                        Err(err) => tracing::warn!(epoch = %e.id, error = %err, "closing the epoch anyway"),
                        Ok(()) => {}
                    }
                    match run_epoch(&lake, &cfg, &e, now, &|_| {}).await {
                        Ok(r) => {
                            tracing::info!(epoch = %r.epoch_id, root = %r.merkle_root, credits = r.credits, "epoch closed")
                        }
                        Err(err) => {
                            tracing::error!(epoch = %e.id, error = %err, code = err.code(), "epoch run failed")
                        }
                    }
                }
            }
            Err(err) => tracing::error!(error = %err, "listing pending epochs failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return;
        }
    }
}
