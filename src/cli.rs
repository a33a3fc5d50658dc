//! The command line. Names here are a contract with scripts and operators: extend, don't rename.

use crate::config::ServeArgs;
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use roadhex_ingest::client::build::{BuildOptions, Input};
use roadhex_schemas::Mount;
use roadhex_schemas::gates::GateConfig;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "roadhex", version, about = "Open dashcam mapping network: node and reference client")]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the node (every role in one process).
    Serve(Box<ServeArgs>),
    /// Device keys.
    Device {
        #[command(subcommand)]
        cmd: DeviceCmd,
    },
    /// Build signed captures from frames and a track.
    Capture {
        #[command(subcommand)]
        cmd: CaptureCmd,
    },
    /// Telemetry files.
    Telemetry {
        #[command(subcommand)]
        cmd: TelemetryCmd,
    },
    /// Upload captures (resumable; re-run to resume).
    Upload(UploadArgs),
    /// Merge small table files now (the node also does this in the background); prints a JSON report.
    Compact {
        /// Local data directory. Default: ./data
        #[arg(long, env = "ROADHEX_DATA", default_value = "./data")]
        data: PathBuf,
        /// Object store URL instead of --data.
        #[arg(long, env = "ROADHEX_STORE")]
        store: Option<String>,
        /// A partition is compacted once it has this many small files.
        #[arg(long, default_value_t = 8)]
        min_files: usize,
        /// Seconds before replaced files are deleted (running queries may still read them).
        #[arg(long, default_value_t = 900)]
        grace_s: u64,
    },
    /// Put every committed, unfinished capture back on the work queue (after a lost NATS stream).
    Requeue(crate::queue_cmd::RequeueArgs),
    /// Print every table's columns with their descriptions (Markdown).
    Schema,
    /// Read-only SQL over every table (DataFusion): one query, or an interactive shell without one.
    Sql(SqlArgs),
    /// Distributed SQL: the Ballista scheduler and executors behind `roadhex sql --cluster`.
    Cluster {
        #[command(subcommand)]
        cmd: crate::cluster_cmd::ClusterCmd,
    },
    /// Train a model the pipeline ships with.
    Train {
        #[command(subcommand)]
        cmd: crate::signs_cmd::TrainCmd,
    },
    /// Sign map features: rebuild the table from the detections.
    Features {
        #[command(subcommand)]
        cmd: crate::signs_cmd::FeaturesCmd,
    },
    /// Measure the pipeline on labelled data.
    Eval {
        #[command(subcommand)]
        cmd: EvalCmd,
    },
    /// Rewards: run an epoch, print a statement or the public SQL.
    Rewards {
        #[command(subcommand)]
        cmd: crate::rewards_cmd::RewardsCmd,
    },
    /// Honest and adversarial fleets through one epoch; reports what each kind earned.
    Simulate(crate::rewards_cmd::SimulateArgs),
    /// Privacy zones: register, list and delete (signed with a device key, or the operator token
    /// for network-wide zones).
    Zones {
        #[command(subcommand)]
        cmd: ZonesCmd,
    },
    /// Privacy: trip trimming, re-applying zones to published frames, retention purge, audit.
    Privacy {
        #[command(subcommand)]
        cmd: crate::privacy_cmd::PrivacyCmd,
    },
    /// Redaction requests: list them, approve (re-blur or withdraw the frame) or reject.
    Redactions {
        #[command(subcommand)]
        cmd: crate::privacy_cmd::RedactionsCmd,
    },
    /// Register a demo device and upload a demo drive to a running node.
    Demo {
        #[arg(long, env = "ROADHEX_SERVER")]
        server: String,
        /// Where the demo keeps its key, track and built captures.
        #[arg(long, default_value = "./data-demo")]
        work: PathBuf,
        /// shared/data folder with the Hivemapper Bee frames; a drive is rendered when absent.
        #[arg(long, env = "ROADHEX_SHARED_DATA", default_value = "../shared/data")]
        shared_data: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum DeviceCmd {
    /// Create a device key file and print the device id.
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Register the key with a server (proof of possession over a server challenge).
    Register {
        #[arg(long, env = "ROADHEX_SERVER")]
        server: String,
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        contributor: String,
    },
}

/// Who signs a zone or privacy request.
#[derive(Debug, Args)]
pub(crate) struct Signer {
    #[arg(long, env = "ROADHEX_SERVER")]
    pub(crate) server: String,
    /// Device key file: acts for the device's contributor.
    #[arg(long, conflicts_with = "operator_token")]
    pub(crate) key: Option<PathBuf>,
    /// Operator token: network-wide zones.
    #[arg(long, env = "ROADHEX_OPERATOR_TOKEN", hide_env_values = true)]
    pub(crate) operator_token: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ZonesCmd {
    /// Register a circle (--circle LAT,LON,RADIUS_M) or a polygon (--polygon FILE: GeoJSON
    /// Polygon, Feature or bare rings of [lon, lat]).
    Add {
        #[command(flatten)]
        signer: Signer,
        #[arg(long, conflicts_with = "polygon", value_parser = parse_circle)]
        circle: Option<(f64, f64, f64)>,
        #[arg(long)]
        polygon: Option<PathBuf>,
        #[arg(long)]
        label: Option<String>,
    },
    /// The zones that apply to the device's contributor (all zones for the operator).
    List {
        #[command(flatten)]
        signer: Signer,
        /// The JSON array `capture build --zones` reads.
        #[arg(long)]
        json: bool,
    },
    Delete {
        #[command(flatten)]
        signer: Signer,
        zone_id: String,
    },
}

fn parse_circle(s: &str) -> Result<(f64, f64, f64), String> {
    let v: Vec<f64> =
        s.split(',').map(|p| p.trim().parse::<f64>()).collect::<Result<_, _>>().map_err(|e| e.to_string())?;
    match v[..] {
        [lat, lon, r] => Ok((lat, lon, r)),
        _ => Err("a circle is LAT,LON,RADIUS_M".into()),
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum EvalCmd {
    /// Face and plate recall/precision (IoU ≥ 0.3) per set and per detector, and ms per frame, on
    /// data laid out like shared/data/plates_openalpr (sets eu/us/br) or faces_dlib_voc.
    Anonymize {
        #[arg(long)]
        data: PathBuf,
        /// Directory with the models (default: $ROADHEX_MODELS or ~/.cache/roadhex/models).
        #[arg(long, env = "ROADHEX_MODELS")]
        models: Option<PathBuf>,
        /// One JSON object: {"sets": {NAME: {"recall", "precision", "n"}}, "ms_per_frame", ...}.
        #[arg(long)]
        json: bool,
    },
    /// Sign detection precision/recall (IoU ≥ 0.5), class accuracy and ms per frame on
    /// GTSDB-format data.
    Signs(crate::signs_cmd::EvalSignsArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum TelemetryCmd {
    /// Print the GNSS samples roadhex reads from a file (format detected by content).
    Inspect {
        file: PathBuf,
        /// One JSON object per sample: t (ms UTC), lat, lon, alt, speed (m/s), heading, hdop, satellites, fix.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum CaptureCmd {
    /// Split a drive into signed captures of ≤ 1 km / ≤ 125 keyframes (one directory each).
    Build(BuildArgs),
}

#[derive(Debug, Args)]
pub(crate) struct BuildArgs {
    #[arg(long)]
    key: PathBuf,
    /// Folder of JPEG frames; without --track their EXIF GPS is the track.
    #[arg(long, conflicts_with_all = ["framekm", "video"])]
    frames: Option<PathBuf>,
    /// Video file (MP4 etc.), sampled every ~8 m of travel; a GoPro MP4 needs no --track.
    #[arg(long, conflicts_with = "framekm")]
    video: Option<PathBuf>,
    /// Track file: GPX, NMEA, GoPro MP4/GPMF or FrameKM metadata (detected by content).
    #[arg(long)]
    track: Option<PathBuf>,
    /// Hivemapper FrameKM bundle (with --metadata).
    #[arg(long, requires = "metadata")]
    framekm: Option<PathBuf>,
    /// The FrameKM's metadata JSON.
    #[arg(long, requires = "framekm")]
    metadata: Option<PathBuf>,
    #[arg(long)]
    out: PathBuf,
    /// Time of the first frame (RFC 3339): with --interval-ms for frames without EXIF time, or
    /// the UTC start of a --video whose track is a separate file.
    #[arg(long)]
    start: Option<DateTime<Utc>>,
    /// Milliseconds between frames, for frames without EXIF time.
    #[arg(long)]
    interval_ms: Option<i64>,
    /// Calibrated focal length in pixels.
    #[arg(long)]
    focal_px: Option<f64>,
    /// Horizontal field of view in degrees (used when no focal length is given).
    #[arg(long, default_value_t = 110.0)]
    hfov_deg: f64,
    #[arg(long, value_parser = parse_mount, default_value = "front")]
    mount: Mount,
    /// Camera height above the road in metres.
    #[arg(long, default_value_t = 1.4)]
    mount_height: f64,
    /// Privacy zones file (the JSON `roadhex zones list --json` prints): frames inside are left
    /// out, so they never leave the car.
    #[arg(long)]
    zones: Option<PathBuf>,
    /// Print the build report as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

fn parse_mount(s: &str) -> Result<Mount, String> {
    match s {
        "front" => Ok(Mount::Front),
        "side" => Ok(Mount::Side),
        _ => Err("mount is front or side".into()),
    }
}

impl BuildArgs {
    pub(crate) fn into_options(self) -> anyhow::Result<BuildOptions> {
        let input = match (self.frames, self.video, self.track, self.framekm, self.metadata) {
            (Some(frames_dir), None, track, None, None) => {
                if self.start.is_some() != self.interval_ms.is_some() {
                    anyhow::bail!("--start and --interval-ms go together for frames without EXIF time");
                }
                Input::Folder { frames_dir, track, start: self.start, interval_ms: self.interval_ms }
            }
            (None, Some(video), track, None, None) => Input::Video { video, track, start: self.start },
            (None, None, None, Some(bundle), Some(metadata)) => Input::FrameKm { bundle, metadata },
            _ => anyhow::bail!(
                "give one source: --frames DIR [--track FILE], --video FILE [--track FILE], \
                 or --framekm BUNDLE --metadata META.json"
            ),
        };
        Ok(BuildOptions {
            key_file: self.key,
            input,
            out: self.out,
            focal_length_px: self.focal_px,
            hfov_deg: Some(self.hfov_deg),
            mount: self.mount,
            mount_height_m: self.mount_height,
            gates: GateConfig::default(),
            zones: match &self.zones {
                Some(path) => roadhex_ingest::client::privacy::read_zones(path)?,
                None => Vec::new(),
            },
        })
    }
}

#[derive(Debug, Args)]
pub(crate) struct UploadArgs {
    #[arg(long, env = "ROADHEX_SERVER")]
    pub(crate) server: String,
    /// Capture directories written by `capture build`.
    #[arg(required = true)]
    pub(crate) captures: Vec<PathBuf>,
    /// One JSON line per capture instead of text and a progress bar.
    #[arg(long)]
    pub(crate) json: bool,
    /// Frames in flight at once.
    #[arg(long, default_value_t = 4)]
    pub(crate) parallel: usize,
    /// Attempts per request before giving up (with exponential backoff).
    #[arg(long, default_value_t = 6)]
    pub(crate) attempts: u32,
}

#[derive(Debug, clap::Args)]
pub(crate) struct SqlArgs {
    /// Local data directory. Default: ./data
    #[arg(long, env = "ROADHEX_DATA", default_value = "./data")]
    pub(crate) data: PathBuf,
    /// Object store URL instead of --data (file:///dir, s3://bucket/prefix).
    #[arg(long, env = "ROADHEX_STORE")]
    pub(crate) store: Option<String>,
    /// Query a running node's `POST /v1/sql` instead of the store.
    #[arg(long, env = "ROADHEX_SERVER")]
    pub(crate) server: Option<String>,
    /// Bearer token for --server.
    #[arg(long, env = "ROADHEX_SQL_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// Run the query on a Ballista scheduler (`df://host:port`, see `roadhex cluster`) over the store.
    #[arg(long, env = "ROADHEX_SQL_CLUSTER", conflicts_with = "server")]
    pub(crate) cluster: Option<String>,
    /// table, csv, json (one object per line), json-array, arrow (IPC stream) or parquet.
    #[arg(long, default_value = "table")]
    pub(crate) format: roadhex_lake::sql::Format,
    /// Write the result here instead of stdout (parquet and arrow need a file or a pipe).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// The query; without one, an interactive shell with history starts.
    pub(crate) query: Option<String>,
}
