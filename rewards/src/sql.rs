//! The epoch's points as one SQL query over the public tables, so anyone can recompute them with
//! `roadhex sql` (DataFusion) and compare with the ledger. Fraud flags are read from the published
//! `rewards` rows (each flagged credit is listed there with its reasons).

use crate::config::RewardsConfig;
use crate::epoch::{ANCHOR_MS, Epoch};

/// Per contributor: `points` (millionths, as in `rewards.points`) and `credits` (unflagged credits),
/// ordered by contributor id. Previous epochs overlapping the refill window must have been run,
/// since their flags come from the ledger.
pub fn points_sql(cfg: &RewardsConfig, epoch: &Epoch) -> String {
    let from = epoch.start_ms - cfg.refill_ms();
    let (start, end) = (epoch.start_ms, epoch.end_ms);
    let (len, cutoff, refill) = (cfg.epoch_ms(), cfg.cutoff_ms(), cfg.refill_ms());
    let t = "CAST(f.captured_at AS BIGINT)";
    format!(
        "WITH obs AS (
  SELECT c.h3_r12, c.h3_r6, c.mount, c.capture_id, k.contributor_id, {t} AS t
  FROM coverage c
  JOIN frames f ON f.frame_id = c.frame_id
  JOIN captures k ON k.capture_id = c.capture_id
  WHERE f.quality = 'ok' AND {t} >= {from} AND {t} < {end}
    -- committed by the cutoff of the epoch the observation falls in
    AND CAST(k.committed_at AS BIGINT) <= {t} - ({t} - {ANCHOR_MS}) % {len} + {len} + {cutoff}
),
flagged AS (SELECT DISTINCT capture_id, h3_r12, mount FROM rewards WHERE flags IS NOT NULL),
valid AS (
  SELECT o.* FROM obs o
  LEFT JOIN flagged x ON x.capture_id = o.capture_id AND x.h3_r12 = o.h3_r12 AND x.mount = o.mount
  WHERE x.capture_id IS NULL
),
fresh AS (
  SELECT v.*, LAG(t) OVER (PARTITION BY h3_r12, mount ORDER BY t, capture_id) AS prev_t FROM valid v
),
credits AS (
  SELECT contributor_id, h3_r12, h3_r6,
    CASE WHEN prev_t IS NULL THEN 1.0 ELSE LEAST(1.0, CAST(t - prev_t AS DOUBLE) / {refill}.0) END AS multiplier
  FROM fresh WHERE t >= {start}
),
regions AS ({regions}),
progress AS (
  SELECT g.region, COUNT(DISTINCT cr.h3_r12) AS cells
  FROM credits cr JOIN regions g ON g.h3_r6 = cr.h3_r6 GROUP BY g.region
),
weighted AS (
  SELECT cr.contributor_id,
    CAST(round(cr.multiplier * COALESCE(g.weight, {dw:?}) * COALESCE({tier}, 1.0) * 1000000.0) AS BIGINT) AS points
  FROM credits cr LEFT JOIN regions g ON g.h3_r6 = cr.h3_r6 LEFT JOIN progress p ON p.region = g.region
)
SELECT contributor_id, SUM(points) AS points, COUNT(*) AS credits
FROM weighted GROUP BY contributor_id ORDER BY contributor_id",
        regions = regions_sql(cfg),
        dw = cfg.default_weight,
        tier = tier_sql(cfg),
    )
}

fn regions_sql(cfg: &RewardsConfig) -> String {
    let rows: Vec<String> = cfg
        .regions
        .iter()
        .flat_map(|r| {
            r.cells.iter().map(move |c| {
                let cell = u64::from_str_radix(c, 16).unwrap_or(0);
                format!("({cell}, '{}', {:?}, {})", r.name.replace('\'', "''"), r.weight, r.road_cells)
            })
        })
        .collect();
    if rows.is_empty() {
        return "SELECT CAST(0 AS BIGINT UNSIGNED) AS h3_r6, '' AS region, 1.0 AS weight, 0 AS road_cells WHERE false"
            .to_owned();
    }
    format!(
        "SELECT CAST(column1 AS BIGINT UNSIGNED) AS h3_r6, column2 AS region, column3 AS weight, \
         column4 AS road_cells FROM (VALUES {})",
        rows.join(", ")
    )
}

fn tier_sql(cfg: &RewardsConfig) -> String {
    let mut tiers = cfg.progress_tiers.clone();
    tiers.sort_by(|a, b| b.min_progress.total_cmp(&a.min_progress));
    let mut s = "CASE WHEN g.road_cells = 0 THEN 1.0".to_owned();
    for t in tiers {
        s.push_str(&format!(
            " WHEN CAST(p.cells AS DOUBLE) / CAST(g.road_cells AS DOUBLE) >= {:?} THEN {:?}",
            t.min_progress, t.multiplier
        ));
    }
    s.push_str(" ELSE 1.0 END");
    s
}
