//! An epoch over N synthetic coverage observations (default 10 M), beside the same points
//! computation written as SQL in DuckDB over the same Parquet files, measured in the same run.
//!
//! `cargo run --profile perf -p roadhex-rewards --example rewards_bench [-- OBSERVATIONS]`
//! DuckDB comes from the venv made by `deploy/pytools.sh` (`$ROADHEX_PY`, default ~/.cache/roadhex/py).
#![allow(clippy::print_stdout)]

use arrow::array::{
    ArrayRef, BinaryArray, Float64Array, RecordBatch, StringArray, TimestampMillisecondArray, UInt32Array,
    UInt64Array,
};
use roadhex_lake::Lake;
use roadhex_lake::writer::{append, partition_date};
use roadhex_rewards::{Epoch, RewardsConfig, Step};
use roadhex_schemas::tables::Table;
use std::sync::{Arc, Mutex};
use std::time::Instant;

const CELLS_PER_CAPTURE: usize = 50;
const CAPTURES_PER_FILE: usize = 20_000;
const CONTRIBUTORS: usize = 5_000;
const DAY: i64 = 86_400_000;

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

/// splitmix64 (fixed data for every run).
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn ts(v: Vec<i64>) -> ArrayRef {
    Arc::new(TimestampMillisecondArray::from(v).with_timezone("UTC"))
}
fn text(v: Vec<String>) -> ArrayRef {
    Arc::new(StringArray::from(v))
}
fn same<T: Clone>(v: T, n: usize) -> Vec<T> {
    vec![v; n]
}
fn u64s(v: Vec<u64>) -> ArrayRef {
    Arc::new(UInt64Array::from(v))
}
fn u32s(v: Vec<u32>) -> ArrayRef {
    Arc::new(UInt32Array::from(v))
}
fn f64s(v: Vec<f64>) -> ArrayRef {
    Arc::new(Float64Array::from(v))
}

/// One file per table with captures `file*CAPTURES_PER_FILE..+n`. Each contributor drives one
/// device whose captures follow each other hours apart (an honest fleet: no flags fire).
async fn write_file(
    lake: &Lake,
    epoch: &Epoch,
    file: usize,
    n: usize,
    pool: u64,
    total: usize,
) -> AnyResult<()> {
    let spacing = 7 * DAY / (total.div_ceil(CONTRIBUTORS) as i64 + 1);
    let day0 = epoch.start_ms + (file * CAPTURES_PER_FILE / CONTRIBUTORS) as i64 * spacing;
    let (mut cap_id, mut dev, mut con, mut t0, mut t1, mut committed) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut f_id, mut f_cap, mut f_idx, mut f_dev, mut f_con, mut f_t) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut f_lat, mut f_lon, mut f_cell, mut f_q, mut f_ph) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for k in 0..n {
        let c = (file * CAPTURES_PER_FILE + k) as u64;
        let id = format!("{:032x}", mix(c) as u128 | ((mix(c ^ 0xABCD) as u128) << 64));
        let contributor = c as usize % CONTRIBUTORS;
        let start =
            epoch.start_ms + (c as usize / CONTRIBUTORS) as i64 * spacing + (mix(c ^ 11) % 3_600_000) as i64;
        for i in 0..CELLS_PER_CAPTURE {
            let r = mix(c * 64 + i as u64);
            f_id.push(format!("{id}-{i:04}"));
            f_cap.push(id.clone());
            f_idx.push(i as u32);
            f_dev.push(format!("{contributor:032x}"));
            f_con.push(format!("driver-{contributor:05}"));
            f_t.push(start + i as i64 * 2000);
            f_lat.push(37.0 + (r % 10_000) as f64 * 1e-4);
            f_lon.push(-122.0 - (r >> 20) as f64 % 10_000.0 * 1e-4);
            // Opaque cell ids from a pool, so cells are revisited across the epoch.
            f_cell.push(0x08c0_0000_0000_0000 + (r >> 8) % pool);
            f_q.push(if r.is_multiple_of(33) { "blurred" } else { "ok" });
            f_ph.push(mix(r));
        }
        cap_id.push(id);
        dev.push(format!("{contributor:032x}"));
        con.push(format!("driver-{contributor:05}"));
        t0.push(start);
        t1.push(start + (CELLS_PER_CAPTURE as i64 - 1) * 2000);
        committed.push(start + DAY);
    }
    let m = f_id.len();
    let wkb: Vec<Vec<u8>> =
        f_lat.iter().zip(&f_lon).map(|(a, o)| roadhex_schemas::wkb::point(*o, *a)).collect();
    let geom = || Arc::new(BinaryArray::from_iter_values(wkb.iter())) as ArrayRef;
    let captures = RecordBatch::try_new(
        Table::Captures.schema(),
        vec![
            text(cap_id.clone()),
            text(dev),
            text(con),
            u64s((0..n as u64).collect()),
            ts(t1.iter().map(|t| t + 1000).collect()),
            ts(committed),
            ts(t0),
            ts(t1),
            u32s(same(50, n)),
            u32s(same(50, n)),
            u64s(same(10_000_000, n)),
            f64s(same(1000.0, n)),
            text(same("front".into(), n)),
            u32s(same(2028, n)),
            u32s(same(1024, n)),
            f64s(same(1000.0, n)),
            f64s(same(1.4, n)),
            Arc::new(StringArray::from(same(None::<&str>, n))),
            f64s(same(37.0, n)),
            f64s(same(-122.0, n)),
            Arc::new(BinaryArray::from_iter_values(std::iter::repeat_n(
                roadhex_schemas::wkb::line_string(&[(-122.0, 37.0)]),
                n,
            ))),
        ],
    )?;
    let frames = RecordBatch::try_new(
        Table::Frames.schema(),
        vec![
            text(f_id.clone()),
            text(f_cap.clone()),
            u32s(f_idx),
            text(f_dev.clone()),
            text(f_con.clone()),
            ts(f_t.clone()),
            ts(same(epoch.end_ms, m)),
            f64s(f_lat.clone()),
            f64s(f_lon.clone()),
            f64s(same(0.0, m)),
            f64s(same(10.0, m)),
            u64s(f_cell.clone()),
            u64s(same(0, m)),
            u64s(same(0, m)),
            u64s(same(0x0862_8308_27ff_ffff, m)),
            text(same("front".into(), m)),
            text(same("frames/x.jpg".into(), m)),
            u32s(same(2028, m)),
            u32s(same(1024, m)),
            u64s(same(200_000, m)),
            text(f_q.iter().map(|q| (*q).to_owned()).collect()),
            text(same("bench".into(), m)),
            u64s(f_ph),
            geom(),
        ],
    )?;
    let coverage = RecordBatch::try_new(
        Table::Coverage.schema(),
        vec![
            u64s(f_cell),
            u64s(same(0, m)),
            u64s(same(0, m)),
            u64s(same(0x0862_8308_27ff_ffff, m)),
            text(same("front".into(), m)),
            text(f_id),
            u32s(same(1, m)),
            text(f_cap),
            text(f_dev),
            text(f_con),
            ts(f_t),
            f64s(f_lat),
            f64s(f_lon),
            geom(),
        ],
    )?;
    let date = partition_date(day0);
    let key = format!("bench-{file:04}");
    append(lake, Table::Captures, &date, &key, &[captures]).await?;
    append(lake, Table::Frames, &date, &key, &[frames]).await?;
    append(lake, Table::Coverage, &date, &key, &[coverage]).await?;
    Ok(())
}

/// Where DuckDB's form of the epoch ends: per-contributor totals (nothing written), or the credit
/// rows written to zstd Parquet (our ledger's rows, less the split and the flags), in the ledger's
/// order or in whatever order DuckDB's threads finish.
#[derive(Clone, Copy)]
enum DuckOutput<'a> {
    Totals,
    Ledger { path: &'a str, sorted: bool },
}

/// The points computation in DuckDB, ending as `output` says.
fn duckdb_sql(root: &str, cfg: &RewardsConfig, e: &Epoch, output: DuckOutput<'_>) -> String {
    let (from, start, end) = (e.start_ms - cfg.refill_ms(), e.start_ms, e.end_ms);
    let (len, cut, refill, anchor) =
        (cfg.epoch_ms(), cfg.cutoff_ms(), cfg.refill_ms(), roadhex_rewards::epoch::ANCHOR_MS);
    let points = "CAST(round(m * 1.0 * 1.0 * 1000000.0) AS BIGINT)";
    let (copy, last) = match output {
        DuckOutput::Totals => (
            "",
            format!(
                "SELECT contributor_id, SUM({points}) AS points, COUNT(*) AS n FROM credits GROUP BY contributor_id"
            ),
        ),
        DuckOutput::Ledger { path, sorted } => (
            "COPY (",
            format!(
                "SELECT '{id}' AS epoch_id, contributor_id, device_id, capture_id, h3_r12, mount, \
                 make_timestamp(t * 1000) AS captured_at, m AS multiplier, {points} AS points FROM credits \
                 {order}) TO '{path}' (FORMAT parquet, COMPRESSION zstd)",
                id = e.id,
                order = if sorted { "ORDER BY contributor_id, t, h3_r12, mount, capture_id" } else { "" },
            ),
        ),
    };
    format!(
        "{copy}WITH obs AS (
  SELECT c.h3_r12, c.mount, c.capture_id, k.contributor_id, k.device_id, epoch_ms(f.captured_at) AS t
  FROM read_parquet('{root}/tables/coverage/*/*.parquet') c
  JOIN read_parquet('{root}/tables/frames/*/*.parquet') f ON f.frame_id = c.frame_id
  JOIN read_parquet('{root}/tables/captures/*/*.parquet') k ON k.capture_id = c.capture_id
  WHERE f.quality = 'ok' AND epoch_ms(f.captured_at) >= {from} AND epoch_ms(f.captured_at) < {end}
    AND epoch_ms(k.committed_at) <= epoch_ms(f.captured_at) - (epoch_ms(f.captured_at) - {anchor}) % {len} + {len} + {cut}
),
fresh AS (SELECT *, LAG(t) OVER (PARTITION BY h3_r12, mount ORDER BY t, capture_id) AS prev_t FROM obs),
credits AS (
  SELECT contributor_id, device_id, capture_id, h3_r12, mount, t,
    CASE WHEN prev_t IS NULL THEN 1.0 ELSE LEAST(1.0, CAST(t - prev_t AS DOUBLE) / {refill}.0) END AS m
  FROM fresh WHERE t >= {start}
)
{last}"
    )
}

const PY: &str = r#"
import sys, time, duckdb
sql = sys.stdin.read()
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
t = time.perf_counter()
rows = con.execute(sql).fetchall()
dt = time.perf_counter() - t
if rows and len(rows[0]) >= 3:
    print(f"{dt:.3f} {sum(r[1] for r in rows)} {sum(r[2] for r in rows)} {len(rows)}")
else:  # COPY ... TO: DuckDB answers with the number of rows written
    print(f"{dt:.3f} 0 {rows[0][0] if rows else 0} 0")
"#;

fn run_duckdb(sql: &str) -> AnyResult<(f64, u64, u64)> {
    use std::io::Write as _;
    let venv = std::env::var("ROADHEX_PY")
        .unwrap_or_else(|_| format!("{}/.cache/roadhex/py", std::env::var("HOME").unwrap_or_default()));
    let mut child = std::process::Command::new(format!("{venv}/bin/python"))
        .args(["-c", PY])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    child.stdin.take().ok_or("no stdin")?.write_all(sql.as_bytes())?;
    let out = child.wait_with_output()?;
    let text = String::from_utf8(out.stdout)?;
    let v: Vec<&str> = text.lines().last().unwrap_or_default().split_whitespace().collect();
    if v.len() < 3 {
        return Err(format!("duckdb failed: {text}").into());
    }
    Ok((v[0].parse()?, v[1].parse()?, v[2].parse()?))
}

#[tokio::main]
async fn main() -> AnyResult<()> {
    let n: usize = std::env::args().nth(1).map_or(Ok(10_000_000), |s| s.replace('_', "").parse())?;
    let cfg = RewardsConfig::default();
    let epoch = Epoch::parse(&cfg, "2026-W10")?;
    let dir = tempfile::tempdir()?;
    let root = dir.path().display().to_string();
    let lake = Lake::open(&format!("file://{root}"))?;
    let captures = n.div_ceil(CELLS_PER_CAPTURE);
    let t = Instant::now();
    for (file, first) in (0..captures).step_by(CAPTURES_PER_FILE).enumerate() {
        write_file(
            &lake,
            &epoch,
            file,
            CAPTURES_PER_FILE.min(captures - first),
            (n / 4).max(1) as u64,
            captures,
        )
        .await?;
    }
    println!(
        "data: {} observations, {captures} captures, written in {:.1} s",
        captures * CELLS_PER_CAPTURE,
        t.elapsed().as_secs_f64()
    );

    // The machine is shared: alternate the two sides a few times and compare the best of each.
    let rounds: usize = std::env::var("REWARDS_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let marker = roadhex_lake::paths::table_file(
        Table::Epochs,
        &epoch.partition(),
        &roadhex_rewards::ledger::key(&epoch.id),
    );
    let sql = duckdb_sql(&root, &cfg, &epoch, DuckOutput::Totals);
    let path = format!("{root}/duckdb-ledger.parquet");
    // [sorted like our ledger (byte-identical reruns need an order), unordered]
    let ledger_sql = [true, false]
        .map(|sorted| duckdb_sql(&root, &cfg, &epoch, DuckOutput::Ledger { path: &path, sorted }));
    let (mut best, mut best_rc, mut best_duck) = (f64::MAX, f64::MAX, f64::MAX);
    let mut best_duck_ledger = [f64::MAX; 2];
    for round in 1..=rounds {
        // Without the epochs marker the run writes the whole ledger again, as a first run does.
        lake.delete(&marker).await?;
        let marks = Mutex::new(Vec::new());
        let t = Instant::now();
        let progress =
            |s: Step| marks.lock().map(|mut m| m.push((s, t.elapsed().as_secs_f64()))).unwrap_or(());
        let report = roadhex_rewards::run_epoch(&lake, &cfg, &epoch, epoch.cutoff_ms + 1, &progress).await?;
        let total = t.elapsed().as_secs_f64();
        let m = marks.lock().map(|m| m.clone()).unwrap_or_default();
        let at = |s: Step| m.iter().find(|x| x.0 == s).map_or(0.0, |x| x.1);
        let (load, compute, write) =
            (at(Step::Computing), at(Step::Writing) - at(Step::Computing), total - at(Step::Writing));
        println!(
            "round {round}: roadhex epoch {total:.2} s (read tables {load:.2} s, flags+freshness+split+merkle {compute:.2} s, write ledger {write:.2} s); {} credits ({} flagged), {} contributors, root {}",
            report.credits, report.flagged_credits, report.contributors, report.merkle_root
        );
        let points_rust = (report.total_points * 1e6).round() as u64;
        let (duck, points_duck, credits_duck) = run_duckdb(&sql)?;
        println!(
            "round {round}: duckdb SQL (join + LAG + points, same Parquet) {duck:.2} s; {credits_duck} credits; points equal: {} ({points_rust} / {points_duck})",
            points_rust == points_duck
        );
        for (k, label) in ["sorted like our ledger", "unordered"].iter().enumerate() {
            let (secs, _, rows) = run_duckdb(&ledger_sql[k])?;
            println!(
                "round {round}: duckdb SQL writing its {rows} credit rows to zstd Parquet, {label} (no split, no flags) {secs:.2} s"
            );
            best_duck_ledger[k] = best_duck_ledger[k].min(secs);
        }
        best = best.min(total);
        best_rc = best_rc.min(load + compute);
        best_duck = best_duck.min(duck);
    }
    println!(
        "best of {rounds}: roadhex epoch {best:.2} s (read+compute {best_rc:.2} s), duckdb {best_duck:.2} s; ratio full {:.2}x, read+compute {:.2}x (goal < 30 s, <= 1.5x)",
        best / best_duck,
        best_rc / best_duck
    );
    println!(
        "best of {rounds}: duckdb writing the credit rows sorted {:.2} s, unordered {:.2} s; roadhex full epoch / those: {:.2}x, {:.2}x",
        best_duck_ledger[0],
        best_duck_ledger[1],
        best / best_duck_ledger[0],
        best / best_duck_ledger[1]
    );
    Ok(())
}
