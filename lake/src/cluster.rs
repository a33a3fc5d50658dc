//! Distributed SQL on Ballista (feature `ballista`): a scheduler and executors that know the lake.
//!
//! Stock Ballista processes cannot read the lake: its files live under `roadhex://lake/` through
//! `VisibleStore` (compaction markers applied), and queries call the H3 and `ST_*` functions. So
//! the scheduler (which lists files while planning) and every executor (which reads them) are run
//! from here, with the lake's store and functions registered; the client sends the same catalog.

use crate::catalog;
use crate::error::{LakeError, Result};
use crate::store::Lake;
use ballista_core::extension::{SessionConfigExt, SessionStateExt as _};
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;
use datafusion::common::tree_node::{Transformed, TransformedResult as _, TreeNode as _};
use datafusion::config::ConfigOptions;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::physical_expr::{Partitioning, PhysicalExpr, expressions::Column};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::union::UnionExec;
use datafusion::prelude::{SessionConfig, SessionContext};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Where an executor listens and which scheduler it serves.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// The scheduler's gRPC address (`host:port`).
    pub scheduler: String,
    /// Address the executor binds (its Arrow Flight port, which serves shuffle data).
    pub bind: SocketAddr,
    /// Port of the executor's own gRPC service (the scheduler pushes tasks to it).
    pub grpc_port: u16,
    /// Host name the scheduler and other executors reach this executor at.
    pub external_host: Option<String>,
    /// Concurrent tasks (0: one per core).
    pub slots: usize,
    /// Shuffle files go here (default: a fresh temporary directory).
    pub work_dir: Option<PathBuf>,
}

/// A session that plans locally and runs on the Ballista scheduler at `url` (`df://host:port`).
pub fn remote_session(lake: &Lake, url: &str) -> Result<SessionContext> {
    let scheduler = scheduler_url(url)?;
    // Ballista 55 plans with its adaptive planner by default, which still answers a global aggregate
    // under UNION ALL once per task (its fix for that, apache/datafusion-ballista#2186, covers the
    // static planner only). The static planner gives the local engine's answers.
    let config = SessionConfigExt::upgrade_for_ballista(catalog::config()?)
        .with_ballista_adaptive_query_planner(false);
    let state = lake_state(lake, config, catalog::runtime_builder().build_arc()?)?;
    let ctx = SessionContext::new_with_state(state.upgrade_for_ballista(scheduler)?);
    // The upgrade resets the function list to Ballista's defaults: add ours again.
    crate::udf::register(&ctx);
    catalog::register_tables(&ctx)?;
    Ok(ctx)
}

/// A query that failed because the scheduler or an executor could not be reached.
pub(crate) fn unreachable(url: &str, e: &datafusion::error::DataFusionError) -> Option<LakeError> {
    let text = e.to_string();
    let transport = text.contains("tonic::transport::Error") || text.contains("tcp connect error");
    transport.then(|| LakeError::Cluster(format!("cannot reach the Ballista cluster at {url}: {text}")))
}

/// `df://host:port` → the scheduler's gRPC URL.
fn scheduler_url(url: &str) -> Result<String> {
    let bad = |reason: &str| LakeError::Cluster(format!("{url:?}: {reason}"));
    let parsed = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    if parsed.scheme() != "df" {
        return Err(bad("a Ballista scheduler URL is df://host:port"));
    }
    let host = parsed.host_str().ok_or_else(|| bad("no host"))?;
    Ok(format!("http://{host}:{}", parsed.port().unwrap_or(50050)))
}

/// Runs a scheduler on `bind` until the process ends.
pub async fn run_scheduler(lake: Lake, bind: SocketAddr) -> Result<()> {
    let builder_lake = lake.clone();
    let config = SchedulerConfig {
        bind_host: bind.ip().to_string(),
        bind_port: bind.port(),
        external_host: bind.ip().to_string(),
        // Client sessions arrive with their config; plan them with the lake's store and functions.
        override_session_builder: Some(Arc::new(move |config: SessionConfig| {
            let state = lake_state(&builder_lake, config, catalog::runtime_builder().build_arc()?)
                .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
            Ok(SessionStateBuilder::new_from_existing(state)
                .with_physical_optimizer_rule(Arc::new(UnionBranchStages))
                .build())
        })),
        ..SchedulerConfig::default()
    };
    let cluster = BallistaCluster::new_from_config(&config).await.map_err(ballista)?;
    start_server(cluster, bind, Arc::new(config)).await.map_err(ballista)
}

/// Runs an executor until the process ends (or the scheduler goes away for good).
pub async fn run_executor(lake: Lake, options: ExecutorOptions) -> Result<()> {
    let (scheduler_host, scheduler_port) = split_host_port(&options.scheduler)?;
    let functions = function_registry(&lake)?;
    let work_dir = match &options.work_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| LakeError::BadUrl { url: dir.display().to_string(), reason: e.to_string() })?;
            Some(dir.display().to_string())
        }
        None => None,
    };
    let spill_dir = work_dir.clone();
    let config = ExecutorProcessConfig {
        bind_host: options.bind.ip().to_string(),
        port: options.bind.port(),
        grpc_port: options.grpc_port,
        external_host: options.external_host.clone().or_else(|| Some(options.bind.ip().to_string())),
        scheduler_host,
        scheduler_port,
        // Executors often start before their scheduler listens (compose, k8s): keep trying.
        scheduler_connect_timeout_seconds: 60,
        vcores: options.slots,
        work_dir,
        override_function_registry: Some(Arc::new(functions)),
        override_runtime_producer: Some(Arc::new(move |_config: &SessionConfig| {
            let mut builder = catalog::runtime_builder();
            if let Some(dir) = &spill_dir {
                builder = builder.with_temp_file_path(dir);
            }
            let runtime = builder.build_arc()?;
            catalog::register_store(&lake, &runtime)
                .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
            Ok(runtime)
        })),
        ..ExecutorProcessConfig::default()
    };
    start_executor_process(Arc::new(config)).await.map_err(ballista)
}

/// A session state with the lake's store and every roadhex function, on `runtime`.
fn lake_state(lake: &Lake, config: SessionConfig, runtime: Arc<RuntimeEnv>) -> Result<SessionState> {
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    catalog::register_store(lake, ctx.runtime_env().as_ref())?;
    crate::udf::register(&ctx);
    Ok(ctx.state())
}

/// DataFusion's functions plus roadhex's, as executors resolve them by name in task plans.
fn function_registry(lake: &Lake) -> Result<BallistaFunctionRegistry> {
    let state = lake_state(lake, SessionConfig::new(), catalog::runtime_builder().build_arc()?)?;
    let mut registry = BallistaFunctionRegistry::default();
    registry
        .scalar_functions
        .extend(state.scalar_functions().iter().map(|(k, v)| (k.clone(), Arc::clone(v))));
    registry
        .aggregate_functions
        .extend(state.aggregate_functions().iter().map(|(k, v)| (k.clone(), Arc::clone(v))));
    registry
        .window_functions
        .extend(state.window_functions().iter().map(|(k, v)| (k.clone(), Arc::clone(v))));
    Ok(registry)
}

/// Gives every `UNION ALL` branch its own Ballista stage (a hash shuffle above it), so the union's
/// stage only reads shuffles. Ballista 55 restricts a union's inline branches per task, and a branch
/// that collapses to one partition (a global aggregate, a statistics-only `count(*)`) comes back once
/// per task, or its task's metrics no longer match the stage and the job never finishes. Branches
/// that already end in a hash shuffle are left alone; the cost is one shuffle of each branch's
/// output, which for the usual union of aggregates is a few rows.
#[derive(Debug)]
struct UnionBranchStages;

impl PhysicalOptimizerRule for UnionBranchStages {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            if !node.is::<UnionExec>() {
                return Ok(Transformed::no(node));
            }
            let children = node
                .children()
                .into_iter()
                .map(|c| shuffled(Arc::clone(c)))
                .collect::<datafusion::error::Result<_>>()?;
            let options = ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute);
            Ok(Transformed::yes(node.replace_children(children, options)?))
        })
        .data()
    }

    fn name(&self) -> &str {
        "roadhex_union_branch_stages"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `plan` behind a hash shuffle on its first column (unless it already is one).
fn shuffled(plan: Arc<dyn ExecutionPlan>) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
    let hashed = plan
        .downcast_ref::<RepartitionExec>()
        .is_some_and(|r| matches!(r.partitioning(), Partitioning::Hash(..)));
    let Some(first) = plan.schema().fields().first().map(|f| f.name().clone()) else {
        return Ok(plan);
    };
    if hashed {
        return Ok(plan);
    }
    let partitions = plan.properties().output_partitioning().partition_count().max(1);
    let key = Arc::new(Column::new(&first, 0)) as Arc<dyn PhysicalExpr>;
    Ok(Arc::new(RepartitionExec::try_new(plan, Partitioning::Hash(vec![key], partitions))?))
}

fn split_host_port(address: &str) -> Result<(String, u16)> {
    let bad = || LakeError::Cluster(format!("{address:?} is not host:port"));
    let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
    Ok((host.to_owned(), port.parse().map_err(|_| bad())?))
}

fn ballista(e: ballista_core::error::BallistaError) -> LakeError {
    LakeError::Cluster(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_urls() {
        assert_eq!(scheduler_url("df://127.0.0.1:50070").expect("url"), "http://127.0.0.1:50070");
        assert_eq!(scheduler_url("df://sched").expect("url"), "http://sched:50050");
        assert!(scheduler_url("http://sched:50050").is_err());
        assert_eq!(split_host_port("10.0.0.1:50050").expect("addr"), ("10.0.0.1".to_owned(), 50050));
        assert!(split_host_port("nohost").is_err());
    }

    #[test]
    fn every_union_branch_gets_a_hash_shuffle() {
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        use datafusion::physical_plan::placeholder_row::PlaceholderRowExec;
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
        let one = || Arc::new(PlaceholderRowExec::new(Arc::clone(&schema))) as Arc<dyn ExecutionPlan>;
        let hashed = shuffled(one()).expect("shuffle");
        let union = UnionExec::try_new(vec![one(), Arc::clone(&hashed)]).expect("union");
        let plan = UnionBranchStages.optimize(union, &ConfigOptions::default()).expect("optimize");
        let children = plan.children();
        assert_eq!(children.len(), 2);
        for child in &children {
            let r = child.downcast_ref::<RepartitionExec>().expect("a shuffle above the branch");
            assert!(matches!(r.partitioning(), Partitioning::Hash(..)));
            // Not shuffled twice.
            assert!(!r.input().is::<RepartitionExec>(), "{child:?}");
        }
    }
}
