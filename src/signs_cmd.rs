//! `roadhex train signs`, `roadhex eval signs` and `roadhex features build`.

use crate::say;
use crate::store_args::StoreArgs;
use anyhow::Context as _;
use roadhex_vision::signs::{SignModel, cluster, dataset, eval, table, train};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum TrainCmd {
    /// Train the sign model on GTSRB crops and GTSDB scenes; cross-validation over the scenes picks
    /// the threshold and gives the metrics written beside the model.
    Signs(TrainSignsArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct TrainSignsArgs {
    /// A GTSDB directory (gt.txt), a GTSRB crops directory (GT-*.csv), or a directory holding
    /// `signs_gtsdb` and/or `signs_gtsrb_crops` (like shared/data).
    #[arg(long)]
    data: PathBuf,
    /// Where the model goes; its metrics go beside it as `.metrics.json`.
    #[arg(long, default_value = "vision/models/signs.bin")]
    out: PathBuf,
    /// Cross-validation folds over the scenes (0: none, use --threshold).
    #[arg(long, default_value_t = 5)]
    folds: usize,
    /// Epochs of each network.
    #[arg(long, default_value_t = 8)]
    epochs: usize,
    /// Networks averaged in each of the verifier and the classifier.
    #[arg(long, default_value_t = 3)]
    members: usize,
    /// Synthetic plates per drawable class added to the classifier's training samples (0: none).
    #[arg(long, default_value_t = 300)]
    synthetic: usize,
    /// Drawn plates per kind of sign outside the 43 classes added to the verifier's negatives (0: none).
    #[arg(long, default_value_t = 500)]
    others: usize,
    #[arg(long, default_value_t = 20_261_202)]
    seed: u64,
    /// Verifier threshold when there are no folds.
    #[arg(long, default_value_t = 0.5)]
    threshold: f32,
    /// Model version recorded with every detection.
    #[arg(long, default_value = "5")]
    version: String,
}

#[derive(Debug, clap::Args)]
pub(crate) struct EvalSignsArgs {
    /// GTSDB-format directory: gt.txt and the images beside it or in images/.
    #[arg(long)]
    data: PathBuf,
    /// A model file instead of the one built into this binary.
    #[arg(long)]
    model: Option<PathBuf>,
    /// One JSON object: detection_recall, detection_precision, class_accuracy, ms_per_frame, …
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum FeaturesCmd {
    /// Cluster every sign observation into the `features` table and link the detections to it.
    Build(StoreArgs),
}

/// The crops and scenes under `dir`, whichever layout it has.
fn sources(dir: &Path) -> anyhow::Result<(Vec<dataset::Labelled>, Vec<dataset::Labelled>)> {
    if dir.join("gt.txt").is_file() {
        return Ok((Vec::new(), dataset::gtsdb(dir)?));
    }
    let (crops_dir, scenes_dir) = (dir.join("signs_gtsrb_crops"), dir.join("signs_gtsdb"));
    if !crops_dir.is_dir() && !scenes_dir.is_dir() {
        return Ok((dataset::gtsrb(dir)?, Vec::new()));
    }
    let crops = if crops_dir.is_dir() { dataset::gtsrb(&crops_dir)? } else { Vec::new() };
    let scenes = if scenes_dir.is_dir() { dataset::gtsdb(&scenes_dir)? } else { Vec::new() };
    Ok((crops, scenes))
}

pub(crate) async fn train_signs(a: TrainSignsArgs) -> anyhow::Result<ExitCode> {
    let (crops, scenes) = sources(&a.data)?;
    say(&format!("training on {} crops and {} scenes", crops.len(), scenes.len()));
    let opts = train::TrainOptions {
        folds: a.folds,
        epochs: a.epochs,
        members: a.members,
        synthetic: a.synthetic,
        others: a.others,
        seed: a.seed,
        threshold: a.threshold,
        version: a.version,
        ..train::TrainOptions::default()
    };
    let (model, report) = tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        train::train(&crops, &scenes, &opts, &|m| {
            say(&format!("  {m} ({:.0} s)", started.elapsed().as_secs_f64()))
        })
    })
    .await
    .context("training task")??;
    model.save(&a.out)?;
    let metrics = a.out.with_extension("metrics.json");
    std::fs::write(&metrics, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("writing {}", metrics.display()))?;
    say(&serde_json::to_string(&report)?);
    say(&format!("wrote {} and {}", a.out.display(), metrics.display()));
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn eval_signs(a: EvalSignsArgs) -> anyhow::Result<ExitCode> {
    let model = match &a.model {
        Some(p) => SignModel::load(p)?,
        None => SignModel::embedded()?,
    };
    let scenes = dataset::gtsdb(&a.data)?;
    let name = model.name();
    let m =
        tokio::task::spawn_blocking(move || eval::evaluate(&model, &scenes)).await.context("eval task")??;
    if a.json {
        say(&serde_json::to_string(&m)?);
    } else {
        say(&format!("{name} on {} images, {} signs (threshold {:.3})", m.images, m.signs, m.threshold));
        say(&format!(
            "  detection recall {:.3}  precision {:.3}  (IoU ≥ {}; {} of {} detections right)",
            m.detection_recall,
            m.detection_precision,
            eval::MATCH_IOU,
            m.true_positives,
            m.detections
        ));
        say(&format!("  class accuracy {:.3} on correctly detected signs", m.class_accuracy));
        say(&format!("  {:.1} ms/frame (decode {:.1} ms/frame)", m.ms_per_frame, m.decode_ms_per_frame));
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn features(cmd: FeaturesCmd) -> anyhow::Result<ExitCode> {
    let FeaturesCmd::Build(store) = cmd;
    let lake = store.open()?;
    let r = table::build(&lake, &cluster::ClusterConfig::default()).await?;
    say(&serde_json::to_string(&r)?);
    Ok(ExitCode::SUCCESS)
}
