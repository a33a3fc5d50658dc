//! A contributor's per-epoch statements, each with a Merkle proof against the epoch's root.

use crate::epoch::rfc3339;
use crate::error::{Result, RewardsError};
use crate::merkle::{self, ProofStep};
use arrow::array::{AsArray as _, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type, UInt64Type};
use datafusion::prelude::SessionContext;
use roadhex_lake::Lake;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Statement {
    pub contributor_id: String,
    /// Newest first.
    pub epochs: Vec<EpochStatement>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EpochStatement {
    pub epoch_id: String,
    pub starts_at: String,
    pub ends_at: String,
    pub cutoff_at: String,
    pub config_version: String,
    pub amount: u64,
    /// Points (sum of `rewards.points` / 1e6).
    pub points: f64,
    pub credits: u64,
    pub flagged_credits: u64,
    /// Flagged captures: capture id → comma-separated flag codes.
    pub flagged_captures: BTreeMap<String, String>,
    pub merkle_root: String,
    pub leaf_index: usize,
    pub proof: Vec<ProofStep>,
    /// The proof verifies against `merkle_root` (see `merkle::verify`).
    pub verified: bool,
}

/// Ids reach SQL text, so only these characters pass (contributor ids are the same set ingest allows).
fn safe_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-' | b'+'))
}

async fn rows(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
    Ok(ctx.sql(sql).await?.collect().await?)
}

fn strings(b: &RecordBatch, i: usize) -> Result<Vec<Option<String>>> {
    let a = cast(b.column(i), &DataType::Utf8)?;
    Ok(a.as_string::<i32>().iter().map(|v| v.map(str::to_owned)).collect())
}

fn u64s(b: &RecordBatch, i: usize) -> Result<Vec<u64>> {
    Ok(cast(b.column(i), &DataType::UInt64)?.as_primitive::<UInt64Type>().values().to_vec())
}

fn i64s(b: &RecordBatch, i: usize) -> Result<Vec<i64>> {
    Ok(cast(b.column(i), &DataType::Int64)?.as_primitive::<Int64Type>().values().to_vec())
}

/// Statements of `contributor` for every run epoch (or just `epoch`).
pub async fn statement(lake: &Lake, contributor: &str, epoch: Option<&str>) -> Result<Statement> {
    if !safe_id(contributor) {
        return Err(RewardsError::ContributorInvalid(contributor.to_owned()));
    }
    if let Some(e) = epoch
        && !safe_id(e)
    {
        return Err(RewardsError::EpochInvalid(e.to_owned()));
    }
    let ctx = roadhex_lake::catalog::session(lake)?;
    let filter = epoch.map(|e| format!("WHERE epoch_id = '{e}'")).unwrap_or_default();
    let epochs = rows(
        &ctx,
        &format!(
            "SELECT epoch_id, CAST(starts_at AS BIGINT) AS s, CAST(ends_at AS BIGINT) AS e, CAST(cutoff_at AS BIGINT) AS c,
                    config_version, merkle_root, date FROM epochs {filter} ORDER BY s DESC"
        ),
    )
    .await?;
    let mut out = Vec::new();
    for b in &epochs {
        let (ids, versions, roots, dates) = (strings(b, 0)?, strings(b, 4)?, strings(b, 5)?, strings(b, 6)?);
        let (starts, ends, cutoffs) = (i64s(b, 1)?, i64s(b, 2)?, i64s(b, 3)?);
        for r in 0..b.num_rows() {
            let (Some(id), Some(root), Some(date)) = (&ids[r], &roots[r], &dates[r]) else { continue };
            let Some(s) = epoch_statement(&ctx, contributor, id, date, root).await? else { continue };
            out.push(EpochStatement {
                starts_at: rfc3339(starts[r]),
                ends_at: rfc3339(ends[r]),
                cutoff_at: rfc3339(cutoffs[r]),
                config_version: versions[r].clone().unwrap_or_default(),
                ..s
            });
        }
    }
    if let Some(e) = epoch
        && out.is_empty()
        && epochs.iter().all(|b| b.num_rows() == 0)
    {
        return Err(RewardsError::EpochNotRun(e.to_owned()));
    }
    Ok(Statement { contributor_id: contributor.to_owned(), epochs: out })
}

async fn epoch_statement(
    ctx: &SessionContext,
    contributor: &str,
    epoch: &str,
    date: &str,
    root: &str,
) -> Result<Option<EpochStatement>> {
    let scope = format!("date = '{date}' AND epoch_id = '{epoch}'");
    let leaves_rows = rows(
        ctx,
        &format!(
            "SELECT contributor_id, SUM(amount), SUM(points), COUNT(*), COUNT(flags) FROM rewards WHERE {scope}
             GROUP BY contributor_id"
        ),
    )
    .await?;
    let mut all: Vec<(String, u64, u64, u64, u64)> = Vec::new();
    for b in &leaves_rows {
        let (c, a, p, n, f) = (strings(b, 0)?, u64s(b, 1)?, u64s(b, 2)?, u64s(b, 3)?, u64s(b, 4)?);
        for i in 0..b.num_rows() {
            all.push((c[i].clone().unwrap_or_default(), a[i], p[i], n[i], f[i]));
        }
    }
    all.sort_by(|x, y| x.0.as_bytes().cmp(y.0.as_bytes()));
    let Some(index) = all.iter().position(|x| x.0 == contributor) else { return Ok(None) };
    let leaves: Vec<merkle::Hash> = all.iter().map(|x| merkle::leaf_hash(epoch, &x.0, x.1)).collect();
    let proof = merkle::proof(&leaves, index);
    let (_, amount, points, credits, flagged) = all[index].clone();
    let flagged_rows = rows(
        ctx,
        &format!(
            "SELECT DISTINCT capture_id, flags FROM rewards WHERE {scope} AND contributor_id = '{contributor}'
             AND flags IS NOT NULL ORDER BY capture_id"
        ),
    )
    .await?;
    let mut flagged_captures = BTreeMap::new();
    for b in &flagged_rows {
        for (c, f) in strings(b, 0)?.into_iter().zip(strings(b, 1)?) {
            if let (Some(c), Some(f)) = (c, f) {
                flagged_captures.insert(c, f);
            }
        }
    }
    let verified = merkle::verify(epoch, contributor, amount, &proof, root);
    Ok(Some(EpochStatement {
        epoch_id: epoch.to_owned(),
        starts_at: String::new(),
        ends_at: String::new(),
        cutoff_at: String::new(),
        config_version: String::new(),
        amount,
        points: points as f64 / 1e6,
        credits,
        flagged_credits: flagged,
        flagged_captures,
        merkle_root: root.to_owned(),
        leaf_index: index,
        proof,
        verified,
    }))
}
