//! Read-only SQL over the catalog and the result formats analysts ask for.

use crate::error::Result;
use datafusion::arrow::array::RecordBatch;
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::SessionContext;

/// How results are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned text table.
    Table,
    Csv,
    /// One JSON object per row, one per line.
    Json,
    Parquet,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "table" => Ok(Self::Table),
            "csv" => Ok(Self::Csv),
            "json" => Ok(Self::Json),
            "parquet" => Ok(Self::Parquet),
            _ => Err(format!("unknown format {s:?} (table, csv, json, parquet)")),
        }
    }
}

/// Runs one query with DDL, DML and other statements refused (the lake is read-only here).
pub async fn query(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
    let opts = SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false);
    Ok(ctx.sql_with_options(sql, opts).await?.collect().await?)
}

/// Writes batches in `format`.
pub fn render(batches: &[RecordBatch], format: Format) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    match format {
        Format::Table => {
            out = datafusion::arrow::util::pretty::pretty_format_batches(batches)?.to_string().into_bytes();
            out.push(b'\n');
        }
        Format::Csv => {
            let mut w = arrow::csv::WriterBuilder::new().with_header(true).build(&mut out);
            for b in batches {
                w.write(b)?;
            }
        }
        Format::Json => {
            let mut w = arrow::json::LineDelimitedWriter::new(&mut out);
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
        }
        Format::Parquet => {
            if let Some(first) = batches.first() {
                let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, first.schema(), None)?;
                for b in batches {
                    w.write(b)?;
                }
                w.close()?;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn read_only_and_formats() {
        let lake = crate::Lake::open("memory://").expect("open");
        let ctx = crate::catalog::session(&lake).expect("session");
        for bad in
            ["CREATE TABLE t AS SELECT 1", "INSERT INTO epochs SELECT * FROM epochs", "SET datafusion.x = 1"]
        {
            assert!(query(&ctx, bad).await.is_err(), "{bad} must be refused");
        }
        let rows = query(&ctx, "SELECT 1 AS a, 'x' AS b").await.expect("query");
        assert_eq!(String::from_utf8(render(&rows, Format::Csv).expect("csv")).expect("utf8"), "a,b\n1,x\n");
        assert_eq!(
            String::from_utf8(render(&rows, Format::Json).expect("json")).expect("utf8"),
            "{\"a\":1,\"b\":\"x\"}\n"
        );
        assert!(
            String::from_utf8(render(&rows, Format::Table).expect("table"))
                .expect("utf8")
                .contains("| 1 | x |")
        );
        assert!(render(&rows, Format::Parquet).expect("parquet").starts_with(b"PAR1"));
    }
}
