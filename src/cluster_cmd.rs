//! `roadhex cluster scheduler|executor`: the Ballista processes that run `roadhex sql --cluster`.

use crate::store_args::StoreArgs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum ClusterCmd {
    /// A Ballista scheduler: plans the queries clients send and hands tasks to executors.
    Scheduler {
        #[command(flatten)]
        store: StoreArgs,
        /// gRPC address clients (`roadhex sql --cluster df://HOST:PORT`) and executors connect to.
        #[arg(long, env = "ROADHEX_CLUSTER_LISTEN", default_value = "127.0.0.1:50050")]
        listen: SocketAddr,
    },
    /// A Ballista executor: runs query tasks over the store's files for one scheduler.
    Executor {
        #[command(flatten)]
        store: StoreArgs,
        /// The scheduler's gRPC address.
        #[arg(long, env = "ROADHEX_CLUSTER_SCHEDULER", default_value = "127.0.0.1:50050")]
        scheduler: String,
        /// Arrow Flight address other executors and clients fetch results from.
        #[arg(long, env = "ROADHEX_CLUSTER_LISTEN", default_value = "127.0.0.1:50051")]
        listen: SocketAddr,
        /// Port of the executor's gRPC service (tasks from the scheduler).
        #[arg(long, env = "ROADHEX_CLUSTER_GRPC_PORT", default_value_t = 50052)]
        grpc_port: u16,
        /// Host name the scheduler and other executors reach this one at (default: the --listen IP).
        #[arg(long, env = "ROADHEX_CLUSTER_EXTERNAL_HOST")]
        external_host: Option<String>,
        /// Tasks run at once (0: one per core).
        #[arg(long, env = "ROADHEX_CLUSTER_SLOTS", default_value_t = 0)]
        slots: usize,
        /// Directory for shuffle files (default: a temporary directory).
        #[arg(long, env = "ROADHEX_CLUSTER_WORK_DIR")]
        work_dir: Option<PathBuf>,
    },
}

#[cfg(feature = "ballista")]
pub(crate) async fn run(cmd: ClusterCmd) -> anyhow::Result<ExitCode> {
    use roadhex_lake::cluster;
    match cmd {
        ClusterCmd::Scheduler { store, listen } => {
            let lake = store.open()?;
            eprintln!("roadhex cluster scheduler on {listen} (clients: roadhex sql --cluster df://{listen})");
            cluster::run_scheduler(lake, listen).await?;
        }
        ClusterCmd::Executor { store, scheduler, listen, grpc_port, external_host, slots, work_dir } => {
            let lake = store.open()?;
            let options = cluster::ExecutorOptions {
                scheduler,
                bind: listen,
                grpc_port,
                external_host,
                slots,
                work_dir,
            };
            cluster::run_executor(lake, options).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "ballista"))]
pub(crate) async fn run(_cmd: ClusterCmd) -> anyhow::Result<ExitCode> {
    anyhow::bail!("{}", NOT_BUILT)
}

/// What a binary without the Ballista engine says when asked for it.
#[cfg(not(feature = "ballista"))]
pub(crate) const NOT_BUILT: &str =
    "this roadhex was built without distributed SQL: rebuild with `cargo build --features ballista`";
