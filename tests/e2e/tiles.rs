//! Tiles, imagery, area queries and the web map, through a node that ran the real pipeline:
//! tiles are decoded with geozero (not the encoder we serve with) and checked against the tables.

use crate::support::*;
use geo::Area as _;
use geozero::ToGeo as _;
use geozero::mvt::{Message as _, Tile, tile};
use h3o::{CellIndex, LatLng, Resolution};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::str::FromStr as _;
use std::time::{Duration, Instant};

/// Normalized Web Mercator, as the MVT spec's tile grid uses it.
fn world(lat: f64, lon: f64) -> (f64, f64) {
    let r = lat.to_radians();
    ((lon + 180.0) / 360.0, (1.0 - (r.tan() + 1.0 / r.cos()).ln() / std::f64::consts::PI) / 2.0)
}

pub(crate) fn tile_of(z: u8, lat: f64, lon: f64) -> (u32, u32) {
    let (x, y) = world(lat, lon);
    let n = f64::from(1u32 << z);
    ((x * n) as u32, (y * n) as u32)
}

/// Position in tile units (extent 4096).
fn local(z: u8, t: (u32, u32), lat: f64, lon: f64) -> (f64, f64) {
    let (x, y) = world(lat, lon);
    let n = f64::from(1u32 << z);
    ((x * n - f64::from(t.0)) * 4096.0, (y * n - f64::from(t.1)) * 4096.0)
}

pub(crate) fn props(layer: &tile::Layer, f: &tile::Feature) -> BTreeMap<String, Value> {
    f.tags
        .chunks(2)
        .map(|kv| {
            let v = &layer.values[kv[1] as usize];
            let value = if let Some(s) = &v.string_value {
                json!(s)
            } else if let Some(d) = v.double_value {
                json!(d)
            } else if let Some(u) = v.uint_value {
                json!(u)
            } else {
                json!(v.int_value.or(v.sint_value))
            };
            (layer.keys[kv[0] as usize].clone(), value)
        })
        .collect()
}

pub(crate) struct Client<'a>(pub(crate) &'a Server);

impl Client<'_> {
    pub(crate) fn get(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::blocking::Response {
        let mut r = self.0.http().get(format!("{}{path}", self.0.url));
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.send().expect("get")
    }

    /// The decoded layer of a tile, or None on 204.
    pub(crate) fn tile(&self, layer: &str, z: u8, t: (u32, u32)) -> Option<tile::Layer> {
        let r = self.get(&format!("/tiles/{layer}/{z}/{}/{}.mvt", t.0, t.1), &[]);
        if r.status() == 204 {
            return None;
        }
        assert_eq!(r.status(), 200, "{layer} {z}/{t:?}");
        assert_eq!(r.headers()["content-type"], "application/vnd.mapbox-vector-tile");
        let tile = Tile::decode(r.bytes().expect("body")).expect("decode MVT");
        assert_eq!(tile.layers.len(), 1);
        let l = tile.layers.into_iter().next().expect("layer");
        assert_eq!((l.name.as_str(), l.version, l.extent), (layer, 2, Some(4096)));
        Some(l)
    }

    pub(crate) fn post(&self, path: &str, body: &Value) -> reqwest::blocking::Response {
        self.0.http().post(format!("{}{path}", self.0.url)).json(body).send().expect("post")
    }
}

pub(crate) fn sql(data: &std::path::Path, q: &str) -> Vec<Value> {
    let out = roadhex_ok(&["sql", "--data", data.to_str().expect("utf8"), "--format", "json-array", q]);
    serde_json::from_str(&out).expect("sql json")
}

/// Uploads the Udacity frames along the street track and waits until vision published them.
fn publish(server: &Server) -> String {
    let key = server.register_device("tess");
    let frames = frames();
    let m = manifest(&key, 1, &frames);
    let opened: Value = server.post_manifest(&key, &m.to_bytes()).json().expect("json");
    let id = opened["capture_id"].as_str().expect("capture id").to_owned();
    for (b, s) in &frames {
        assert_eq!(server.put_frame(&id, s, b.clone()).status(), 201);
    }
    assert_eq!(server.commit(&id).status(), 202);
    let s = crate::vision::wait_for(server, &id, &["published", "rejected"], 600, 300);
    assert_eq!(s["state"], "published", "{s}");
    id
}

#[test]
fn tiles_imagery_queries_and_web_map_show_the_tables() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let config = tmp.path().join("node.toml");
    std::fs::write(&config, "[tiles]\nrefresh_s = 1\n").expect("config");
    let server =
        Server::start_roles(&data, "ingest,vision,tiles", &["--config", config.to_str().expect("utf8")]);
    let c = Client(&server);
    let capture = publish(&server);

    let frames = sql(
        &data,
        "SELECT frame_id, lat, lon, heading, captured_at, h3_r12 FROM frames ORDER BY frame_index",
    );
    let cover = sql(
        &data,
        "SELECT h3_r12, sum(frame_count) AS frames, CAST(max(to_unixtime(captured_at)) AS BIGINT) AS last \
         FROM coverage GROUP BY h3_r12",
    );
    assert!(frames.len() >= 5 && !cover.is_empty(), "{frames:?} {cover:?}");
    let cells: BTreeMap<u64, u64> = cover
        .iter()
        .map(|r| (r["h3_r12"].as_u64().expect("cell"), r["frames"].as_u64().expect("frames")))
        .collect();
    let last: BTreeMap<u64, i64> = cover
        .iter()
        .map(|r| (r["h3_r12"].as_u64().expect("cell"), r["last"].as_i64().expect("last")))
        .collect();
    let (lat0, lon0) = (frames[0]["lat"].as_f64().expect("lat"), frames[0]["lon"].as_f64().expect("lon"));

    // The node picks up new table files within its refresh period.
    let r12 = CellIndex::try_from(frames[0]["h3_r12"].as_u64().expect("cell")).expect("cell");
    let deadline = Instant::now() + Duration::from_secs(30);
    let listed = loop {
        let v: Value = c.get(&format!("/v1/cells/{r12}/frames"), &[]).json().expect("json");
        if v["total"].as_u64() > Some(0) || Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(listed["frames"][0]["id"].as_str().is_some(), "{listed}");

    // Coverage at z16: res-12 hexagons, one per table cell, exact geometry and attributes.
    let t16 = tile_of(16, lat0, lon0);
    let layer = c.tile("coverage", 16, t16).expect("coverage tile");
    let mut seen = BTreeSet::new();
    for f in &layer.features {
        assert_eq!(f.r#type, Some(tile::GeomType::Polygon as i32));
        let p = props(&layer, f);
        let cell = CellIndex::from_str(p["h3"].as_str().expect("h3")).expect("cell");
        assert_eq!(f.id, Some(u64::from(cell)));
        assert_eq!(cell.resolution(), Resolution::Twelve);
        let expected = cells.get(&u64::from(cell)).unwrap_or_else(|| panic!("{cell} is not in the table"));
        assert_eq!(p["frames"], json!(expected), "{cell}");
        assert_eq!((p["contributors"].clone(), p["cells"].clone()), (json!(1), json!(1)));
        // The test drive is months old, so its cells have refilled (7 days) to freshness 1.
        assert_eq!(p["last_captured"], json!(last[&u64::from(cell)]), "{cell}");
        assert_eq!(p["freshness"], json!(1.0), "{cell}");
        let geo::Geometry::Polygon(poly) = f.to_geo().expect("geometry") else { panic!("not a polygon") };
        assert!(poly.signed_area() > 0.0, "exterior rings are clockwise in tile coordinates (MVT 2.1)");
        let boundary = cell.boundary();
        for ll in boundary.iter() {
            let (x, y) = local(16, t16, ll.lat(), ll.lng());
            if (0.0..4096.0).contains(&x) && (0.0..4096.0).contains(&y) {
                let near = poly.exterior().coords().any(|c| (c.x - x).abs() <= 1.0 && (c.y - y).abs() <= 1.0);
                assert!(near, "{cell}: vertex ({x:.1}, {y:.1}) missing from the tile");
            }
        }
        seen.insert(u64::from(cell));
    }
    for cell in cells.keys() {
        let ll = LatLng::from(CellIndex::try_from(*cell).expect("cell"));
        if tile_of(16, ll.lat(), ll.lng()) == t16 {
            assert!(seen.contains(cell), "table cell {cell:x} missing from the tile");
        }
    }

    // A coarser zoom aggregates to parents: each hexagon counts exactly its res-12 children.
    let t10 = tile_of(10, lat0, lon0);
    let layer = c.tile("coverage", 10, t10).expect("z10 coverage");
    let mut counted = 0;
    for f in &layer.features {
        let p = props(&layer, f);
        let parent = CellIndex::from_str(p["h3"].as_str().expect("h3")).expect("cell");
        assert!(parent.resolution() < Resolution::Twelve);
        let kids: Vec<u64> = cells
            .keys()
            .copied()
            .filter(|c| {
                CellIndex::try_from(*c).ok().and_then(|c| c.parent(parent.resolution())) == Some(parent)
            })
            .collect();
        assert_eq!(p["cells"], json!(kids.len()), "{parent}");
        assert_eq!(p["frames"], json!(kids.iter().map(|k| cells[k]).sum::<u64>()));
        counted += kids.len();
    }
    assert_eq!(counted, cells.len(), "every covered cell is inside one z10 parent hexagon");

    // Frames at z16: points where the table puts them, with id and heading.
    let layer = c.tile("frames", 16, t16).expect("frames tile");
    let got: BTreeMap<String, (f64, f64, f64)> = layer
        .features
        .iter()
        .map(|f| {
            let p = props(&layer, f);
            let geo::Geometry::Point(pt) = f.to_geo().expect("geometry") else { panic!("not a point") };
            (
                p["id"].as_str().expect("id").to_owned(),
                (pt.x(), pt.y(), p["heading"].as_f64().expect("heading")),
            )
        })
        .collect();
    for fr in &frames {
        let (lat, lon) = (fr["lat"].as_f64().expect("lat"), fr["lon"].as_f64().expect("lon"));
        if tile_of(16, lat, lon) != t16 {
            continue;
        }
        let id = fr["frame_id"].as_str().expect("id");
        let (x, y, heading) = got.get(id).copied().unwrap_or_else(|| panic!("frame {id} missing"));
        let (ex, ey) = local(16, t16, lat, lon);
        assert!((x - ex).abs() <= 1.0 && (y - ey).abs() <= 1.0, "{id}: ({x}, {y}) vs ({ex}, {ey})");
        assert!((heading - fr["heading"].as_f64().expect("heading")).abs() < 0.1);
    }
    assert!(c.tile("frames", 13, tile_of(13, lat0, lon0)).is_none(), "frames start at z14");

    // The track, and no features yet (signs are another stage).
    let layer = c.tile("sequences", 14, tile_of(14, lat0, lon0)).expect("sequences tile");
    let p = props(&layer, &layer.features[0]);
    assert_eq!(p["capture_id"], json!(capture));
    assert_eq!(p["frames"], json!(frames.len()));
    assert!(c.tile("features", 16, t16).is_none());
    assert!(c.tile("coverage", 16, (0, 0)).is_none(), "empty tiles are 204");

    // HTTP behaviour: ETag + 304, gzip, TileJSON, refusals with codes.
    let path = format!("/tiles/coverage/16/{}/{}.mvt", t16.0, t16.1);
    let first = c.get(&path, &[]);
    let etag = first.headers()["etag"].to_str().expect("etag").to_owned();
    let raw = first.bytes().expect("body");
    assert_eq!(c.get(&path, &[("if-none-match", &etag)]).status(), 304);
    let gz = c.get(&path, &[("accept-encoding", "gzip")]);
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    assert_ne!(gz.headers()["etag"].to_str().expect("etag"), etag, "each encoding has its own ETag");
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&gz.bytes().expect("body")[..]).read_to_end(&mut unzipped).expect("gunzip");
    assert_eq!(unzipped, raw.to_vec());
    let tj: Value = c.get("/tiles/coverage.json", &[]).json().expect("tilejson");
    assert_eq!(tj["tilejson"], "3.0.0");
    assert!(tj["tiles"][0].as_str().is_some_and(|u| u.ends_with("/tiles/coverage/{z}/{x}/{y}.mvt")), "{tj}");
    assert_eq!(tj["vector_layers"][0]["id"], "coverage");
    assert!(tj["vector_layers"][0]["fields"]["freshness"].is_string());
    let b = tj["bounds"].as_array().expect("bounds");
    assert!(b[0].as_f64() <= Some(lon0) && b[2].as_f64() >= Some(lon0), "{tj}");
    for (path, status, code) in [
        ("/tiles/coverage/17/0/0.mvt", 400, "bad_tile"),
        ("/tiles/coverage/2/4/0.mvt", 400, "bad_tile"),
        ("/tiles/coverage/2/1/1.png", 400, "bad_tile"),
        ("/tiles/roads/2/1/1.mvt", 404, "unknown_layer"),
        ("/tiles/roads.json", 404, "unknown_layer"),
    ] {
        assert_refused(c.get(path, &[]), status, code);
    }

    // Imagery: the published bytes, never a raw object.
    let id0 = frames[0]["frame_id"].as_str().expect("id");
    let jpg = c.get(&format!("/v1/frames/{id0}.jpg"), &[]);
    assert_eq!(jpg.headers()["content-type"], "image/jpeg");
    let etag = jpg.headers()["etag"].to_str().expect("etag").to_owned();
    let published = std::fs::read(data.join(format!("frames/{capture}/0000.jpg"))).expect("published");
    assert_eq!(jpg.bytes().expect("body").to_vec(), published);
    assert_eq!(c.get(&format!("/v1/frames/{id0}.jpg"), &[("if-none-match", &etag)]).status(), 304);
    let raw_sha = &crate::support::frames()[0].1;
    for path in [
        format!("/v1/frames/{raw_sha}.jpg"),
        format!("/v1/frames/..%2Fraw%2Fcaptures%2F{capture}%2Fframes%2F{raw_sha}.jpg"),
        format!("/v1/frames/{capture}-9999.jpg"),
    ] {
        assert_refused(c.get(&path, &[]), 404, "frame_not_found");
    }

    // Frames per cell, newest first, at any resolution.
    let r8 = r12.parent(Resolution::Eight).expect("parent");
    let v: Value = c.get(&format!("/v1/cells/{r8}/frames?limit=3"), &[]).json().expect("json");
    assert_eq!(v["total"], json!(frames.len()));
    let times: Vec<&str> = v["frames"]
        .as_array()
        .expect("frames")
        .iter()
        .map(|f| f["captured_at"].as_str().expect("t"))
        .collect();
    assert_eq!(times.len(), 3);
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");
    assert_refused(c.get("/v1/cells/zz/frames", &[]), 400, "bad_cell");

    // Area queries: nearest first around a point, newest first in a polygon, paged, capped.
    let (lat2, lon2) = (frames[2]["lat"].as_f64().expect("lat"), frames[2]["lon"].as_f64().expect("lon"));
    let near: Value =
        c.post("/v1/query/frames", &json!({"point": [lon2, lat2], "radius_m": 25.0})).json().expect("json");
    assert_eq!(near["features"][0]["id"], frames[2]["frame_id"], "{near}");
    assert!(near["features"][0]["properties"]["distance_m"].as_f64().is_some_and(|d| d < 0.5));
    let (d, e) = (0.01, 0.01);
    let square = json!({"type": "Polygon", "coordinates": [[[lon0 - e, lat0 - d], [lon0 + e, lat0 - d],
        [lon0 + e, lat0 + d], [lon0 - e, lat0 + d], [lon0 - e, lat0 - d]]]});
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let page: Value = c
            .post("/v1/query/frames", &json!({"geometry": square, "limit": 2, "cursor": cursor}))
            .json()
            .expect("json");
        ids.extend(
            page["features"]
                .as_array()
                .expect("features")
                .iter()
                .map(|f| f["id"].as_str().expect("id").to_owned()),
        );
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    let expected: Vec<String> =
        frames.iter().rev().map(|f| f["frame_id"].as_str().expect("id").to_owned()).collect();
    assert_eq!(ids, expected, "every frame once, newest first");
    let features: Value = c.post("/v1/query/features", &json!({"geometry": square})).json().expect("json");
    assert_eq!(features["features"], json!([]));
    assert_refused(
        c.post("/v1/query/frames", &json!({"point": [lon0, lat0], "radius_m": 5000.0})),
        422,
        "area_too_large",
    );
    assert_refused(c.post("/v1/query/frames", &json!({"point": [lon0, lat0]})), 400, "bad_query");
    let api = server.openapi();
    for p in [
        "/tiles/{layer}/{z}/{x}/{y}.mvt",
        "/v1/frames/{id}.jpg",
        "/v1/query/frames",
        "/v1/cells/{cell}/frames",
    ] {
        assert!(api["paths"].get(p).is_some(), "openapi lacks {p}");
    }

    // The web map in headless Chromium: loads, draws tiles, a click shows the nearest frame.
    let page = c.get("/", &[]).text().expect("index");
    assert!(page.contains("maplibre-gl.js"));
    assert_eq!(c.get("/web/maplibre-gl.js", &[]).status(), 200, "web assets not installed (make setup)");
    let artifacts = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifacts dir");
    let shot = artifacts.join("web-map.png");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web/map_test.mjs");
    let out = std::process::Command::new("node")
        .arg(script)
        .args([server.url.as_str(), &lat0.to_string(), &lon0.to_string(), shot.to_str().expect("utf8")])
        .output()
        .expect("run node (make setup installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "browser test failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap_or("{}")).expect("report json");
    assert!(report["tile_responses"].as_u64() > Some(0), "{report}");
    assert!(report["coverage_features"].as_u64() > Some(0), "{report}");
    assert_eq!(report["frame_id"], frames[0]["frame_id"], "{report}");
    assert_eq!(report["image_width"], json!(960));
    assert!(
        std::fs::metadata(&shot).is_ok_and(|m| m.len() > 10_000),
        "screenshot kept at {}",
        shot.display()
    );
}
