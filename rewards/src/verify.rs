//! Cross-checks between the ledger and the public SQL, used by the simulator and tests.

use crate::config::RewardsConfig;
use crate::epoch::Epoch;
use crate::error::Result;
use arrow::array::AsArray as _;
use arrow::compute::cast;
use arrow::datatypes::{DataType, UInt64Type};
use datafusion::prelude::SessionContext;
use std::collections::BTreeMap;

type Rows = Vec<(String, Vec<u64>)>;

async fn collect(ctx: &SessionContext, sql: &str, numbers: usize) -> Result<Rows> {
    let mut out = Vec::new();
    for b in ctx.sql(sql).await?.collect().await? {
        let ids = cast(b.column(0), &DataType::Utf8)?;
        let nums = (1..=numbers)
            .map(|i| Ok(cast(b.column(i), &DataType::UInt64)?.as_primitive::<UInt64Type>().values().to_vec()))
            .collect::<Result<Vec<_>>>()?;
        for (r, id) in ids.as_string::<i32>().iter().enumerate() {
            out.push((id.unwrap_or_default().to_owned(), nums.iter().map(|n| n[r]).collect()));
        }
    }
    Ok(out)
}

/// Contributor → (points, unflagged credits) from [`crate::sql::points_sql`].
pub async fn sql_points(
    ctx: &SessionContext,
    cfg: &RewardsConfig,
    epoch: &Epoch,
) -> Result<BTreeMap<String, (u64, u64)>> {
    let rows = collect(ctx, &crate::sql::points_sql(cfg, epoch), 2).await?;
    Ok(rows.into_iter().map(|(c, n)| (c, (n[0], n[1]))).collect())
}

/// Contributor → ((points, unflagged credits), amount) from the published `rewards` rows.
pub async fn ledger_points(
    ctx: &SessionContext,
    epoch_id: &str,
) -> Result<BTreeMap<String, ((u64, u64), u64)>> {
    let sql = format!(
        "SELECT contributor_id, SUM(points), COUNT(*) - COUNT(flags), SUM(amount) FROM rewards
         WHERE epoch_id = '{}' GROUP BY contributor_id",
        epoch_id.replace('\'', "")
    );
    let rows = collect(ctx, &sql, 3).await?;
    Ok(rows.into_iter().map(|(c, n)| (c, ((n[0], n[1]), n[2]))).collect())
}
