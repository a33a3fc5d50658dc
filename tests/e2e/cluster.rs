//! Distributed SQL: a Ballista scheduler and two executors (`roadhex cluster`) on loopback give
//! the same answers as the local engine to every query of docs/analysts.md, and both executors work.

use crate::sql::doc_queries;
use crate::support::{free_port, roadhex, roadhex_ok};
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `roadhex cluster …` process whose stderr goes to a file; killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str], log: &Path) -> Proc {
    let file = std::fs::File::create(log).expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_roadhex"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .expect("spawn roadhex cluster");
    Proc(child)
}

/// `roadhex ARGS` killed after `limit` (a cluster without executors would wait forever). Output
/// goes through files: a full pipe would stall the child while nobody reads it.
fn roadhex_within(args: &[&str], limit: Duration) -> std::process::Output {
    let (out, err) = (tempfile::tempfile().expect("tmp"), tempfile::tempfile().expect("tmp"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_roadhex"))
        .args(args)
        .stdout(out.try_clone().expect("dup"))
        .stderr(err.try_clone().expect("dup"))
        .spawn()
        .expect("spawn roadhex");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("roadhex {args:?} ran longer than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let read = |mut f: std::fs::File| {
        use std::io::{Read as _, Seek as _};
        let mut bytes = Vec::new();
        f.rewind().expect("rewind");
        f.read_to_end(&mut bytes).expect("read");
        bytes
    };
    std::process::Output { status, stdout: read(out), stderr: read(err) }
}

/// Waits until `log` has `n` lines containing `needle`.
fn wait_log(log: &Path, needle: &str, n: usize) {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.matches(needle).count() >= n {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "no {needle:?} x{n} in {}:\n{text}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One result as sorted rows with numbers rounded (partial sums add up in another order).
fn rows(ndjson: &str) -> Vec<String> {
    fn norm(v: &Value) -> Value {
        match v {
            Value::Number(n) if n.is_f64() => {
                let x = n.as_f64().unwrap_or_default();
                Value::String(format!("{x:.6e}"))
            }
            Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), norm(v))).collect()),
            Value::Array(a) => Value::Array(a.iter().map(norm).collect()),
            other => other.clone(),
        }
    }
    let mut out: Vec<String> =
        ndjson.lines().map(|l| norm(&serde_json::from_str(l).expect("ndjson row")).to_string()).collect();
    out.sort();
    out
}

/// The doc query without a cut that ties would make engine-dependent: the outer `LIMIT` goes,
/// and the "latest frame" of the nearby-frames query gets a tie-breaker.
fn deterministic(query: &str) -> String {
    let latest = "ORDER BY captured_at DESC LIMIT 1";
    let q = query.replace(latest, "ORDER BY captured_at DESC, frame_id DESC LIMIT 1");
    let lines: Vec<&str> = q.lines().filter(|l| !l.trim_start().starts_with("LIMIT")).collect();
    lines.join("\n")
}

#[test]
fn ballista_cluster_answers_like_the_local_engine() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let store = format!("file://{}", data.display());
    // A lake with every table: a simulated fleet through the real rewards tables.
    roadhex_ok(&["simulate", "--seed", "5", "--store", &store, "--json"]);
    let data_arg = data.to_str().expect("utf8");

    let scheduler = format!("127.0.0.1:{}", free_port());
    let scheduler_log = tmp.path().join("s.log");
    let _s = spawn(&["cluster", "scheduler", "--data", data_arg, "--listen", &scheduler], &scheduler_log);
    let mut executors = Vec::new();
    for i in 0..2 {
        let (flight, grpc) = (format!("127.0.0.1:{}", free_port()), free_port().to_string());
        let log = tmp.path().join(format!("e{i}.log"));
        let args =
            ["cluster", "executor", "--data", data_arg, "--scheduler", &scheduler, "--listen", &flight];
        let mut args = args.to_vec();
        args.extend(["--grpc-port", &grpc, "--slots", "1"]);
        executors.push((spawn(&args, &log), log));
    }
    let url = format!("df://{scheduler}");
    let cluster = |q: &str| {
        roadhex_within(
            &["sql", "--data", data_arg, "--cluster", &url, "--format", "json", q],
            Duration::from_secs(120),
        )
    };
    // Ready once both executors have registered with the scheduler.
    wait_log(&scheduler_log, "register executor request", 2);

    let mut queries = doc_queries();
    assert!(queries.len() >= 10, "docs/analysts.md lost queries");
    // Union shapes Ballista 55 answered once per task or never finished (see cluster.rs,
    // `UnionBranchStages`): two global aggregates, and a statistics-only `count(*)` beside a grouped
    // branch.
    queries.push(
        "SELECT 'a' AS s, sum(frame_count) AS n FROM captures \
         UNION ALL SELECT 'b' AS s, sum(valid_frame_count) AS n FROM captures"
            .to_owned(),
    );
    queries.push(
        "SELECT quality AS s, count(*) AS n FROM frames WHERE quality <> 'ok' GROUP BY quality \
         UNION ALL SELECT 'c' AS s, count(*) AS n FROM captures"
            .to_owned(),
    );
    let mut with_rows = 0;
    for q in &queries {
        let q = deterministic(q);
        let local = roadhex_ok(&["sql", "--data", data_arg, "--format", "json", &q]);
        let out = cluster(&q);
        assert!(out.status.success(), "cluster failed on\n{q}\n{}", String::from_utf8_lossy(&out.stderr));
        let remote = String::from_utf8_lossy(&out.stdout);
        assert_eq!(rows(&remote), rows(&local), "cluster and local differ on\n{q}");
        with_rows += usize::from(!local.trim().is_empty());
    }
    assert!(with_rows >= 5, "only {with_rows} queries returned rows: the comparison says little");

    // Both executors ran tasks: the work was spread, not run on one.
    for (_, log) in &executors {
        let text = std::fs::read_to_string(log).expect("executor log");
        assert!(text.contains("Execute task"), "an executor ran no task:\n{text}");
    }

    // An unreachable scheduler is a clear refusal, not a crash.
    let dead = format!("df://127.0.0.1:{}", free_port());
    let out = roadhex(&["sql", "--data", data_arg, "--cluster", &dead, "SELECT 1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("error[cluster_error]") && err.contains("cannot reach"), "{err}");
}
