#![allow(clippy::print_stdout)] // a report printer
//! `make bench` (tiles, issue 7): coverage vector tiles from roadhex's tile server beside PostGIS
//! `ST_AsMVT` serving the same cells as polygons, measured in the same run.
//!
//! A synthetic road network of res-12 cells (random-walk streets over ~40×40 km around Berlin) is
//! written to a temporary lake as the `coverage` table; roadhex loads its snapshot and serves
//! `GET /tiles/coverage/{z}/{x}/{y}.mvt` over loopback; every aggregated level of that snapshot is
//! loaded into a throwaway PostgreSQL + PostGIS cluster (`deploy/postgis.sh`) as `cells_r{res}`
//! polygons with a GIST index. Both then answer the same tile list from 32 concurrent clients.
//!
//! Usage: tiles_bench [--cells N] [--tiles N] [--clients N] [--seconds S] [--seed N]

use futures::SinkExt as _;
use h3o::{CellIndex, LatLng, Resolution};
use roadhex_lake::Lake;
use roadhex_schemas::tables::Table;
use roadhex_tiles::grid::{MAX_ZOOM, World, resolution_for_zoom};
use roadhex_tiles::{TileId, Tiles, TilesConfig};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Centre of the synthetic city (Berlin).
const CENTRE: (f64, f64) = (52.52, 13.405);
/// Half the side of the square the roads stay in, metres.
const HALF_SIDE_M: f64 = 20_000.0;
/// Rows per Parquet file at most.
const FILE_ROWS: usize = 500_000;
const CONTRIBUTORS: u64 = 300;

struct Args {
    cells: usize,
    tiles: usize,
    clients: usize,
    seconds: f64,
    seed: u64,
}

fn args() -> Args {
    let mut a = Args { cells: 1_000_000, tiles: 3000, clients: 32, seconds: 5.0, seed: 7 };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let v = pair.get(1).map(String::as_str).unwrap_or("");
        match pair[0].as_str() {
            "--cells" => a.cells = v.parse().unwrap_or(a.cells),
            "--tiles" => a.tiles = v.parse().unwrap_or(a.tiles),
            "--clients" => a.clients = v.parse().unwrap_or(a.clients).max(1),
            "--seconds" => a.seconds = v.parse().unwrap_or(a.seconds),
            "--seed" => a.seed = v.parse().unwrap_or(a.seed),
            other => eprintln!("ignoring unknown argument {other}"),
        }
    }
    a
}

use roadhex_schemas::rng::SplitMix64 as Rng;

/// One coverage row before it becomes Arrow columns.
struct Row {
    cell: CellIndex,
    capture: u32,
    contributor: u32,
    frame: Option<u32>,
    frames: u32,
    t_ms: i64,
}

/// Random-walk streets until `target` distinct res-12 cells are covered. Each walk is one capture
/// by one contributor, stepping ~7 m at a time (consecutive cells are neighbours); some streets
/// are driven again later by another contributor, so cells carry several rows.
fn road_network(target: usize, seed: u64, now_ms: i64) -> (Vec<Row>, usize) {
    let mut rng = Rng(seed);
    let mut seen: HashSet<CellIndex> = HashSet::with_capacity(target + target / 8);
    let mut rows: Vec<Row> = Vec::with_capacity(target + target / 2);
    let m_per_deg_lat = 111_320.0;
    let m_per_deg_lon = 111_320.0 * CENTRE.0.to_radians().cos();
    let mut capture: u32 = 0;
    let day_ms = 86_400_000.0;
    while seen.len() < target {
        // Starts cluster towards the centre (sum of uniforms), streets mostly on a N-S/E-W grid.
        let dx = (rng.unit() + rng.unit() + rng.unit() - 1.5) / 1.5 * HALF_SIDE_M;
        let dy = (rng.unit() + rng.unit() + rng.unit() - 1.5) / 1.5 * HALF_SIDE_M;
        let (mut x, mut y) = (dx, dy);
        let mut heading = (rng.below(4) as f64) * std::f64::consts::FRAC_PI_2 + (rng.unit() - 0.5) * 0.3;
        let length_m = 500.0 + rng.unit() * 6_000.0;
        let steps = (length_m / 7.0) as usize;
        let mut path: Vec<CellIndex> = Vec::with_capacity(steps / 2);
        for _ in 0..steps {
            if rng.below(120) == 0 {
                // A turn at a junction.
                heading += if rng.below(2) == 0 { 1.0 } else { -1.0 } * std::f64::consts::FRAC_PI_2;
            }
            heading += (rng.unit() - 0.5) * 0.02;
            x += 7.0 * heading.cos();
            y += 7.0 * heading.sin();
            if x.abs() > HALF_SIDE_M || y.abs() > HALF_SIDE_M {
                break;
            }
            let Ok(ll) = LatLng::new(CENTRE.0 + y / m_per_deg_lat, CENTRE.1 + x / m_per_deg_lon) else {
                break;
            };
            let c = ll.to_cell(Resolution::Twelve);
            if path.last() != Some(&c) {
                path.push(c);
            }
        }
        path.sort_unstable();
        path.dedup();
        if path.is_empty() {
            continue;
        }
        let drives = if rng.below(10) < 3 { 1 + rng.below(3) } else { 1 };
        for _ in 0..drives {
            let contributor = rng.below(CONTRIBUTORS) as u32;
            let start = now_ms - (rng.unit() * 30.0 * day_ms) as i64;
            for (i, &c) in path.iter().enumerate() {
                let frames = (rng.below(3)) as u32;
                rows.push(Row {
                    cell: c,
                    capture,
                    contributor,
                    frame: (frames > 0).then_some(i as u32),
                    frames,
                    t_ms: start + i as i64 * 1000,
                });
            }
            capture += 1;
        }
        seen.extend(path.iter().copied());
    }
    (rows, seen.len())
}

fn coverage_batch(rows: &[Row]) -> Res<arrow::array::RecordBatch> {
    use arrow::array::{ArrayRef, BinaryArray, Float64Array, StringArray, TimestampMillisecondArray};
    use arrow::array::{UInt32Array, UInt64Array};
    let parent = |r: Resolution| -> ArrayRef {
        Arc::new(UInt64Array::from_iter_values(rows.iter().map(|x| x.cell.parent(r).map_or(0, u64::from))))
    };
    let centres: Vec<LatLng> = rows.iter().map(|r| LatLng::from(r.cell)).collect();
    let cols: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| u64::from(r.cell)))),
        parent(Resolution::Ten),
        parent(Resolution::Eight),
        parent(Resolution::Six),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|_| "front"))),
        Arc::new(StringArray::from_iter(
            rows.iter().map(|r| r.frame.map(|f| format!("fr-{:07}-{f:05}", r.capture))),
        )),
        Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.frames))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| format!("cap-{:07}", r.capture)))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| format!("dev-{:04}", r.contributor)))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| format!("contrib-{:04}", r.contributor)))),
        Arc::new(
            TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| r.t_ms)).with_timezone("UTC"),
        ),
        Arc::new(Float64Array::from_iter_values(centres.iter().map(|c| c.lat()))),
        Arc::new(Float64Array::from_iter_values(centres.iter().map(|c| c.lng()))),
        Arc::new(BinaryArray::from_iter_values(
            centres.iter().map(|c| roadhex_schemas::wkb::point(c.lng(), c.lat())),
        )),
    ];
    Ok(arrow::array::RecordBatch::try_new(Table::Coverage.schema(), cols)?)
}

/// Writes the rows as date partitions (by capture time), files of at most [`FILE_ROWS`] rows.
async fn write_coverage(lake: &Lake, mut rows: Vec<Row>) -> Res<usize> {
    rows.sort_by_key(|r| r.t_ms);
    let date = |ms: i64| {
        chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
            .unwrap_or_default()
            .format("%Y-%m-%d")
            .to_string()
    };
    let mut files = 0;
    let mut i = 0;
    while i < rows.len() {
        let d = date(rows[i].t_ms);
        let end = i + rows[i..].iter().take(FILE_ROWS).take_while(|r| date(r.t_ms) == d).count();
        let batch = coverage_batch(&rows[i..end])?;
        roadhex_lake::writer::append(lake, Table::Coverage, &d, &format!("bench-{files:04}"), &[batch])
            .await?;
        files += 1;
        i = end;
    }
    Ok(files)
}

/// Distinct tiles holding data: 70 % z14–16, 30 % z8–13, each around a random covered cell.
fn tile_list(cells: &[roadhex_tiles::snapshot::Cell], want: usize, seed: u64) -> Vec<TileId> {
    let mut rng = Rng(seed ^ 0x5EED);
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(want);
    let mut tries = 0;
    while out.len() < want && tries < want * 200 && !cells.is_empty() {
        tries += 1;
        let z = if rng.below(10) < 7 { 14 + rng.below(3) } else { 8 + rng.below(6) } as u8;
        let ll = LatLng::from(cells[rng.below(cells.len() as u64) as usize].cell);
        let w = World::from_lat_lon(ll.lat(), ll.lng());
        let n = f64::from(1u32 << z);
        let Some(t) = TileId::new(z, (w.x * n) as u32, (w.y * n) as u32) else { continue };
        if seen.insert(t) {
            out.push(t);
        }
    }
    out
}

/// Features in the first layer of an encoded MVT (a minimal protobuf walk).
fn mvt_features(buf: &[u8]) -> usize {
    fn varint(b: &[u8], i: &mut usize) -> Option<u64> {
        let mut v = 0u64;
        for s in 0..10 {
            let byte = *b.get(*i)?;
            *i += 1;
            v |= u64::from(byte & 0x7F) << (7 * s);
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    /// (field, payload) of each length-delimited field; other wire types skipped.
    fn fields(b: &[u8]) -> Vec<(u64, &[u8])> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            let Some(key) = varint(b, &mut i) else { break };
            match key & 7 {
                0 => {
                    if varint(b, &mut i).is_none() {
                        break;
                    }
                }
                1 => i += 8,
                5 => i += 4,
                2 => {
                    let Some(len) = varint(b, &mut i) else { break };
                    let end = i + len as usize;
                    if end > b.len() {
                        break;
                    }
                    out.push((key >> 3, &b[i..end]));
                    i = end;
                }
                _ => break,
            }
        }
        out
    }
    fields(buf)
        .into_iter()
        .filter(|(f, _)| *f == 3)
        .map(|(_, layer)| fields(layer).iter().filter(|(f, _)| *f == 2).count())
        .sum()
}

/// One request's outcome.
#[derive(Clone, Copy)]
struct Sample {
    tile: usize,
    micros: u64,
    bytes: usize,
    features: usize,
}

struct PassResult {
    samples: Vec<Sample>,
    wall: Duration,
    errors: usize,
}

impl PassResult {
    fn tiles_per_s(&self) -> f64 {
        self.samples.len() as f64 / self.wall.as_secs_f64().max(1e-9)
    }
    fn pct(&self, p: f64) -> f64 {
        let mut v: Vec<u64> = self.samples.iter().map(|s| s.micros).collect();
        v.sort_unstable();
        if v.is_empty() {
            return 0.0;
        }
        let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
        v[i] as f64 / 1000.0
    }
    fn print(&self, name: &str) {
        let with_data: Vec<&Sample> = self.samples.iter().filter(|s| s.bytes > 0).collect();
        let mean = with_data.iter().map(|s| s.bytes).sum::<usize>() as f64 / with_data.len().max(1) as f64;
        println!(
            "{name:<34} {:>7} req  {:>9.0} tiles/s  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.1} ms  {:>7.0} B/tile{}",
            self.samples.len(),
            self.tiles_per_s(),
            self.pct(0.50),
            self.pct(0.99),
            self.pct(1.0),
            mean,
            if self.errors > 0 { format!("  ({} errors)", self.errors) } else { String::new() },
        );
    }
}

/// What a pass runs until: once over the list, or round and round it for a while.
#[derive(Clone, Copy)]
enum Until {
    OnePass,
    Seconds(f64),
}

/// Runs `clients` workers over `n` tiles; `job(worker, tile index)` does one request and returns
/// (bytes, features), or an error.
async fn run_pass<F, Fut>(n: usize, clients: usize, until: Until, job: F) -> PassResult
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Res<(usize, usize)>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let job = Arc::new(job);
    let start = Instant::now();
    let mut handles = Vec::new();
    for w in 0..clients {
        let (next, job) = (Arc::clone(&next), Arc::clone(&job));
        handles.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut errors = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                match until {
                    Until::OnePass if i >= n => break,
                    Until::Seconds(s) if start.elapsed().as_secs_f64() >= s && i >= n => break,
                    _ => {}
                }
                let tile = i % n;
                let t0 = Instant::now();
                match job(w, tile).await {
                    Ok((bytes, features)) => samples.push(Sample {
                        tile,
                        micros: t0.elapsed().as_micros() as u64,
                        bytes,
                        features,
                    }),
                    Err(e) => {
                        if errors == 0 {
                            eprintln!("request failed: {e}");
                        }
                        errors += 1;
                    }
                }
            }
            (samples, errors)
        }));
    }
    let mut out = PassResult { samples: Vec::new(), wall: Duration::ZERO, errors: 0 };
    for h in handles {
        if let Ok((s, e)) = h.await {
            out.samples.extend(s);
            out.errors += e;
        }
    }
    out.wall = start.elapsed();
    out
}

/// A throwaway PostgreSQL cluster owned by `postgres`, stopped when dropped.
struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

fn run(cmd: &mut Command) -> Res<String> {
    let out = cmd.output()?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn as_postgres(bin: &Path, tool: &str) -> Command {
    let mut c = Command::new("runuser");
    c.args(["-u", "postgres", "--"]).arg(bin.join(tool));
    c
}

impl Postgres {
    fn start() -> Res<Self> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/postgis.sh");
        let bin = PathBuf::from(run(Command::new("bash").arg(&script))?.trim());
        let dir = tempfile::Builder::new().prefix("roadhex-pg-").tempdir()?;
        let (data, sock) = (dir.path().join("data"), dir.path().join("sock"));
        std::fs::create_dir(&data)?;
        std::fs::create_dir(&sock)?;
        run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()))?;
        run(Command::new("chmod").arg("0755").arg(dir.path()))?;
        run(as_postgres(&bin, "initdb").args(["-D"]).arg(&data).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--locale=C",
        ]))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        // A tile-server configuration: no JIT for short queries, the data in shared buffers,
        // durability off (nothing here outlives the run).
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c shared_buffers=1GB -c jit=off \
             -c fsync=off -c synchronous_commit=off -c max_connections=100 -c maintenance_work_mem=512MB",
            sock.display()
        );
        let pg = Self { bin, data, port, _dir: dir };
        run(as_postgres(&pg.bin, "pg_ctl")
            .arg("-D")
            .arg(&pg.data)
            .arg("-l")
            .arg(pg.data.join("server.log"))
            .args(["-w", "-o", &opts, "start"]))?;
        Ok(pg)
    }

    async fn connect(&self) -> Res<tokio_postgres::Client> {
        let conf = format!("host=127.0.0.1 port={} user=postgres dbname=postgres", self.port);
        let (client, conn) = tokio_postgres::connect(&conf, tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                eprintln!("postgres connection: {e}");
            }
        });
        Ok(client)
    }

    fn version(&self) -> String {
        run(Command::new(self.bin.join("postgres")).arg("--version"))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let stop = as_postgres(&self.bin, "pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "fast", "-w", "stop"])
            .output();
        if let Err(e) = stop {
            eprintln!("pg_ctl stop: {e}");
        }
    }
}

/// Hex EWKB of a cell's hexagon in EPSG:3857.
fn ewkb_hex(cell: CellIndex, out: &mut String) {
    const R: f64 = 6_378_137.0;
    let ring: Vec<(f64, f64)> = cell
        .boundary()
        .iter()
        .map(|ll| {
            let lat = ll.lat().clamp(-85.051_128_78, 85.051_128_78).to_radians();
            (R * ll.lng().to_radians(), R * (std::f64::consts::FRAC_PI_4 + lat / 2.0).tan().ln())
        })
        .collect();
    let mut b = Vec::with_capacity(13 + 4 + 16 * (ring.len() + 1));
    b.push(1u8);
    b.extend((3u32 | 0x2000_0000).to_le_bytes());
    b.extend(3857u32.to_le_bytes());
    b.extend(1u32.to_le_bytes());
    b.extend((ring.len() as u32 + 1).to_le_bytes());
    for (x, y) in ring.iter().chain(ring.first()) {
        b.extend(x.to_le_bytes());
        b.extend(y.to_le_bytes());
    }
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for byte in b {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 15)]));
    }
}

/// Loads every drawn level into `cells_r{res}`; returns the row count.
async fn load_postgis(
    db: &tokio_postgres::Client,
    snap: &roadhex_tiles::Snapshot,
    levels: &[u8],
) -> Res<usize> {
    db.batch_execute("CREATE EXTENSION IF NOT EXISTS postgis").await?;
    let mut total = 0;
    for &r in levels {
        let cells = &snap.levels[usize::from(r)].cells;
        db.batch_execute(&format!(
            "DROP TABLE IF EXISTS cells_r{r}; CREATE TABLE cells_r{r} (h3 bigint, freshness float8, \
             last_captured bigint, frames bigint, contributors int, cells int, geom geometry(Polygon, 3857))"
        ))
        .await?;
        let sink = db
            .copy_in(&format!(
                "COPY cells_r{r} (h3, freshness, last_captured, frames, contributors, cells, geom) FROM STDIN"
            ))
            .await?;
        futures::pin_mut!(sink);
        let mut buf = String::with_capacity(8 << 20);
        for c in cells {
            use std::fmt::Write as _;
            let _ = write!(
                buf,
                "{}\t{}\t{}\t{}\t{}\t{}\t",
                u64::from(c.cell) as i64,
                (c.freshness * 1000.0).round() / 1000.0,
                c.last_captured_ms.div_euclid(1000),
                c.frames,
                c.contributors,
                c.cells
            );
            ewkb_hex(c.cell, &mut buf);
            buf.push('\n');
            if buf.len() > (4 << 20) {
                sink.send(bytes::Bytes::from(std::mem::take(&mut buf))).await?;
            }
        }
        if !buf.is_empty() {
            sink.send(bytes::Bytes::from(buf)).await?;
        }
        total += usize::try_from(sink.finish().await?)?;
        db.batch_execute(&format!(
            "CREATE INDEX cells_r{r}_geom ON cells_r{r} USING GIST (geom); ANALYZE cells_r{r}"
        ))
        .await?;
    }
    Ok(total)
}

fn tile_sql(r: u8) -> String {
    format!(
        "SELECT ST_AsMVT(q, 'coverage', 4096, 'geom', 'h3') FROM (SELECT h3, freshness, last_captured, \
         frames, contributors, cells, ST_AsMVTGeom(geom, ST_TileEnvelope($1, $2, $3), 4096, 64, true) AS geom \
         FROM cells_r{r} WHERE geom && ST_TileEnvelope($1, $2, $3, margin => 64.0 / 4096)) q"
    )
}

fn per_tile(pass: &PassResult, n: usize) -> Vec<Option<usize>> {
    let mut v = vec![None; n];
    for s in &pass.samples {
        v[s.tile] = Some(s.features);
    }
    v
}

#[tokio::main]
async fn main() -> Res<()> {
    let a = args();
    let now_ms = chrono::Utc::now().timestamp_millis();
    println!("tiles bench: {} res-12 cells target, {} clients, seed {}", a.cells, a.clients, a.seed);

    // --- data ---------------------------------------------------------------------------------
    let t = Instant::now();
    let (rows, distinct) = road_network(a.cells, a.seed, now_ms);
    let n_rows = rows.len();
    let gen_s = t.elapsed().as_secs_f64();
    let dir = tempfile::tempdir()?;
    let lake = Lake::open(&format!("file://{}", dir.path().display()))?;
    let t = Instant::now();
    let files = write_coverage(&lake, rows).await?;
    println!(
        "coverage: {distinct} distinct res-12 cells, {n_rows} rows, {CONTRIBUTORS} contributors, 30 days, \
         {files} files (generated {gen_s:.1} s, written {:.1} s)",
        t.elapsed().as_secs_f64()
    );

    // --- roadhex ------------------------------------------------------------------------------
    let t = Instant::now();
    let tiles = Tiles::open(lake.clone(), TilesConfig::default()).await?;
    let snap = tiles.snapshot();
    let mut levels: Vec<u8> = (0..=MAX_ZOOM).map(|z| u8::from(resolution_for_zoom(z))).collect();
    levels.dedup();
    let level_sizes: Vec<String> = levels
        .iter()
        .filter(|&&r| r >= 4)
        .map(|&r| format!("r{r} {}", snap.levels[usize::from(r)].cells.len()))
        .collect();
    println!(
        "roadhex snapshot load: {:.2} s  (levels: {})",
        t.elapsed().as_secs_f64(),
        level_sizes.join(", ")
    );
    let zoom_res: Vec<String> =
        (8..=MAX_ZOOM).map(|z| format!("z{z}→r{}", u8::from(resolution_for_zoom(z)))).collect();
    println!("zoom → resolution: {}", zoom_res.join(" "));

    let list = tile_list(&snap.levels[12].cells, a.tiles, a.seed);
    let mut by_zoom: HashMap<u8, usize> = HashMap::new();
    for t in &list {
        *by_zoom.entry(t.z).or_default() += 1;
    }
    let mut zs: Vec<_> = by_zoom.into_iter().collect();
    zs.sort_unstable();
    let zs: Vec<String> = zs.iter().map(|(z, n)| format!("z{z} {n}")).collect();
    println!("tile list: {} distinct tiles with data ({})", list.len(), zs.join(", "));
    let list = Arc::new(list);
    let n = list.len();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let router = roadhex_tiles::api::router(Arc::clone(&tiles));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            eprintln!("server: {e}");
        }
    });
    let http = reqwest::Client::builder()
        .http1_only()
        .pool_max_idle_per_host(a.clients * 2)
        .timeout(Duration::from_secs(60))
        .build()?;
    let base = format!("http://{addr}/tiles/coverage");
    let etags: Arc<Vec<std::sync::Mutex<Option<String>>>> =
        Arc::new((0..n).map(|_| Default::default()).collect());

    let roadhex_pass = |until: Until, revalidate: bool| {
        let (http, base, list, etags) = (http.clone(), base.clone(), Arc::clone(&list), Arc::clone(&etags));
        run_pass(n, a.clients, until, move |_, i| {
            let (http, list, etags) = (http.clone(), Arc::clone(&list), Arc::clone(&etags));
            let url = format!("{base}/{}/{}/{}.mvt", list[i].z, list[i].x, list[i].y);
            async move {
                let mut req = http.get(&url);
                let tag = if revalidate { etags[i].lock().ok().and_then(|g| g.clone()) } else { None };
                if let Some(tag) = tag {
                    req = req.header(reqwest::header::IF_NONE_MATCH, tag);
                }
                let resp = req.send().await?;
                let status = resp.status().as_u16();
                if !matches!(status, 200 | 204 | 304) {
                    return Err(format!("{url}: HTTP {status}").into());
                }
                if let Some(tag) = resp.headers().get(reqwest::header::ETAG).and_then(|v| v.to_str().ok())
                    && let Ok(mut g) = etags[i].lock()
                {
                    *g = Some(tag.to_owned());
                }
                let body = resp.bytes().await?;
                Ok((body.len(), mvt_features(&body)))
            }
        })
    };

    println!();
    println!("roadhex: GET /tiles/coverage/{{z}}/{{x}}/{{y}}.mvt over loopback HTTP/1.1 keep-alive");
    let cold = roadhex_pass(Until::OnePass, false).await;
    cold.print("roadhex pass 1 (cold: rendered)");
    let (hits0, misses0) = tiles.cache_stats();
    let warm = roadhex_pass(Until::Seconds(a.seconds), false).await;
    warm.print("roadhex pass 2 (warm: cache hits)");
    let (hits1, misses1) = tiles.cache_stats();
    let reval = roadhex_pass(Until::Seconds(a.seconds.min(3.0)), true).await;
    reval.print("roadhex If-None-Match (304s)");
    println!(
        "roadhex cache: pass 1 {misses0} misses / {hits0} hits; pass 2 {} misses / {} hits",
        misses1 - misses0,
        hits1 - hits0
    );

    // --- PostGIS ------------------------------------------------------------------------------
    println!();
    let t = Instant::now();
    let pg = Postgres::start()?;
    println!(
        "PostGIS: {} started in {:.1} s (127.0.0.1:{})",
        pg.version(),
        t.elapsed().as_secs_f64(),
        pg.port
    );
    let admin = pg.connect().await?;
    let t = Instant::now();
    let loaded = load_postgis(&admin, &snap, &levels).await;
    let loaded = match loaded {
        Ok(n) => n,
        Err(e) => {
            let log = std::fs::read_to_string(pg.data.join("server.log")).unwrap_or_default();
            eprintln!("PostGIS load failed: {e}\n{log}");
            return Err(e);
        }
    };
    let pg_version: String = admin
        .query_one("SELECT postgis_lib_version()", &[])
        .await
        .map_or_else(|_| String::new(), |r| r.get(0));
    println!(
        "PostGIS {pg_version} load: {loaded} cells into {} tables (COPY hex EWKB, GIST, ANALYZE) in {:.1} s",
        levels.len(),
        t.elapsed().as_secs_f64()
    );
    let mut conns = Vec::with_capacity(a.clients);
    for _ in 0..a.clients {
        let c = pg.connect().await?;
        let mut stmts = HashMap::new();
        for &r in &levels {
            stmts.insert(r, c.prepare_typed(&tile_sql(r), &[tokio_postgres::types::Type::INT4; 3]).await?);
        }
        conns.push((c, stmts));
    }
    let conns = Arc::new(conns);
    let postgis_pass = || {
        let (conns, list) = (Arc::clone(&conns), Arc::clone(&list));
        run_pass(n, a.clients, Until::OnePass, move |w, i| {
            let (conns, list) = (Arc::clone(&conns), Arc::clone(&list));
            async move {
                let t = list[i];
                let (c, stmts) = &conns[w];
                let r = u8::from(resolution_for_zoom(t.z));
                let stmt = stmts.get(&r).ok_or("no statement")?;
                let (z, x, y) = (i32::from(t.z), i32::try_from(t.x)?, i32::try_from(t.y)?);
                let row = c.query_one(stmt, &[&z, &x, &y]).await?;
                let body: Option<Vec<u8>> = row.get(0);
                let body = body.unwrap_or_default();
                Ok((body.len(), mvt_features(&body)))
            }
        })
    };
    println!("PostGIS: ST_AsMVT per tile, {} connections, prepared statements", a.clients);
    let pg1 = postgis_pass().await;
    pg1.print("PostGIS pass 1");
    let pg2 = postgis_pass().await;
    pg2.print("PostGIS pass 2 (no tile cache)");
    drop(conns);
    drop(admin);
    drop(pg);

    // --- same tiles? --------------------------------------------------------------------------
    println!();
    let ours = per_tile(&cold, n);
    let theirs = per_tile(&pg1, n);
    let has = |v: &[Option<usize>]| v.iter().filter(|f| f.is_some_and(|f| f > 0)).count();
    let (mut same, mut diff, mut only_ours, mut only_theirs) = (0, 0, 0, 0);
    let (mut f_ours, mut f_theirs) = (0usize, 0usize);
    let mut worst: Vec<(i64, TileId, usize, usize)> = Vec::new();
    for i in 0..n {
        let (o, p) = (ours[i].unwrap_or(0), theirs[i].unwrap_or(0));
        f_ours += o;
        f_theirs += p;
        match (o > 0, p > 0) {
            (true, false) => only_ours += 1,
            (false, true) => only_theirs += 1,
            _ => {}
        }
        if o == p {
            same += 1;
        } else {
            diff += 1;
            worst.push(((o as i64 - p as i64).abs(), list[i], o, p));
        }
    }
    worst.sort_by_key(|w| std::cmp::Reverse(w.0));
    println!(
        "same tiles: roadhex {} / PostGIS {} of {n} tiles with data; features {f_ours} / {f_theirs}; \
         equal feature count in {same}, different in {diff} (only roadhex {only_ours}, only PostGIS {only_theirs})",
        has(&ours),
        has(&theirs)
    );
    for (d, t, o, p) in worst.iter().take(3) {
        println!("  e.g. {}/{}/{}: roadhex {o} features, PostGIS {p} (Δ {d})", t.z, t.x, t.y);
    }

    // --- verdict ------------------------------------------------------------------------------
    println!();
    let base = pg1.tiles_per_s().max(pg2.tiles_per_s());
    println!(
        "ratio roadhex/PostGIS throughput: warm {:.2}x, cold {:.2}x (PostGIS best of 2 passes {:.0} tiles/s)",
        warm.tiles_per_s() / base,
        cold.tiles_per_s() / base,
        base
    );
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "goal ≥ 2x PostGIS throughput: warm {} ({:.2}x), cold {} ({:.2}x)",
        verdict(warm.tiles_per_s() >= 2.0 * base),
        warm.tiles_per_s() / base,
        verdict(cold.tiles_per_s() >= 2.0 * base),
        cold.tiles_per_s() / base
    );
    println!(
        "goal p99 < 50 ms: warm {} ({:.2} ms), cold {} ({:.2} ms); PostGIS p99 {:.2} ms",
        verdict(warm.pct(0.99) < 50.0),
        warm.pct(0.99),
        verdict(cold.pct(0.99) < 50.0),
        cold.pct(0.99),
        pg1.pct(0.99)
    );
    Ok(())
}
