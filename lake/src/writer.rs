//! Appends Arrow record batches to a table as Parquet files: one file per flush, partitioned by
//! UTC day, with GeoParquet metadata where the table has geometry.

use crate::error::Result;
use crate::paths;
use crate::store::Lake;
use arrow::array::RecordBatch;
use chrono::{DateTime, Utc};
use object_store::path::Path;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use roadhex_schemas::tables::{GEOMETRY_COLUMN, Table};

/// The partition value (`YYYY-MM-DD`, UTC) of a time in Unix milliseconds.
pub fn partition_date(t_ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(t_ms).unwrap_or_default().format("%Y-%m-%d").to_string()
}

/// GeoParquet 1.1 file metadata for a table's geometry column.
pub fn geoparquet_metadata(table: Table) -> Option<String> {
    let kind = table.geometry_type()?;
    Some(
        serde_json::json!({
            "version": "1.1.0",
            "primary_column": GEOMETRY_COLUMN,
            "columns": { GEOMETRY_COLUMN: { "encoding": "WKB", "geometry_types": [kind] } }
        })
        .to_string(),
    )
}

/// Rows per Parquet row group. Large groups scan fastest (one dictionary and one set of column
/// chunks per group: 64 K-row groups made full scans about 10 % slower); area filters still prune
/// inside a group through the page index (pages of 20 K rows, whose H3 min/max are tight once
/// compaction has sorted the file by cell).
pub const ROW_GROUP_ROWS: usize = 1024 * 1024;

/// Encodes batches as one Parquet file.
pub fn encode(table: Table, batches: &[RecordBatch]) -> Result<Vec<u8>> {
    let geo = geoparquet_metadata(table);
    let kv = geo.clone().map(|geo| vec![KeyValue::new("geo".to_owned(), geo)]);
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        // Page statistics (the column index) are what area filters prune with: say so explicitly.
        .set_statistics_enabled(parquet::file::properties::EnabledStatistics::Page)
        .set_key_value_metadata(kv)
        .build();
    // Readers that take the schema from the embedded Arrow schema (pyarrow, GeoPandas) find `geo`
    // there too, not only in the Parquet footer.
    let mut schema = table.schema().as_ref().clone();
    if let Some(geo) = geo {
        schema.metadata.insert("geo".to_owned(), geo);
    }
    let schema = std::sync::Arc::new(schema);
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, std::sync::Arc::clone(&schema), Some(props))?;
    for b in batches {
        w.write(&RecordBatch::try_new(std::sync::Arc::clone(&schema), b.columns().to_vec())?)?;
    }
    w.close()?;
    Ok(buf)
}

/// Writes one Parquet file of `batches` into `table`'s partition `date` under `key`.
///
/// The file appears atomically. Writing the same key again replaces the file, so a retried flush
/// with a deterministic key never duplicates rows.
pub async fn append(
    lake: &Lake,
    table: Table,
    date: &str,
    key: &str,
    batches: &[RecordBatch],
) -> Result<Path> {
    let path = paths::table_file(table, date, key);
    let bytes = encode(table, batches)?;
    lake.put(&path, bytes.into()).await?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        ArrayRef, BinaryArray, Float64Array, StringArray, TimestampMillisecondArray, UInt8Array, UInt32Array,
    };
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use std::sync::Arc;

    #[tokio::test]
    async fn writes_geoparquet() {
        let lake = Lake::open("memory://").expect("open");
        let s = Table::Telemetry.schema();
        let n = 2;
        let text = |v: &str| Arc::new(StringArray::from(vec![v; n])) as ArrayRef;
        let f64s = |v: f64| Arc::new(Float64Array::from(vec![v; n])) as ArrayRef;
        let cols: Vec<ArrayRef> = vec![
            text("c"),
            text("d"),
            Arc::new(UInt32Array::from(vec![0, 1])),
            Arc::new(TimestampMillisecondArray::from(vec![0, 1]).with_timezone("UTC")),
            f64s(45.0),
            f64s(13.0),
            f64s(0.0),
            f64s(1.0),
            f64s(2.0),
            f64s(1.0),
            Arc::new(UInt8Array::from(vec![9; n])),
            text("3d"),
            Arc::new(StringArray::from(vec![None::<&str>; n])),
            Arc::new(BinaryArray::from(vec![&roadhex_schemas::wkb::point(13.0, 45.0)[..]; n])),
        ];
        let batch = RecordBatch::try_new(s, cols).expect("batch");
        let path = append(&lake, Table::Telemetry, &partition_date(0), "k", &[batch]).await.expect("append");
        assert_eq!(path.as_ref(), "tables/telemetry/date=1970-01-01/part-k.parquet");
        let bytes = lake.get(&path).await.expect("get").expect("exists");
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).expect("reader");
        let kv = reader.metadata().file_metadata().key_value_metadata().cloned().unwrap_or_default();
        assert!(kv.iter().any(|k| k.key == "geo" && k.value.as_deref().is_some_and(|v| v.contains("Point"))));
        let rows: usize = reader.build().expect("build").map(|b| b.map(|b| b.num_rows()).unwrap_or(0)).sum();
        assert_eq!(rows, 2);
    }
}
