//! Area queries over published frames and map features: a GeoJSON polygon, or a point and a
//! radius, capped in area, answered newest first (polygon) or nearest first (point), in pages.

use crate::error::{Result, TilesError};
use crate::grid::{World, key_range};
use crate::snapshot::Snapshot;
use geo::{ChamberlainDuquetteArea as _, Contains as _};
use roadhex_schemas::geo::haversine_m;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

/// Body of `POST /v1/query/frames` and `POST /v1/query/features`: `geometry` or `point` + `radius_m`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AreaQuery {
    /// A GeoJSON `Polygon` or `MultiPolygon` (lon, lat; CRS84).
    #[schema(value_type = Option<Object>)]
    pub geometry: Option<Value>,
    /// `[lon, lat]` of a point; results come nearest first.
    pub point: Option<[f64; 2]>,
    /// Radius around `point`, metres.
    pub radius_m: Option<f64>,
    /// Results per page (default 100, at most 1000).
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// The region a query covers.
enum Region {
    Polygon(geo::MultiPolygon<f64>),
    Circle { lat: f64, lon: f64, radius_m: f64 },
}

impl Region {
    fn parse(q: &AreaQuery, max_km2: f64) -> Result<Self> {
        let region = match (&q.geometry, q.point, q.radius_m) {
            (Some(g), None, None) => Region::Polygon(multipolygon(g)?),
            (None, Some([lon, lat]), Some(r)) => {
                check_position(lon, lat)?;
                if !(r.is_finite() && r > 0.0) {
                    return Err(TilesError::BadQuery(format!("radius_m must be a positive number, not {r}")));
                }
                Region::Circle { lat, lon, radius_m: r }
            }
            (None, Some(_), None) => return Err(TilesError::BadQuery("point needs radius_m".into())),
            _ => {
                return Err(TilesError::BadQuery(
                    "give either geometry (a GeoJSON Polygon) or point [lon, lat] with radius_m".into(),
                ));
            }
        };
        let area_km2 = match &region {
            Region::Polygon(p) => p.chamberlain_duquette_unsigned_area() / 1e6,
            Region::Circle { radius_m, .. } => std::f64::consts::PI * radius_m * radius_m / 1e6,
        };
        if area_km2 > max_km2 {
            return Err(TilesError::AreaTooLarge { area_km2, max_km2 });
        }
        Ok(region)
    }

    /// (lat0, lon0, lat1, lon1).
    fn bounds(&self) -> (f64, f64, f64, f64) {
        match self {
            Region::Polygon(p) => {
                let mut b = (90.0f64, 180.0f64, -90.0f64, -180.0f64);
                for c in p.0.iter().flat_map(|poly| poly.exterior().coords()) {
                    b = (b.0.min(c.y), b.1.min(c.x), b.2.max(c.y), b.3.max(c.x));
                }
                b
            }
            Region::Circle { lat, lon, radius_m } => {
                let dlat = radius_m / 111_320.0;
                let dlon = radius_m / (111_320.0 * lat.to_radians().cos().max(1e-6));
                (lat - dlat, lon - dlon, lat + dlat, lon + dlon)
            }
        }
    }

    /// Sort key (smaller first) if the position is inside: distance in mm or negated time.
    fn rank(&self, lat: f64, lon: f64, t_ms: i64) -> Option<i64> {
        match self {
            Region::Polygon(p) => p.contains(&geo::Point::new(lon, lat)).then_some(-t_ms),
            Region::Circle { lat: clat, lon: clon, radius_m } => {
                let d = haversine_m(*clat, *clon, lat, lon);
                (d <= *radius_m).then_some((d * 1000.0).round() as i64)
            }
        }
    }

    fn distance_m(&self, lat: f64, lon: f64) -> Option<f64> {
        match self {
            Region::Polygon(_) => None,
            Region::Circle { lat: clat, lon: clon, .. } => Some(haversine_m(*clat, *clon, lat, lon)),
        }
    }
}

fn check_position(lon: f64, lat: f64) -> Result<()> {
    if lon.is_finite() && lat.is_finite() && (-180.0..=180.0).contains(&lon) && (-90.0..=90.0).contains(&lat)
    {
        Ok(())
    } else {
        Err(TilesError::BadQuery(format!("position [{lon}, {lat}] is not [lon, lat] in degrees")))
    }
}

fn ring(v: &Value) -> Result<geo::LineString<f64>> {
    let bad = || TilesError::BadQuery("a ring is an array of [lon, lat] positions".into());
    let pts = v.as_array().ok_or_else(bad)?;
    let mut out = Vec::with_capacity(pts.len());
    for p in pts {
        let xy = p.as_array().filter(|a| a.len() >= 2).ok_or_else(bad)?;
        let (lon, lat) = (xy[0].as_f64().ok_or_else(bad)?, xy[1].as_f64().ok_or_else(bad)?);
        check_position(lon, lat)?;
        out.push(geo::coord! { x: lon, y: lat });
    }
    if out.len() < 4 || out.first() != out.last() {
        return Err(TilesError::BadQuery(
            "a ring needs at least 4 positions, the last equal to the first".into(),
        ));
    }
    Ok(geo::LineString::new(out))
}

fn polygon(rings: &Value) -> Result<geo::Polygon<f64>> {
    let rings = rings
        .as_array()
        .filter(|r| !r.is_empty())
        .ok_or_else(|| TilesError::BadQuery("Polygon coordinates are an array of rings".into()))?;
    let exterior = ring(&rings[0])?;
    let holes = rings[1..].iter().map(ring).collect::<Result<Vec<_>>>()?;
    Ok(geo::Polygon::new(exterior, holes))
}

fn multipolygon(g: &Value) -> Result<geo::MultiPolygon<f64>> {
    // A GeoJSON Feature is accepted for its geometry.
    let g = if g.get("type").and_then(Value::as_str) == Some("Feature") { &g["geometry"] } else { g };
    let coords = &g["coordinates"];
    match g.get("type").and_then(Value::as_str) {
        Some("Polygon") => Ok(geo::MultiPolygon::new(vec![polygon(coords)?])),
        Some("MultiPolygon") => {
            let polys = coords.as_array().ok_or_else(|| {
                TilesError::BadQuery("MultiPolygon coordinates are an array of polygons".into())
            })?;
            Ok(geo::MultiPolygon::new(polys.iter().map(polygon).collect::<Result<_>>()?))
        }
        other => Err(TilesError::BadQuery(format!("geometry type {other:?} is not Polygon or MultiPolygon"))),
    }
}

/// Morton key ranges that hold every point inside the bounds.
fn ranges(b: (f64, f64, f64, f64)) -> Vec<(u64, u64)> {
    let a = World::from_lat_lon(b.2, b.1); // north-west
    let c = World::from_lat_lon(b.0, b.3); // south-east
    let span = (c.x - a.x).max(c.y - a.y).max(1e-12);
    // The deepest zoom whose tiles are at least as large as the query: at most 2x2 tiles.
    let z = ((1.0 / span).log2().floor() as i64).clamp(0, 16) as u8;
    let n = f64::from(1u32 << z);
    let (x0, x1) = ((a.x * n) as u32, (c.x * n) as u32);
    let (y0, y1) = ((a.y * n) as u32, (c.y * n) as u32);
    let mut out = Vec::new();
    for x in x0..=x1 {
        for y in y0..=y1 {
            out.push(key_range(z, x, y));
        }
    }
    out
}

/// Parses `"{rank}.{id}"`.
fn parse_cursor(c: &str) -> Result<(i64, String)> {
    let bad = || TilesError::BadCursor(c.to_owned());
    let (rank, id) = c.split_once('.').ok_or_else(bad)?;
    Ok((rank.parse().map_err(|_| bad())?, id.to_owned()))
}

/// One page of ranked hits: `(rank, id, index)` sorted, after the cursor, plus the next cursor.
fn page(mut hits: Vec<(i64, &str, usize)>, q: &AreaQuery) -> Result<(Vec<usize>, Option<String>)> {
    hits.sort_unstable();
    let start = match &q.cursor {
        Some(c) => {
            let (rank, id) = parse_cursor(c)?;
            hits.partition_point(|h| (h.0, h.1) <= (rank, id.as_str()))
        }
        None => 0,
    };
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let end = (start + limit).min(hits.len());
    let next = (end < hits.len() && end > start).then(|| format!("{}.{}", hits[end - 1].0, hits[end - 1].1));
    Ok((hits[start..end].iter().map(|h| h.2).collect(), next))
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339()
}

/// A GeoJSON point Feature; around a point, its distance joins the properties.
fn point_feature(region: &Region, id: &str, lat: f64, lon: f64, mut props: Value) -> Value {
    if let Some(d) = region.distance_m(lat, lon) {
        props["distance_m"] = json!((d * 100.0).round() / 100.0);
    }
    json!({ "type": "Feature", "id": id,
            "geometry": { "type": "Point", "coordinates": [lon, lat] }, "properties": props })
}

fn collection(features: Vec<Value>, next: Option<String>) -> Value {
    json!({ "type": "FeatureCollection", "features": features, "next_cursor": next })
}

/// Published frames in the region, as a GeoJSON FeatureCollection with `next_cursor`.
pub fn frames(s: &Snapshot, q: &AreaQuery, max_km2: f64) -> Result<Value> {
    let region = Region::parse(q, max_km2)?;
    let mut hits = Vec::new();
    for (lo, hi) in ranges(region.bounds()) {
        let a = s.frames_by_key.partition_point(|e| e.0 < lo);
        let b = s.frames_by_key.partition_point(|e| e.0 < hi);
        for &(_, i) in &s.frames_by_key[a..b] {
            let f = &s.frames[i as usize];
            if let Some(rank) = region.rank(f.lat, f.lon, f.t_ms) {
                hits.push((rank, &*f.id, i as usize));
            }
        }
    }
    let (items, next) = page(hits, q)?;
    let features = items
        .into_iter()
        .map(|i| {
            let f = &s.frames[i];
            let props = json!({
                "id": &*f.id,
                "capture_id": &*s.captures[f.capture as usize],
                "frame_index": f.index,
                "captured_at": rfc3339(f.t_ms),
                "heading": f.heading,
                "h3_r12": format!("{:x}", f.h3_r12),
                "url": format!("/v1/frames/{}.jpg", f.id),
            });
            point_feature(&region, &f.id, f.lat, f.lon, props)
        })
        .collect();
    Ok(collection(features, next))
}

/// Map features in the region, as a GeoJSON FeatureCollection with `next_cursor`.
pub fn features(s: &Snapshot, q: &AreaQuery, max_km2: f64) -> Result<Value> {
    let region = Region::parse(q, max_km2)?;
    let mut hits = Vec::new();
    for (lo, hi) in ranges(region.bounds()) {
        let a = s.features.partition_point(|f| f.key < lo);
        let b = s.features.partition_point(|f| f.key < hi);
        for (i, f) in s.features[a..b].iter().enumerate() {
            if let Some(rank) = region.rank(f.lat, f.lon, f.last_seen_ms) {
                hits.push((rank, &*f.id, a + i));
            }
        }
    }
    let (items, next) = page(hits, q)?;
    let features = items
        .into_iter()
        .map(|i| {
            let f = &s.features[i];
            let props = json!({
                "id": &*f.id, "class": &*f.class,
                "first_seen": rfc3339(f.first_seen_ms), "last_seen": rfc3339(f.last_seen_ms),
                "observations": f.observations, "contributors": f.contributors,
                "confidence": f.confidence, "error_m": f.error_m,
            });
            point_feature(&region, &f.id, f.lat, f.lon, props)
        })
        .collect();
    Ok(collection(features, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(v: Value) -> AreaQuery {
        serde_json::from_value(v).expect("query")
    }

    #[test]
    fn area_cap_and_shapes() {
        let big = q(json!({"point": [-122.4, 37.7], "radius_m": 2000.0}));
        assert!(matches!(Region::parse(&big, 5.0), Err(TilesError::AreaTooLarge { .. })));
        let ok = q(json!({"point": [-122.4, 37.7], "radius_m": 1000.0}));
        assert!(Region::parse(&ok, 5.0).is_ok());
        // About 1.1 km x 0.9 km.
        let poly = q(json!({"geometry": {"type": "Polygon", "coordinates":
            [[[-122.42, 37.77], [-122.41, 37.77], [-122.41, 37.78], [-122.42, 37.78], [-122.42, 37.77]]]}}));
        let r = Region::parse(&poly, 5.0).expect("polygon");
        assert!(r.rank(37.775, -122.415, 5).is_some() && r.rank(37.79, -122.415, 5).is_none());
        let open = q(json!({"geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1]]]}}));
        assert!(matches!(Region::parse(&open, 5.0), Err(TilesError::BadQuery(_))));
        assert!(matches!(Region::parse(&q(json!({"point": [0, 0]})), 5.0), Err(TilesError::BadQuery(_))));
    }

    #[test]
    fn pages_follow_the_cursor() {
        let hits = vec![(3, "c", 2), (1, "a", 0), (2, "b", 1), (2, "bb", 3)];
        let mut query = q(json!({"point": [0, 0], "radius_m": 1, "limit": 2}));
        let (first, next) = page(hits.clone(), &query).expect("page");
        assert_eq!(first, vec![0, 1]);
        query.cursor = next;
        let (second, next) = page(hits.clone(), &query).expect("page");
        assert_eq!((second, next), (vec![3, 2], None));
        query.cursor = Some("x".into());
        assert!(page(hits, &query).is_err());
    }
}
