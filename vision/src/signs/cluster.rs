//! Clusters single-frame sightings into map features. Observations are taken in (t_ms, key) order
//! and each joins the nearest feature of its class within `radius_m`; a feature's position is
//! re-fused on every join: the bearing rays are triangulated with the noisier ranges as a weaker
//! prior, robustly, in a local east/north plane.

use super::locate::{Sighting, from_local, to_local};
use roadhex_schemas::geo::haversine_m;
use roadhex_schemas::ids::sha256_hex;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};

/// One sighting of a sign, with where it was seen from.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// Unique, e.g. "{frame_id}/{box index}".
    pub key: String,
    pub class: String,
    pub contributor: String,
    pub t_ms: i64,
    pub score: f32,
    pub cam_lat: f64,
    pub cam_lon: f64,
    pub sighting: Sighting,
}

/// Clustering and noise-model knobs.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    /// Furthest an observation's single-view position may lie from a feature it joins.
    pub radius_m: f64,
    /// 1-sigma bearing error of one sighting.
    pub bearing_sigma_deg: f64,
    /// 1-sigma range error of one sighting, as a fraction of its range.
    pub range_sigma: f64,
    /// Below this spread of the cameras as seen from the sign, rays are not triangulated.
    pub min_parallax_deg: f64,
    /// Floor of [`Feature::error_m`].
    pub min_error_m: f64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            radius_m: 15.0,
            bearing_sigma_deg: 1.0,
            range_sigma: 0.2,
            min_parallax_deg: 2.0,
            min_error_m: 0.5,
        }
    }
}

/// A sign on the map, fused from its observations.
#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    pub feature_id: String,
    pub class: String,
    pub lat: f64,
    pub lon: f64,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub observations: u32,
    pub contributors: u32,
    /// In [0, 1].
    pub confidence: f64,
    /// About one sigma of the position error, metres.
    pub error_m: f64,
    /// Indices into the input slice, in (t_ms, key) order.
    pub members: Vec<usize>,
}

/// "f" and the first 16 bytes of SHA-256 over the class and the key of the feature's earliest
/// observation, in hex.
pub fn feature_id(class: &str, first_key: &str) -> String {
    let hash = sha256_hex(format!("{class}\0{first_key}").as_bytes());
    format!("f{}", &hash[..32])
}

/// Features of `obs`, sorted by id; the result does not depend on the order of `obs`.
/// Observations with non-finite numbers or a non-positive range are ignored.
pub fn cluster(obs: &[Observation], cfg: &ClusterConfig) -> Vec<Feature> {
    let mut by_class: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, o) in obs.iter().enumerate().filter(|(_, o)| usable(o)) {
        by_class.entry(o.class.as_str()).or_default().push(i);
    }
    let mut features = Vec::new();
    for (class, mut order) in by_class {
        order.sort_by(|&a, &b| earlier(&obs[a], &obs[b]));
        let mut groups: Vec<Group<'_>> = Vec::new();
        for i in order {
            let o = &obs[i];
            let nearest = groups
                .iter()
                .enumerate()
                // Two boxes of one frame are two signs.
                .filter(|(_, g)| !g.frames.contains(&(o.contributor.as_str(), o.t_ms)))
                .map(|(gi, g)| (gi, haversine_m(g.lat, g.lon, o.sighting.lat, o.sighting.lon)))
                .filter(|&(_, d)| d <= cfg.radius_m)
                .min_by(|a, b| a.1.total_cmp(&b.1));
            let gi = match nearest {
                Some((gi, _)) => gi,
                None => {
                    groups.push(Group {
                        members: Vec::new(),
                        frames: HashSet::new(),
                        lat: 0.0,
                        lon: 0.0,
                        error_m: 0.0,
                    });
                    groups.len() - 1
                }
            };
            let g = &mut groups[gi];
            g.members.push(i);
            g.frames.insert((o.contributor.as_str(), o.t_ms));
            let members: Vec<&Observation> = g.members.iter().map(|&m| &obs[m]).collect();
            (g.lat, g.lon, g.error_m) = fuse(&members, cfg);
        }
        features.extend(groups.into_iter().map(|g| feature(class, g, obs)));
    }
    features.sort_by(|a, b| a.feature_id.cmp(&b.feature_id));
    features
}

struct Group<'a> {
    members: Vec<usize>,
    frames: HashSet<(&'a str, i64)>,
    lat: f64,
    lon: f64,
    error_m: f64,
}

fn usable(o: &Observation) -> bool {
    let s = &o.sighting;
    [o.cam_lat, o.cam_lon, s.bearing_deg, s.range_m, s.lat, s.lon].iter().all(|v| v.is_finite())
        && s.range_m > 0.0
}

fn earlier(a: &Observation, b: &Observation) -> Ordering {
    (a.t_ms, &a.key, &a.contributor)
        .cmp(&(b.t_ms, &b.key, &b.contributor))
        .then(a.sighting.range_m.total_cmp(&b.sighting.range_m))
        .then(a.sighting.bearing_deg.total_cmp(&b.sighting.bearing_deg))
}

fn feature(class: &str, g: Group<'_>, obs: &[Observation]) -> Feature {
    let members: Vec<&Observation> = g.members.iter().map(|&m| &obs[m]).collect();
    let n = members.len();
    let contributors = members.iter().map(|o| o.contributor.as_str()).collect::<HashSet<_>>().len();
    let score = members.iter().map(|o| f64::from(o.score)).filter(|s| s.is_finite()).sum::<f64>() / n as f64;
    // confidence = (1 − e^(−n/4)) · (1 − 2^−(k+1)) · mean score, for n observations from k
    // contributors: it saturates with frames, and a second driver (an independent look) counts
    // more than more frames of one pass, which may all share one false detection.
    let confidence = (1.0 - (-(n as f64) / 4.0).exp())
        * (1.0 - 0.5f64.powi(contributors as i32 + 1))
        * score.clamp(0.0, 1.0);
    Feature {
        feature_id: feature_id(class, members.first().map_or("", |o| o.key.as_str())),
        class: class.to_owned(),
        lat: g.lat,
        lon: g.lon,
        first_seen_ms: members.iter().map(|o| o.t_ms).min().unwrap_or(0),
        last_seen_ms: members.iter().map(|o| o.t_ms).max().unwrap_or(0),
        observations: n as u32,
        contributors: contributors as u32,
        confidence,
        error_m: g.error_m,
        members: g.members,
    }
}

/// Huber threshold on normalised residuals, and the residual beyond which a row is dropped.
const HUBER: f64 = 1.345;
const REJECT: f64 = 3.5;
/// Floor of a ray's sigma: the box centre is somewhere on a plate about this wide.
const PLATE_M: f64 = 0.3;

/// One observation in the local plane: camera, unit ray direction and range.
struct Ray {
    cam: [f64; 2],
    dir: [f64; 2],
    range: f64,
}

impl Ray {
    fn single(&self) -> [f64; 2] {
        [self.cam[0] + self.range * self.dir[0], self.cam[1] + self.range * self.dir[1]]
    }

    fn depth(&self, p: [f64; 2]) -> f64 {
        dot(self.dir, sub(p, self.cam))
    }
}

/// Fused (lat, lon, error_m) of a group's observations (in time order).
fn fuse(members: &[&Observation], cfg: &ClusterConfig) -> (f64, f64, f64) {
    let Some(first) = members.first() else { return (0.0, 0.0, 0.0) };
    if members.len() == 1 {
        let s = &first.sighting;
        return (s.lat, s.lon, (cfg.range_sigma * s.range_m).max(cfg.min_error_m));
    }
    let (lat0, lon0) = (first.cam_lat, first.cam_lon);
    let rays: Vec<Ray> = members
        .iter()
        .map(|o| {
            let b = o.sighting.bearing_deg.to_radians();
            Ray {
                cam: to_local(lat0, lon0, o.cam_lat, o.cam_lon),
                dir: [b.sin(), b.cos()],
                range: o.sighting.range_m,
            }
        })
        .collect();
    let start = median(&rays);
    let (p, error_m) = if parallax_deg(&rays, start) < cfg.min_parallax_deg {
        (start, median_error(&rays, start, cfg))
    } else {
        triangulate(&rays, start, cfg).unwrap_or_else(|| (start, median_error(&rays, start, cfg)))
    };
    let (lat, lon) = from_local(lat0, lon0, p);
    (lat, lon, error_m)
}

/// Weighted least squares over two rows per ray: the perpendicular distance from the ray (sigma
/// grows with depth) and the depth along it against the measured range (sigma `range_sigma` of it).
/// Huber-reweighted to convergence, then rows beyond `REJECT` sigmas are dropped and it is refit.
/// `None` when singular or when the point ends up in front of fewer than two cameras.
fn triangulate(rays: &[Ray], start: [f64; 2], cfg: &ClusterConfig) -> Option<([f64; 2], f64)> {
    let bearing_sigma = cfg.bearing_sigma_deg.to_radians();
    let mut kept = vec![true; 2 * rays.len()];
    let mut p = start;
    let mut normal = [0.0; 3];
    let mut chi2 = (0.0, 0);
    for pass in 0..2 {
        for _ in 0..20 {
            let rows = rows(rays, p, bearing_sigma, cfg.range_sigma);
            let (mut n, mut v) = ([0.0; 3], [0.0; 2]);
            chi2 = (0.0, 0);
            for (row, _) in rows.iter().zip(&kept).filter(|(r, k)| **k && r.sigma > 0.0) {
                let e = (dot(row.a, p) - row.target) / row.sigma;
                let huber = if e.abs() <= HUBER { 1.0 } else { HUBER / e.abs() };
                let w = huber / (row.sigma * row.sigma);
                n = [
                    n[0] + w * row.a[0] * row.a[0],
                    n[1] + w * row.a[0] * row.a[1],
                    n[2] + w * row.a[1] * row.a[1],
                ];
                v = [v[0] + w * row.a[0] * row.target, v[1] + w * row.a[1] * row.target];
                chi2 = (chi2.0 + huber * e * e, chi2.1 + 1);
            }
            let det = n[0] * n[2] - n[1] * n[1];
            if !det.is_finite() || det <= 1e-12 * (n[0] + n[2]).powi(2) {
                return None;
            }
            normal = n;
            let next = [(n[2] * v[0] - n[1] * v[1]) / det, (n[0] * v[1] - n[1] * v[0]) / det];
            let moved = norm(sub(next, p));
            p = next;
            if moved < 1e-4 {
                break;
            }
        }
        if pass == 0 {
            let rows = rows(rays, p, bearing_sigma, cfg.range_sigma);
            for (k, row) in kept.iter_mut().zip(&rows) {
                *k = *k && (row.sigma == 0.0 || (dot(row.a, p) - row.target).abs() <= REJECT * row.sigma);
            }
        }
    }
    if rays.iter().filter(|r| r.depth(p) > 0.0).count() < 2 {
        return None;
    }
    // Covariance of the solution is the inverse normal matrix, scaled by the residual variance.
    let det = normal[0] * normal[2] - normal[1] * normal[1];
    let trace = (normal[0] + normal[2]) / det;
    let scale = if chi2.1 > 2 { chi2.0 / (chi2.1 - 2) as f64 } else { 1.0 };
    Some((p, (trace * scale).sqrt().max(cfg.min_error_m)))
}

/// A linear row `a · p = target` with its sigma; sigma 0 marks a ray the point is behind.
struct Row {
    a: [f64; 2],
    target: f64,
    sigma: f64,
}

fn rows(rays: &[Ray], p: [f64; 2], bearing_sigma: f64, range_sigma: f64) -> Vec<Row> {
    let mut rows = Vec::with_capacity(2 * rays.len());
    for r in rays {
        let depth = r.depth(p);
        let (perp, along) = if depth > 0.0 {
            ((depth * bearing_sigma).hypot(PLATE_M), (r.range * range_sigma).hypot(PLATE_M))
        } else {
            (0.0, 0.0)
        };
        let normal = [r.dir[1], -r.dir[0]];
        rows.push(Row { a: normal, target: dot(normal, r.cam), sigma: perp });
        rows.push(Row { a: r.dir, target: dot(r.dir, r.cam) + r.range, sigma: along });
    }
    rows
}

/// Per-axis weighted median of the single-view positions, weighted by 1/range² (the inverse
/// variance of a range error proportional to range).
fn median(rays: &[Ray]) -> [f64; 2] {
    let axis = |k: usize| {
        let mut v: Vec<(f64, f64)> =
            rays.iter().map(|r| (r.single()[k], 1.0 / r.range.max(1.0).powi(2))).collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        let half = v.iter().map(|x| x.1).sum::<f64>() / 2.0;
        let mut acc = 0.0;
        v.iter()
            .find(|x| {
                acc += x.1;
                acc >= half
            })
            .map_or(0.0, |x| x.0)
    };
    [axis(0), axis(1)]
}

/// Error of the median: the larger of the spread and the range noise, over √n, times the
/// median's efficiency loss (√(π/2)).
fn median_error(rays: &[Ray], p: [f64; 2], cfg: &ClusterConfig) -> f64 {
    let n = rays.len() as f64;
    let spread = (rays.iter().map(|r| norm(sub(r.single(), p)).powi(2)).sum::<f64>() / n).sqrt();
    let prior = cfg.range_sigma * rays.iter().map(|r| r.range).sum::<f64>() / n;
    (1.2533 * spread.max(prior) / n.sqrt()).max(cfg.min_error_m)
}

/// The angle the cameras span as seen from `p`, degrees.
fn parallax_deg(rays: &[Ray], p: [f64; 2]) -> f64 {
    let Some(first) = rays.first() else { return 0.0 };
    let a = sub(first.cam, p);
    let (mut lo, mut hi) = (0.0f64, 0.0f64);
    for r in rays {
        let b = sub(r.cam, p);
        let angle = (a[0] * b[1] - a[1] * b[0]).atan2(dot(a, b));
        (lo, hi) = (lo.min(angle), hi.max(angle));
    }
    (hi - lo).to_degrees()
}

fn dot(a: [f64; 2], b: [f64; 2]) -> f64 {
    a[0] * b[0] + a[1] * b[1]
}

fn sub(a: [f64; 2], b: [f64; 2]) -> [f64; 2] {
    [a[0] - b[0], a[1] - b[1]]
}

fn norm(a: [f64; 2]) -> f64 {
    a[0].hypot(a[1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signs::locate::{CameraView, PixelBox, project, sight};

    const LAT0: f64 = 48.137;
    const LON0: f64 = 11.575;

    fn at(east: f64, north: f64) -> (f64, f64) {
        from_local(LAT0, LON0, [east, north])
    }

    /// xorshift64*, uniform in [-1, 1).
    struct Noise(u64);

    impl Noise {
        fn next(&mut self) -> f64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
            (x >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        }
    }

    /// A sign: class, metres east and north of the origin.
    type Sign = (&'static str, f64, f64);

    /// One pass north along east = 0 at 10 m/s, a frame a second from `north0`, each sign boxed in
    /// every frame it is 5–40 m ahead with ±15% box size and ±2 px centre noise.
    fn drive(
        who: &str,
        north0: f64,
        t0: i64,
        frames: usize,
        signs: &[Sign],
        rng: &mut Noise,
    ) -> Vec<Observation> {
        let mut out = Vec::new();
        for k in 0..frames {
            let north = north0 + 10.0 * k as f64;
            let (lat, lon) = at(0.0, north);
            let cam = CameraView { lat, lon, heading_deg: 0.0, width: 1280, height: 720, focal_px: 1000.0 };
            for (j, &(class, e, n)) in signs.iter().enumerate() {
                if !(5.0..=40.0).contains(&(n - north)) {
                    continue;
                }
                let (slat, slon) = at(e, n);
                let b = project(&cam, slat, slon, class);
                let scale = 1.0 + 0.15 * rng.next();
                let (w, h) = (b.w * scale, b.h * scale);
                let cx = b.x + b.w / 2.0 + 2.0 * rng.next();
                let cy = b.y + b.h / 2.0 + 2.0 * rng.next();
                let noisy = PixelBox { x: cx - w / 2.0, y: cy - h / 2.0, w, h };
                let Some(sighting) = sight(&cam, &noisy, class) else { continue };
                out.push(Observation {
                    key: format!("{who}-{k}/{j}"),
                    class: class.to_owned(),
                    contributor: who.to_owned(),
                    t_ms: t0 + 1000 * k as i64,
                    score: 0.9,
                    cam_lat: lat,
                    cam_lon: lon,
                    sighting,
                });
            }
        }
        out
    }

    fn two_drivers(signs: &[Sign]) -> Vec<Observation> {
        let mut rng = Noise(0x9e37_79b9_7f4a_7c15);
        let mut obs = drive("a", 60.0, 1_000_000, 8, signs, &mut rng);
        obs.extend(drive("b", 63.0, 5_000_000, 8, signs, &mut rng));
        obs
    }

    fn miss_m(f: &Feature, sign: &Sign) -> f64 {
        let (lat, lon) = at(sign.1, sign.2);
        haversine_m(f.lat, f.lon, lat, lon)
    }

    /// Each sign has exactly one feature of its class, within `tol_m`.
    fn assert_found(features: &[Feature], signs: &[Sign], tol_m: f64) {
        assert_eq!(features.len(), signs.len(), "{features:#?}");
        for sign in signs {
            let near: Vec<&Feature> =
                features.iter().filter(|f| f.class == sign.0 && miss_m(f, sign) < tol_m).collect();
            assert_eq!(near.len(), 1, "{sign:?}: {features:#?}");
        }
    }

    #[test]
    fn two_passes_two_signs() {
        let signs = [("speed_limit_50", 3.5, 100.0), ("children_warning", 3.8, 130.0)];
        let obs = two_drivers(&signs);
        let features = cluster(&obs, &ClusterConfig::default());
        assert_found(&features, &signs, 2.0);
        for f in &features {
            assert_eq!((f.observations, f.contributors), (8, 2), "{f:?}");
            assert!(f.error_m >= 0.5 && f.error_m < 2.0, "{f:?}");
            assert!(f.confidence > 0.5 && f.confidence < 1.0, "{f:?}");
            assert_eq!(f.first_seen_ms, obs[f.members[0]].t_ms);
            assert!(f.last_seen_ms >= 5_000_000);
            assert_eq!(f.feature_id, feature_id(&f.class, &obs[f.members[0]].key));
        }
    }

    #[test]
    fn keeps_distinct_signs_apart() {
        let stacked = [("speed_limit_50", 3.5, 100.0), ("no_overtaking", 3.5, 100.0)];
        assert_found(&cluster(&two_drivers(&stacked), &ClusterConfig::default()), &stacked, 2.0);
        let apart = [("speed_limit_50", 3.5, 100.0), ("speed_limit_50", 3.5, 140.0)];
        let mut rng = Noise(7);
        let obs = drive("a", 60.0, 0, 12, &apart, &mut rng);
        assert_found(&cluster(&obs, &ClusterConfig::default()), &apart, 2.0);
    }

    #[test]
    fn input_order_does_not_matter() {
        let obs = two_drivers(&[("speed_limit_50", 3.5, 100.0), ("children_warning", 3.8, 130.0)]);
        let mut shuffled = obs.clone();
        let mut rng = Noise(42);
        for i in (1..shuffled.len()).rev() {
            let j = ((rng.next() + 1.0) / 2.0 * (i + 1) as f64) as usize;
            shuffled.swap(i, j.min(i));
        }
        let cfg = ClusterConfig::default();
        let summary = |features: Vec<Feature>, obs: &[Observation]| {
            features
                .into_iter()
                .map(|f| {
                    let keys: Vec<String> = f.members.iter().map(|&m| obs[m].key.clone()).collect();
                    (
                        f.feature_id,
                        f.lat.to_bits(),
                        f.lon.to_bits(),
                        f.error_m.to_bits(),
                        f.confidence.to_bits(),
                        keys,
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_ne!(obs, shuffled);
        assert_eq!(summary(cluster(&obs, &cfg), &obs), summary(cluster(&shuffled, &cfg), &shuffled));
    }

    #[test]
    fn one_bad_range_does_not_drag_the_feature() {
        let sign = ("speed_limit_50", 3.5, 100.0);
        let obs = two_drivers(&[sign]);
        let cfg = ClusterConfig::default();
        let clean = cluster(&obs, &cfg);
        assert_found(&clean, &[sign], 2.0);
        // 3× too short from 10 m joins the feature; 3× too long from 40 m lands 80 m off, alone.
        for (key, factor) in [("a-3/0", 1.0 / 3.0), ("a-0/0", 3.0)] {
            let mut bad = obs.clone();
            let o = bad.iter_mut().find(|o| o.key == key).unwrap();
            o.sighting.range_m *= factor;
            (o.sighting.lat, o.sighting.lon) = roadhex_schemas::geo::destination(
                o.cam_lat,
                o.cam_lon,
                o.sighting.bearing_deg,
                o.sighting.range_m,
            );
            let features = cluster(&bad, &cfg);
            let main = features.iter().max_by_key(|f| f.observations).unwrap();
            let moved = haversine_m(main.lat, main.lon, clean[0].lat, clean[0].lon);
            assert!(moved < 1.0, "{key}: moved {moved} m");
            assert_eq!(main.observations, if factor < 1.0 { 8 } else { 7 }, "{key}: {features:#?}");
        }
    }

    #[test]
    fn standing_still_falls_back_to_the_median() {
        let sign = ("stop", 3.0, 120.0);
        let mut rng = Noise(11);
        let mut obs: Vec<Observation> =
            (0..6).flat_map(|k| drive("a", 100.0, k * 1000, 1, &[sign], &mut rng)).collect();
        for (k, o) in obs.iter_mut().enumerate() {
            o.key = format!("a-{k}/0");
        }
        let features = cluster(&obs, &ClusterConfig::default());
        assert_found(&features, &[sign], 3.0);
        assert!(features[0].error_m > 1.0, "{features:?}");
    }

    #[test]
    fn single_observation_and_ids() {
        let obs = drive("a", 95.0, 0, 1, &[("stop", 3.0, 120.0)], &mut Noise(3));
        let f = &cluster(&obs, &ClusterConfig::default())[0];
        assert!((f.error_m - 0.2 * obs[0].sighting.range_m).abs() < 1e-9);
        assert_eq!((f.lat, f.lon), (obs[0].sighting.lat, obs[0].sighting.lon));
        assert_eq!(feature_id("stop", "x/0"), feature_id("stop", "x/0"));
        assert_ne!(feature_id("stop", "x/0"), feature_id("yield", "x/0"));
        assert_eq!(feature_id("stop", "x/0").len(), 33);
    }
}
