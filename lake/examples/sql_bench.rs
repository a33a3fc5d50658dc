#![allow(clippy::print_stdout)] // a report printer
//! `make bench`: the ten queries of docs/analysts.md over a synthetic lake, in DataFusion (through
//! roadhex's catalog, UDFs and visibility rules) and in DuckDB on the same Parquet files, same run.
//!
//! The lake (default 10 M frames, `ROADHEX_BENCH_FRAMES`) is written once with the real table
//! writer into `~/.cache/roadhex/bench/sql-{frames}`, compacted by the real compaction (each
//! day's eight flushes per table merged into one file, as on a node), and reused while its stamp
//! matches.
//! DuckDB gets the same SQL with two macros for our UDFs (`h3_to_string`, `h3_parent` by bit
//! arithmetic, exact); queries using `h3_distance` or `h3_boundary_wkt` run in DuckDB without that
//! call and are marked so. Each figure is the median of 5 runs after one warm-up, the two engines
//! alternating run by run so that load from elsewhere on the machine hits both alike.

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Float32Array, Float64Array, StringArray, TimestampMillisecondArray,
    UInt8Array, UInt32Array, UInt64Array,
};
use arrow::datatypes::{DataType, Field};
use arrow::record_batch::RecordBatch;
use h3o::{LatLng, Resolution};
use roadhex_lake::Lake;
use roadhex_schemas::tables::Table;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

const DAYS: i64 = 56;
const FRAMES_PER_CAPTURE: usize = 100;
const CONTRIBUTORS: u64 = 2_000;
const DEVICES: u64 = 3_000;
const REPS: usize = 5;
/// Files each table's day arrives in before compaction (the default `min_files`).
const FLUSHES: usize = 8;
/// 2026-01-05, a Monday.
const START_MS: i64 = 1_767_571_200_000;

use roadhex_schemas::rng::SplitMix64 as Rng;

/// One synthetic frame: everything the generic column builder needs.
struct Row {
    capture: u64,
    index: u32,
    device: u64,
    t_ms: i64,
    lat: f64,
    lon: f64,
    heading: f64,
    cell: u64,
    quality: &'static str,
    kind: &'static str,
    count: u32,
}

/// H3 indexes share their low bits at one resolution; spread them before taking remainders.
fn mix(cell: u64) -> u64 {
    cell.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20
}

fn hex_id(kind: &str, n: u64) -> String {
    format!(
        "{:032x}",
        (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) as u128) << 64 | u128::from(n) ^ kind.len() as u128
    )
}

fn parent(cell: u64, res: u8) -> u64 {
    h3o::CellIndex::try_from(cell)
        .ok()
        .and_then(|c| c.parent(Resolution::try_from(res).ok()?))
        .map_or(cell, u64::from)
}

/// Builds a column by its name (meaningful values for the known ones, a type default otherwise),
/// so the generator keeps working when a table gains columns.
fn column(field: &Field, rows: &[Row], day: &str) -> ArrayRef {
    let name = field.name().as_str();
    let capture = |r: &Row| hex_id("capture", r.capture);
    let device = |r: &Row| hex_id("device", r.device);
    let contributor = |r: &Row| format!("contributor-{:04}", r.device % CONTRIBUTORS);
    let frame = |r: &Row| format!("{}-{:04}", capture(r), r.index);
    let text =
        |f: &dyn Fn(&Row) -> String| Arc::new(StringArray::from_iter_values(rows.iter().map(f))) as ArrayRef;
    let ts = |f: &dyn Fn(&Row) -> i64| {
        Arc::new(TimestampMillisecondArray::from_iter_values(rows.iter().map(f)).with_timezone("UTC"))
            as ArrayRef
    };
    match (name, field.data_type()) {
        ("capture_id", _) => text(&capture),
        ("device_id", _) => text(&device),
        ("contributor_id", _) => text(&contributor),
        ("frame_id" | "feature_id", _) => text(&frame),
        ("object_key", _) => text(&|r| format!("frames/{}/{:04}.jpg", capture(r), r.index)),
        ("mount", _) => text(&|r| if r.device % 10 == 0 { "side".into() } else { "front".into() }),
        ("quality", _) => text(&|r| r.quality.to_owned()),
        ("kind", _) => text(&|r| r.kind.to_owned()),
        ("class", _) => text(&|r| format!("class_{}", mix(r.cell) % 43)),
        ("gate", _) => Arc::new(StringArray::from_iter(
            rows.iter().map(|r| mix(r.cell).is_multiple_of(50).then_some("gnss_low_satellites")),
        )),
        ("flags", _) => Arc::new(StringArray::from_iter(
            rows.iter().map(|r| mix(r.cell).is_multiple_of(97).then_some("duplicate_image")),
        )),
        ("epoch_id", _) => text(&|r| {
            let week = (r.t_ms - START_MS) / (7 * 86_400_000) + 2;
            format!("2026-W{week:02}")
        }),
        ("detector" | "anonymizer", _) => text(&|_| "centerface-1+textrow-2".into()),
        ("date", _) => text(&|_| day.to_owned()),
        ("lat", _) => Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.lat))),
        ("lon", _) => Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.lon))),
        ("heading", _) => Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.heading))),
        ("h3_r12", _) => Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.cell))),
        ("h3_r10", _) => Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| parent(r.cell, 10)))),
        ("h3_r8", _) => Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| parent(r.cell, 8)))),
        ("h3_r6", _) => Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| parent(r.cell, 6)))),
        ("frame_index" | "seq", _) => Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.index))),
        ("frame_count" | "valid_frame_count" | "observations", _) => {
            Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.count)))
        }
        ("geometry", _) => Arc::new(BinaryArray::from_iter_values(
            rows.iter().map(|r| roadhex_schemas::wkb::point(r.lon, r.lat)),
        )),
        (_, DataType::Timestamp(..)) => ts(&|r| r.t_ms),
        (_, DataType::Utf8) => text(&|r| format!("{name}-{}", mix(r.cell) % 7)),
        (_, DataType::UInt64) => {
            Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| mix(r.cell) % 100_000)))
        }
        (_, DataType::UInt32) => {
            Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| (mix(r.cell) % 1000) as u32)))
        }
        (_, DataType::UInt8) => {
            Arc::new(UInt8Array::from_iter_values(rows.iter().map(|r| (mix(r.cell) % 12) as u8)))
        }
        (_, DataType::Float64) => Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|r| (mix(r.cell) % 1000) as f64 / 1000.0),
        )),
        (_, DataType::Float32) => Arc::new(Float32Array::from_iter_values(
            rows.iter().map(|r| (mix(r.cell) % 1000) as f32 / 1000.0),
        )),
        (_, DataType::Boolean) => {
            Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(!mix(r.cell).is_multiple_of(5)))))
        }
        (_, DataType::Binary) => Arc::new(BinaryArray::from_iter_values(rows.iter().map(|_| b"".as_slice()))),
        (_, other) => arrow::array::new_null_array(other, rows.len()),
    }
}

fn batch(table: Table, rows: &[Row], day: &str) -> RecordBatch {
    let schema = table.schema();
    let cols = schema.fields().iter().map(|f| column(f, rows, day)).collect();
    RecordBatch::try_new(schema, cols).unwrap_or_else(|e| panic!("{}: {e}", table.name()))
}

/// Drives one capture along a grid of streets (100 m blocks, 8 m between frames) in a 20 km box.
fn drive(rng: &mut Rng, capture: u64, day: i64) -> Vec<Row> {
    let device = capture % DEVICES;
    let (lat0, lon0) = (37.60, -122.52);
    let (m_lat, m_lon) = (1.0 / 111_000.0, 1.0 / 88_000.0);
    let (mut x, mut y) = ((rng.below(200) * 100) as f64, (rng.below(200) * 100) as f64);
    let mut dir = rng.below(4);
    let t0 = START_MS + day * 86_400_000 + 6 * 3_600_000 + rng.below(14 * 3_600_000) as i64;
    (0..FRAMES_PER_CAPTURE)
        .map(|i| {
            if (x % 100.0 < 8.0 || y % 100.0 < 8.0) && rng.below(4) == 0 {
                dir = rng.below(4);
            }
            let (dx, dy) = [(0.0, 8.0), (8.0, 0.0), (0.0, -8.0), (-8.0, 0.0)][dir as usize];
            x = (x + dx).clamp(0.0, 20_000.0);
            y = (y + dy).clamp(0.0, 20_000.0);
            let (lat, lon) = (lat0 + y * m_lat, lon0 + x * m_lon);
            let cell = LatLng::new(lat, lon).map(|ll| u64::from(ll.to_cell(Resolution::Twelve))).unwrap_or(0);
            let roll = rng.below(100);
            Row {
                capture,
                index: i as u32,
                device,
                t_ms: t0 + i as i64 * 1_000,
                lat,
                lon,
                heading: [0.0, 90.0, 180.0, 270.0][dir as usize],
                cell,
                quality: match roll {
                    0..=1 => "too_dark",
                    2..=3 => "blurry",
                    4 => "near_duplicate",
                    _ => "ok",
                },
                kind: if roll.is_multiple_of(3) { "face" } else { "plate" },
                count: 1,
            }
        })
        .collect()
}

async fn generate(dir: &Path, frames: usize) {
    let lake = Lake::open(dir.to_str().expect("utf8 dir")).expect("lake");
    let captures_per_day = (frames / FRAMES_PER_CAPTURE).div_ceil(DAYS as usize) as u64;
    let mut rng = Rng(20_261_123);
    let started = Instant::now();
    for day in 0..DAYS {
        let date = chrono::DateTime::from_timestamp_millis(START_MS + day * 86_400_000)
            .expect("date")
            .format("%Y-%m-%d")
            .to_string();
        let mut frame_rows = Vec::new();
        let mut capture_rows = Vec::new();
        let mut coverage_rows = Vec::new();
        for c in 0..captures_per_day {
            let capture = day as u64 * captures_per_day + c;
            let rows = drive(&mut rng, capture, day);
            // Coverage: one row per run of frames in the same cell.
            for r in &rows {
                match coverage_rows.last_mut() {
                    Some(Row { cell, capture: cap, count, .. }) if *cell == r.cell && *cap == capture => {
                        *count += 1
                    }
                    _ => coverage_rows.push(Row { count: 1, ..copy(r) }),
                }
            }
            let first = &rows[0];
            capture_rows.push(Row { count: FRAMES_PER_CAPTURE as u32, ..copy(first) });
            frame_rows.extend(rows);
        }
        let detections: Vec<Row> = frame_rows.iter().filter(|r| mix(r.cell) % 10 < 3).map(copy).collect();
        let features: Vec<Row> = frame_rows.iter().filter(|r| mix(r.cell) % 100 == 1).map(copy).collect();
        let rewards: Vec<Row> =
            coverage_rows.iter().filter(|r| mix(r.cell).is_multiple_of(3)).map(copy).collect();
        // A day arrives in FLUSHES files per table, which the real compaction (run below) merges as
        // a node's would; rewards and features, which their owner writes whole, arrive in one.
        for (table, rows) in [
            (Table::Frames, &frame_rows),
            (Table::Telemetry, &frame_rows),
            (Table::Coverage, &coverage_rows),
            (Table::Captures, &capture_rows),
            (Table::Detections, &detections),
            (Table::Features, &features),
            (Table::Rewards, &rewards),
        ] {
            let flushes = if matches!(table, Table::Rewards | Table::Features) { 1 } else { FLUSHES };
            for (k, chunk) in rows.chunks(rows.len().div_ceil(flushes).max(1)).enumerate() {
                roadhex_lake::writer::append(
                    &lake,
                    table,
                    &date,
                    &format!("bench{k}"),
                    &[batch(table, chunk, &date)],
                )
                .await
                .expect("append");
            }
        }
        eprint!("\rgenerating: day {}/{DAYS} ({:.0} s)", day + 1, started.elapsed().as_secs_f64());
    }
    eprintln!();
    // Replaced files are deleted at once (no grace period): DuckDB globs the directories and
    // knows nothing of compaction markers.
    let config = roadhex_lake::compact::CompactionConfig {
        min_files: FLUSHES,
        grace_s: 0,
        ..roadhex_lake::compact::CompactionConfig::default()
    };
    let report = roadhex_lake::compact::run(&lake, &config).await.expect("compaction");
    eprintln!(
        "compacted {} partitions ({} files replaced, {} deleted) in {:.0} s",
        report.partitions,
        report.files_replaced,
        report.files_deleted,
        started.elapsed().as_secs_f64()
    );
}

fn copy(r: &Row) -> Row {
    Row { ..*r }
}

/// A DuckDB process over the same files, timing one query per request.
struct DuckDb {
    child: std::process::Child,
    out: std::io::BufReader<std::process::ChildStdout>,
}

impl DuckDb {
    fn start(home: &Path, dir: &Path) -> Self {
        use std::io::BufRead as _;
        let python = std::env::var_os("ROADHEX_PY")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(".cache/roadhex/py"))
            .join("bin/python");
        let mut child = std::process::Command::new(python)
            .args(["-c", DUCKDB_SCRIPT, dir.to_str().expect("utf8")])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python with duckdb (deploy/pytools.sh)");
        let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("duckdb ready");
        assert_eq!(line.trim(), "ready", "duckdb did not start");
        Self { child, out }
    }

    /// Runs `sql` once; returns (ms, rows).
    fn run(&mut self, sql: &str) -> (f64, usize) {
        use std::io::{BufRead as _, Write as _};
        let stdin = self.child.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{}", serde_json::to_string(sql).expect("json")).expect("write");
        stdin.flush().expect("flush");
        let mut line = String::new();
        self.out.read_line(&mut line).expect("duckdb answer");
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("duckdb: {e}: {line}"));
        (v["ms"].as_f64().expect("ms"), v["rows"].as_u64().expect("rows") as usize)
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn doc_queries() -> Vec<String> {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/analysts.md"))
        .expect("docs/analysts.md");
    doc.split("```sql\n")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .filter(|q| !q.contains("read_parquet"))
        .map(str::to_owned)
        .collect()
}

/// The DuckDB form of a query: our UDFs that DuckDB cannot express are dropped (and reported).
fn duckdb_form(q: &str) -> (String, bool) {
    let mut exact = true;
    let mut out = String::new();
    for line in q.lines() {
        if line.contains("h3_boundary_wkt") {
            exact = false;
            continue;
        }
        if line.contains("h3_distance") {
            exact = false;
            let kept = line.replace("h3_distance(f.h3_r12, here.cell) AS rings", "0 AS rings");
            if kept.contains("h3_distance") {
                continue;
            }
            out.push_str(&kept);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    (out, exact)
}

const DUCKDB_SCRIPT: &str = r#"
import json, sys, time
import duckdb
root = sys.argv[1]
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
for t in ["captures","telemetry","frames","detections","features","coverage","rewards","epochs","redactions"]:
    try:
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{root}/tables/{t}/*/*.parquet', hive_partitioning = true)")
    except duckdb.Error:
        pass
con.execute("CREATE MACRO h3_to_string(c) AS lower(printf('%x', c))")
# Exact H3 parent: set the resolution field, fill finer digits with 7.
con.execute("CREATE MACRO h3_parent(c, r) AS ((c::UBIGINT & ~(15::UBIGINT << 52)) | (r::UBIGINT << 52) | ((1::UBIGINT << (3 * (15 - r))) - 1))")
print("ready", flush=True)
# One query per line in, one timing per line out; results come back as Arrow, as DataFusion's do.
for line in sys.stdin:
    q = json.loads(line)
    t = time.perf_counter()
    rows = con.execute(q).fetch_arrow_table().num_rows
    print(json.dumps({"ms": (time.perf_counter() - t) * 1000, "rows": rows}), flush=True)
"#;

#[tokio::main]
async fn main() {
    let frames: usize =
        std::env::var("ROADHEX_BENCH_FRAMES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000_000);
    let home = PathBuf::from(std::env::var_os("HOME").expect("HOME"));
    let dir = home.join(format!(".cache/roadhex/bench/sql-{frames}"));
    let stamp = dir.join("STAMP");
    let want = format!("v5 {frames}\n");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(want.as_str()) {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("bench dir");
        generate(&dir, frames).await;
        std::fs::write(&stamp, &want).expect("stamp");
    }
    let lake = Lake::open(dir.to_str().expect("utf8")).expect("lake");
    let engine = roadhex_lake::sql::SqlEngine::new(
        lake,
        roadhex_lake::sql::SqlLimits { max_rows: usize::MAX, ..Default::default() },
    )
    .expect("engine");
    let count = engine.query("SELECT count(*) FROM frames").await.expect("count");
    let n =
        count.batches[0].column(0).as_any().downcast_ref::<arrow::array::Int64Array>().expect("i64").value(0);
    println!(
        "sql bench: {n} frames in {} (DataFusion via roadhex vs DuckDB on the same files, median of {REPS})",
        dir.display()
    );

    // ROADHEX_BENCH_QUERIES=5,6 runs a subset (numbers as in docs/analysts.md).
    let only: Vec<usize> = std::env::var("ROADHEX_BENCH_QUERIES")
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_default();
    // ROADHEX_BENCH_SQL="SELECT …" times one ad-hoc query instead (for tuning).
    let adhoc = std::env::var("ROADHEX_BENCH_SQL").ok();
    // Each query keeps its number in docs/analysts.md, also when only some run.
    let (numbers, queries): (Vec<usize>, Vec<String>) = adhoc
        .map(|q| vec![q])
        .unwrap_or_else(doc_queries)
        .into_iter()
        .enumerate()
        .map(|(i, q)| (i + 1, q))
        .filter(|(n, _)| only.is_empty() || only.contains(n))
        .unzip();
    let forms: Vec<(String, bool)> = queries.iter().map(|q| duckdb_form(q)).collect();
    let mut duck = DuckDb::start(&home, &dir);
    // Alternate the engines run by run, so load from elsewhere on the machine hits both alike.
    let (mut df_ms, mut df_rows, mut duck_ms, mut duck_rows) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for ((q, (dq, _)), number) in queries.iter().zip(&forms).zip(&numbers) {
        engine.query(q).await.expect("warm-up");
        duck.run(dq);
        let (mut a, mut b, mut rows, mut drows) = (Vec::new(), Vec::new(), 0, 0);
        for _ in 0..REPS {
            let t = Instant::now();
            let r = engine.query(q).await.expect("query");
            a.push(t.elapsed().as_secs_f64() * 1000.0);
            rows = r.batches.iter().map(|b| b.num_rows()).sum::<usize>();
            let (ms, n) = duck.run(dq);
            b.push(ms);
            drows = n;
        }
        eprintln!(
            "q{number}: datafusion {:.1} ms, duckdb {:.1} ms {a:.0?} {b:.0?}",
            median(a.clone()),
            median(b.clone())
        );
        df_ms.push(median(a));
        df_rows.push(rows);
        duck_ms.push(median(b));
        duck_rows.push(drows);
    }

    println!("{:<4} {:>12} {:>12} {:>8} {:>10}  note", "q", "datafusion", "duckdb", "ratio", "rows");
    let mut worst: f64 = 0.0;
    for i in 0..queries.len() {
        let (ms, dms, rows) = (df_ms[i], duck_ms[i], df_rows[i]);
        let ratio = ms / dms;
        let exact = forms[i].1;
        if exact {
            worst = worst.max(ratio);
        }
        let note = if !exact {
            "DuckDB ran it without h3_distance/h3_boundary_wkt (no offline h3 extension)"
        } else if duck_rows[i] != rows {
            "row counts differ!"
        } else {
            ""
        };
        println!("{:<4} {:>9.1} ms {:>9.1} ms {:>7.2}x {:>10}  {note}", numbers[i], ms, dms, ratio, rows);
    }
    println!("worst ratio over exact queries: {worst:.2}x (goal <= 1.5x)");
}
