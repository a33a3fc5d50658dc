//! `roadhex rewards …` and `roadhex simulate`: thin adapters over `roadhex-rewards`.

use crate::store_args::{StoreArgs, config_table};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use roadhex_lake::Lake;
use roadhex_rewards::{Epoch, RewardsConfig, Step};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub(crate) enum RewardsCmd {
    /// Compute a closed epoch and write its ledger (rerunning rewrites the same bytes).
    Run {
        #[command(flatten)]
        store: StoreArgs,
        /// Epoch id, e.g. 2026-W48.
        #[arg(long)]
        epoch: String,
        /// One JSON object instead of text and a progress bar.
        #[arg(long)]
        json: bool,
        /// Close the epoch even if captures committed before its cutoff are still being processed.
        #[arg(long)]
        force: bool,
    },
    /// A contributor's per-epoch statements with Merkle proofs (JSON).
    Statement {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        contributor: String,
        /// Only this epoch.
        #[arg(long)]
        epoch: Option<String>,
    },
    /// Print the SQL that recomputes an epoch's points per contributor (run it with `roadhex sql`).
    Sql {
        #[arg(long, env = "ROADHEX_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long)]
        epoch: String,
    },
}

/// `roadhex simulate`: honest and adversarial fleets through one epoch.
#[derive(Debug, Args)]
pub(crate) struct SimulateArgs {
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// One JSON object: honest_total, adversarial_total, kinds, merkle_root, …
    #[arg(long)]
    json: bool,
    /// Keep the simulated lake here (default: in memory).
    #[arg(long)]
    store: Option<String>,
    /// Node config file with a [rewards] table.
    #[arg(long, env = "ROADHEX_CONFIG")]
    config: Option<PathBuf>,
}

/// The `[rewards]` table of a node config file, or the default rules.
pub(crate) fn load_config(path: Option<&Path>) -> anyhow::Result<RewardsConfig> {
    match config_table(path, "rewards")? {
        Some(v) => Ok(RewardsConfig::from_toml(&toml::to_string(&v)?)?),
        None => Ok(RewardsConfig::default()),
    }
}

pub(crate) async fn rewards(cmd: RewardsCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        RewardsCmd::Run { store, epoch, json, force } => {
            let cfg = load_config(store.config.as_deref())?;
            let lake = store.open()?;
            let epoch = Epoch::parse(&cfg, &epoch)?;
            if !force {
                roadhex_rewards::run::check_drained(&lake, &epoch).await?;
            }
            let bar = if json { ProgressBar::hidden() } else { ProgressBar::new(Step::COUNT) };
            bar.set_style(ProgressStyle::with_template("{prefix} [{bar:20}] {pos}/{len} {msg}")?);
            bar.set_prefix(format!("epoch {}", epoch.id));
            let progress = |s: Step| {
                bar.set_message(s.label());
                bar.inc(u64::from(s != Step::Loading));
            };
            let now = chrono::Utc::now().timestamp_millis();
            let report = roadhex_rewards::run_epoch(&lake, &cfg, &epoch, now, &progress).await?;
            bar.inc(1);
            bar.finish_and_clear();
            if json {
                crate::say(&serde_json::to_string(&report)?);
            } else {
                crate::say(&format!(
                    "epoch {} (rules {}): {} credits ({} flagged) to {} contributors, {} of {} distributed, root {}{}",
                    report.epoch_id,
                    report.config_version,
                    report.credits,
                    report.flagged_credits,
                    report.contributors,
                    report.distributed,
                    report.budget,
                    report.merkle_root,
                    match (report.rerun, report.unchanged) {
                        (true, true) => " (rerun: unchanged)",
                        (true, false) => " (rerun: ledger rewritten)",
                        _ => "",
                    }
                ));
                for (flag, n) in &report.flags {
                    crate::say(&format!("  {flag}: {n} credits zeroed"));
                }
            }
        }
        RewardsCmd::Statement { store, contributor, epoch } => {
            let lake = store.open()?;
            let s = roadhex_rewards::statement(&lake, &contributor, epoch.as_deref()).await?;
            crate::say(&serde_json::to_string_pretty(&s)?);
        }
        RewardsCmd::Sql { config, epoch } => {
            let cfg = load_config(config.as_deref())?;
            let epoch = Epoch::parse(&cfg, &epoch)?;
            crate::say(&roadhex_rewards::sql::points_sql(&cfg, &epoch));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn simulate(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let cfg = load_config(args.config.as_deref())?;
    let lake = Lake::open(args.store.as_deref().unwrap_or("memory://"))?;
    let r = roadhex_rewards::sim::simulate(&lake, &cfg, args.seed).await?;
    if args.json {
        crate::say(&serde_json::to_string(&r)?);
    } else {
        crate::say(&format!("epoch {} (seed {}), budget {}", r.epoch, r.seed, r.budget));
        for (kind, amount) in &r.kinds {
            crate::say(&format!("  {kind:<22} {amount}"));
        }
        crate::say(&format!("honest {} / adversarial {}", r.honest_total, r.adversarial_total));
        for (flag, n) in &r.flagged_credits {
            crate::say(&format!("  flag {flag}: {n} credits zeroed"));
        }
        crate::say(&format!(
            "root {}; public SQL matches: {}; proofs verify: {}",
            r.merkle_root, r.sql_matches, r.proofs_verified
        ));
    }
    Ok(if r.adversarial_total == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
