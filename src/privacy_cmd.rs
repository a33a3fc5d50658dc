//! `roadhex zones …`, `roadhex privacy …` and `roadhex redactions …`: thin shells over the
//! ingest client (zones, trim) and `roadhex_vision::privacy` (enforce, purge, audit, redactions).

use crate::cli::{Signer, ZonesCmd};
use crate::config::PolicyArgs;
use crate::say;
use crate::store_args::{StoreArgs, config_table};
use anyhow::Context as _;
use clap::Subcommand;
use roadhex_ingest::client::privacy::{self as client, Credential};
use roadhex_ingest::privacy::ZoneRequest;
use roadhex_schemas::privacy::{PrivacyPolicy, Zone, ZoneShape};
use roadhex_vision::privacy::{audit, enforce, redact, retention};
use std::path::PathBuf;
use std::process::ExitCode;

/// The policy the node runs with: its config file's `[privacy]` table under the flags.
fn node_policy(store: &StoreArgs, flags: &PolicyArgs) -> anyhow::Result<PrivacyPolicy> {
    let base = match config_table(store.config.as_deref(), "privacy")? {
        Some(v) => v.try_into().context("[privacy] table")?,
        None => PrivacyPolicy::default(),
    };
    flags.over(base)
}

#[derive(Debug, Subcommand)]
pub(crate) enum PrivacyCmd {
    /// Show or set the contributor's trip-trimming distance (metres cut from each end of a drive).
    Trim {
        #[command(flatten)]
        signer: Signer,
        #[arg(long)]
        contributor: String,
        /// New distance; without it, the current one is printed.
        #[arg(long)]
        metres: Option<f64>,
    },
    /// Re-apply zones and trimming to published frames: withdraw every frame now inside one.
    Enforce {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        policy: PolicyArgs,
    },
    /// Delete raw uploads past the retention limit now (the node does this every 10 minutes).
    Purge {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        policy: PolicyArgs,
    },
    /// Scan the store for privacy breaches; exits 1 when there is any.
    Audit {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        policy: PolicyArgs,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum RedactionsCmd {
    /// Requests waiting for a decision (with --all, every request).
    List {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Approve and apply: re-blur the boxes into a new version of the frame, or withdraw it.
    Approve(Decide),
    Reject(Decide),
}

/// One operator decision on a request.
#[derive(Debug, clap::Args)]
pub(crate) struct Decide {
    id: String,
    #[command(flatten)]
    store: StoreArgs,
    /// Who decided (recorded in the redactions table).
    #[arg(long, default_value = "operator")]
    actor: String,
    #[arg(long)]
    note: Option<String>,
}

/// The signer's key or token, loaded.
enum Owned {
    Key(roadhex_schemas::signing::DeviceKeyFile),
    Token(String),
}

impl Owned {
    fn load(signer: &Signer) -> anyhow::Result<Self> {
        match (&signer.key, &signer.operator_token) {
            (Some(path), _) => Ok(Self::Key(roadhex_ingest::client::keys::load(path)?)),
            (None, Some(token)) => Ok(Self::Token(token.clone())),
            (None, None) => {
                anyhow::bail!("give --key DEVICE_KEY (your zones) or --operator-token (network zones)")
            }
        }
    }

    fn credential(&self) -> Credential<'_> {
        match self {
            Self::Key(k) => Credential::Device(k),
            Self::Token(t) => Credential::Operator(t),
        }
    }
}

/// A polygon from GeoJSON: a Polygon geometry, a Feature holding one, or bare rings.
fn read_polygon(path: &PathBuf) -> anyhow::Result<ZoneShape> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let geometry = if v["type"] == "Feature" { &v["geometry"] } else { &v };
    let rings = if geometry["type"] == "Polygon" { &geometry["coordinates"] } else { geometry };
    let rings: Vec<Vec<[f64; 2]>> = serde_json::from_value(rings.clone())
        .with_context(|| format!("{}: want a GeoJSON Polygon (rings of [lon, lat])", path.display()))?;
    Ok(ZoneShape::Polygon { rings })
}

fn describe(z: &Zone) -> String {
    let owner = z.contributor_id.as_deref().unwrap_or("network");
    let shape = match &z.shape {
        ZoneShape::Circle { lat, lon, radius_m } => format!("circle {lat:.6},{lon:.6} r {radius_m:.0} m"),
        ZoneShape::Polygon { rings } => {
            format!("polygon of {} vertices", rings.iter().map(Vec::len).sum::<usize>())
        }
    };
    format!("{}  {owner:<16} {shape}  {}", z.zone_id, z.label.as_deref().unwrap_or(""))
}

pub(crate) async fn zones(cmd: ZonesCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        ZonesCmd::Add { signer, circle, polygon, label } => {
            let shape = match (circle, polygon) {
                (Some((lat, lon, radius_m)), None) => ZoneShape::Circle { lat, lon, radius_m },
                (None, Some(path)) => read_polygon(&path)?,
                _ => anyhow::bail!("give --circle LAT,LON,RADIUS_M or --polygon FILE"),
            };
            let req = ZoneRequest { shape, label };
            let cred = Owned::load(&signer)?;
            let zone = client::add_zone(&signer.server, cred.credential(), &req).await?;
            say(&describe(&zone));
        }
        ZonesCmd::List { signer, json } => {
            let cred = Owned::load(&signer)?;
            let zones = client::list_zones(&signer.server, cred.credential()).await?;
            if json {
                say(&serde_json::to_string_pretty(&zones)?);
            } else {
                zones.iter().for_each(|z| say(&describe(z)));
                say(&format!("{} zones", zones.len()));
            }
        }
        ZonesCmd::Delete { signer, zone_id } => {
            let cred = Owned::load(&signer)?;
            let zone = client::delete_zone(&signer.server, cred.credential(), &zone_id).await?;
            say(&format!("deleted {}", describe(&zone)));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn privacy(cmd: PrivacyCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        PrivacyCmd::Trim { signer, contributor, metres } => {
            let cred = Owned::load(&signer)?;
            let view = match metres {
                Some(m) => client::set_trim(&signer.server, cred.credential(), &contributor, m).await?,
                None => client::privacy(&signer.server, cred.credential(), &contributor).await?,
            };
            say(&serde_json::to_string(&view)?);
        }
        PrivacyCmd::Enforce { store, policy } => {
            let report = enforce::enforce(&store.open()?, &node_policy(&store, &policy)?).await?;
            say(&serde_json::to_string(&report)?);
        }
        PrivacyCmd::Purge { store, policy } => {
            let report = retention::purge(&store.open()?, &node_policy(&store, &policy)?).await?;
            say(&serde_json::to_string(&report)?);
        }
        PrivacyCmd::Audit { store, policy, json } => {
            let report = audit::audit(&store.open()?, &node_policy(&store, &policy)?).await?;
            if json {
                say(&serde_json::to_string(&report)?);
            } else {
                say(&format!(
                    "{} raw captures, {} published objects, {} frame rows: {} breaches",
                    report.raw_captures,
                    report.published_objects,
                    report.frame_rows,
                    report.breaches.len()
                ));
                for b in &report.breaches {
                    say(&format!("  {:<26} {}  {}", b.code, b.subject, b.message));
                }
            }
            return Ok(if report.clean() { ExitCode::SUCCESS } else { ExitCode::FAILURE });
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn show(r: &redact::Redaction) -> String {
    let what = match &r.boxes {
        Some(b) => format!("{} boxes", b.len()),
        None => "whole frame".into(),
    };
    format!(
        "{}  {:<9} {}  {what}  {}  {}",
        r.redaction_id,
        r.step.as_str(),
        r.frame_id,
        r.requested_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        r.reason
    )
}

pub(crate) async fn redactions(cmd: RedactionsCmd) -> anyhow::Result<ExitCode> {
    let r = match cmd {
        RedactionsCmd::List { store, all, json } => {
            let list = redact::list(&store.open()?, all).await?;
            if json {
                say(&serde_json::to_string(&list)?);
            } else {
                list.iter().for_each(|r| say(&show(r)));
                say(&format!("{} requests", list.len()));
            }
            return Ok(ExitCode::SUCCESS);
        }
        RedactionsCmd::Approve(d) => redact::approve(&d.store.open()?, &d.id, &d.actor, d.note).await,
        RedactionsCmd::Reject(d) => redact::reject(&d.store.open()?, &d.id, &d.actor, d.note).await,
    };
    match r {
        Ok(r) => {
            say(&serde_json::to_string(&r)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e} ({})", e.code());
            Ok(ExitCode::FAILURE)
        }
    }
}
