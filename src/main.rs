//! `roadhex`: the node (`serve`) and the reference client (device, capture, upload, demo).
//! Only argument parsing and wiring live here; the work happens in the library crates.

mod cli;
mod cluster_cmd;
mod config;
#[cfg(feature = "flight-sql")]
mod flight_sql;
mod http_serve;
mod metrics_http;
mod openapi_doc;
mod privacy_cmd;
mod queue_cmd;
mod rewards_api;
mod rewards_cmd;
mod serve;
mod signs_cmd;
mod sql_cmd;
mod sql_http;
mod store_args;

use anyhow::Context as _;
use clap::Parser as _;
use cli::{CaptureCmd, Cli, Command, DeviceCmd, EvalCmd, TelemetryCmd};
use roadhex_ingest::client::{build, demo, keys, register, upload};
use std::io::Write as _;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("info,mp4parse=error,ballista_core::execution_plans=warn")
        }))
        .with_writer(std::io::stderr)
        .init();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            // Ingest errors carry a stable code that scripts can match on.
            let code = e
                .downcast_ref::<roadhex_ingest::IngestError>()
                .map(roadhex_ingest::IngestError::code)
                .or_else(|| {
                    e.downcast_ref::<roadhex_rewards::RewardsError>().map(roadhex_rewards::RewardsError::code)
                });
            match code {
                Some(code) => eprintln!("error: {e:#} ({code})"),
                None => eprintln!("error: {e:#}"),
            }
            ExitCode::FAILURE
        }
    }
}

/// glibc's malloc raises its mmap threshold each time a large block is freed, so after the first
/// frame vision's multi-megabyte decode buffers come from its heaps, which fragment and grow over a
/// long run (every role under `make load`: 1,486 -> 1,766 MiB in ten minutes). A fixed threshold
/// keeps every block of 1 MiB or more in its own mapping, returned to the system when freed. glibc
/// reads the setting only at start, so the node re-executes itself once with it set (same pid,
/// arguments and descriptors) unless the operator set `GLIBC_TUNABLES` already.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn fixed_mmap_threshold() {
    use std::os::unix::process::CommandExt as _;
    if std::env::var_os("GLIBC_TUNABLES").is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else { return };
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=1048576")
        .exec();
    tracing::warn!(error = %err, "could not restart with a fixed malloc mmap threshold; running without it");
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn fixed_mmap_threshold() {}

/// Prints one line to stdout (the CLI's output channel; logs go to stderr).
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    // A closed stdout (e.g. `| head`) is not worth a panic.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => {
            fixed_mmap_threshold();
            serve::run(*args).await.map(|()| ExitCode::SUCCESS)
        }
        Command::Device { cmd: DeviceCmd::Keygen { out } } => {
            let key = keys::generate(&out)?;
            say(key.device_id.as_str());
            Ok(ExitCode::SUCCESS)
        }
        Command::Device { cmd: DeviceCmd::Register { server, key, contributor } } => {
            let key = keys::load(&key)?;
            let record = register(&server, &key, &contributor).await?;
            say(&format!("device {} registered to {}", record.device_id, record.contributor_id));
            Ok(ExitCode::SUCCESS)
        }
        Command::Capture { cmd: CaptureCmd::Build(args) } => {
            let json = args.json;
            let opts = args.into_options()?;
            let report = tokio::task::spawn_blocking(move || build::build(&opts))
                .await
                .context("capture build task")??;
            if json {
                say(&serde_json::to_string(&report)?);
            } else {
                for c in &report.captures {
                    say(&format!("{}: {} frames, {:.0} m", c.dir.display(), c.frames, c.length_m));
                }
                say(&format!(
                    "{} captures; {} frames between keyframes left out; {} frames skipped",
                    report.captures.len(),
                    report.not_keyframes,
                    report.skipped.len()
                ));
                for s in report.skipped.iter().take(20) {
                    say(&format!("  skipped {}: {} ({})", s.file, s.reason, s.code));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Upload(args) => {
            let opts = upload::UploadOptions {
                server: args.server,
                parallel: args.parallel,
                attempts: args.attempts,
                progress: !args.json,
            };
            let results = upload::upload(&opts, &args.captures).await;
            print_uploads(&results, args.json)?;
            let failed = results.iter().any(|r| r.error.is_some());
            Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
        }
        Command::Telemetry { cmd: TelemetryCmd::Inspect { file, json } } => {
            let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let samples =
                roadhex_ingest::formats::read_track(&bytes).map_err(roadhex_ingest::IngestError::from)?;
            let format = roadhex_ingest::formats::detect(&bytes);
            for s in &samples {
                if json {
                    say(&serde_json::to_string(&serde_json::json!({
                        "t": s.t_ms, "lat": s.lat, "lon": s.lon, "alt": s.alt, "speed": s.speed, "heading": s.heading,
                        "hdop": s.hdop, "satellites": s.satellites, "fix": s.fix.map(|f| f.as_str()),
                    }))?);
                } else {
                    let t = chrono::DateTime::from_timestamp_millis(s.t_ms).unwrap_or_default();
                    say(&format!(
                        "{}  {:.7} {:.7}  alt {:.1} m  {:.2} m/s  {:.0}°  hdop {}  sats {}  fix {}",
                        t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                        s.lat,
                        s.lon,
                        s.alt,
                        s.speed,
                        s.heading,
                        s.hdop.map_or("-".into(), |h| format!("{h:.1}")),
                        s.satellites.map_or("-".into(), |n| n.to_string()),
                        s.fix.map_or("-", |f| f.as_str()),
                    ));
                }
            }
            if !json {
                say(&format!("{} samples ({format:?})", samples.len()));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Sql(args) => sql_cmd::run(args).await,
        Command::Cluster { cmd } => cluster_cmd::run(cmd).await,
        Command::Compact { data, store, min_files, grace_s } => {
            let url = store.unwrap_or_else(|| format!("file://{}", data.display()));
            if store_missing(&url) {
                anyhow::bail!("{url} holds no roadhex data");
            }
            let lake = roadhex_lake::Lake::open(&url)?;
            let config = roadhex_lake::compact::CompactionConfig {
                min_files,
                grace_s,
                ..roadhex_lake::compact::CompactionConfig::default()
            };
            let report = roadhex_lake::compact::run(&lake, &config).await?;
            say(&serde_json::to_string(&report)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema => {
            std::io::stdout().lock().write_all(roadhex_schemas::tables::markdown().as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Eval { cmd: EvalCmd::Anonymize { data, models, json } } => {
            use roadhex_vision::anonymize::{Ensemble, EnsembleConfig, Models, eval};
            let models = models.map_or_else(Models::from_env, Models::new);
            let report = tokio::task::spawn_blocking(move || {
                let ensemble = Ensemble::from_config(&models, &EnsembleConfig::default())?;
                eval(&data, &ensemble)
            })
            .await
            .context("eval task")??;
            if json {
                say(&serde_json::to_string(&report)?);
            } else {
                say(&format!("ensemble {} — {:.0} ms/frame", report.version, report.ms_per_frame));
                for (name, s) in &report.sets {
                    say(&format!(
                        "  {name:<10} recall {:.3}  precision {:.3}  (n = {})",
                        s.recall, s.precision, s.n
                    ));
                }
                for (name, d) in &report.detectors {
                    say(&format!("  detector {name} ({:.0} ms/frame)", d.ms_per_frame));
                    for (set, s) in &d.sets {
                        say(&format!("    {set:<10} recall {:.3}  precision {:.3}", s.recall, s.precision));
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Rewards { cmd } => rewards_cmd::rewards(cmd).await,
        Command::Zones { cmd } => privacy_cmd::zones(cmd).await,
        Command::Requeue(args) => queue_cmd::requeue(args).await,
        Command::Train { cmd: signs_cmd::TrainCmd::Signs(args) } => signs_cmd::train_signs(args).await,
        Command::Eval { cmd: EvalCmd::Signs(args) } => signs_cmd::eval_signs(args).await,
        Command::Features { cmd } => signs_cmd::features(cmd).await,
        Command::Privacy { cmd } => privacy_cmd::privacy(cmd).await,
        Command::Redactions { cmd } => privacy_cmd::redactions(cmd).await,
        Command::Simulate(args) => rewards_cmd::simulate(args).await,
        Command::Demo { server, work, shared_data } => {
            let shared = shared_data.filter(|d| d.is_dir());
            let results = demo::run(&server, &work, shared.as_deref()).await?;
            if results.is_empty() {
                say("demo drive already uploaded (remove demo.done in the work dir to upload it again)");
            }
            print_uploads(&results, false)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A local data directory that does not exist (opening it would create an empty one).
pub(crate) fn store_missing(url: &str) -> bool {
    url.strip_prefix("file://").is_some_and(|dir| !std::path::Path::new(dir).is_dir())
}

fn print_uploads(results: &[upload::UploadResult], json: bool) -> anyhow::Result<()> {
    for r in results {
        if json {
            say(&serde_json::to_string(r)?);
            continue;
        }
        let id = r.capture_id.as_deref().unwrap_or("-");
        match &r.error {
            None => say(&format!(
                "{} capture {id}: {} — {} frames sent, {} already there, {} dropped by gates",
                r.dir.display(),
                r.state.map_or("unknown".into(), |s| format!("{s:?}").to_lowercase()),
                r.uploaded,
                r.already_present,
                r.dropped
            )),
            Some(e) => say(&format!("{} capture {id}: FAILED {}: {}", r.dir.display(), e.code, e.message)),
        }
    }
    Ok(())
}
