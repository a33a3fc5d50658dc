//! H3 scalar functions for SQL: `h3_cell(lat, lon, res)`, `h3_parent(cell, res)`,
//! `h3_to_string(cell)`, `h3_boundary_wkt(cell)`, `h3_distance(a, b)`. Cells are the raw 64-bit
//! indexes the tables store (UInt64); an invalid input gives NULL, not an error.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, StringArray, UInt64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type, UInt64Type};
use datafusion::error::Result;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};
use datafusion::prelude::SessionContext;
use h3o::{CellIndex, LatLng, Resolution};
use std::sync::Arc;

/// Registers every H3 function on the session.
pub fn register(ctx: &SessionContext) {
    // PostGIS-style ST_* functions (geometry columns are WKB: wrap them in ST_GeomFromWKB).
    geodatafusion::register(ctx);
    for f in [h3_cell(), h3_parent(), h3_to_string(), h3_boundary_wkt(), h3_distance()] {
        ctx.register_udf(f);
    }
}

fn arrays(args: &[ColumnarValue], types: &[DataType]) -> Result<Vec<ArrayRef>> {
    let arrays = ColumnarValue::values_to_arrays(args)?;
    arrays.iter().zip(types).map(|(a, t)| Ok(cast(a, t)?)).collect()
}

fn cell(v: u64) -> Option<CellIndex> {
    CellIndex::try_from(v).ok()
}

fn res(v: i64) -> Option<Resolution> {
    u8::try_from(v).ok().and_then(|r| Resolution::try_from(r).ok())
}

fn udf(
    name: &str,
    inputs: Vec<DataType>,
    output: DataType,
    f: impl Fn(&[ArrayRef]) -> Result<ArrayRef> + Send + Sync + 'static,
) -> ScalarUDF {
    let types = inputs.clone();
    create_udf(
        name,
        inputs,
        output,
        Volatility::Immutable,
        Arc::new(move |args: &[ColumnarValue]| Ok(ColumnarValue::Array(f(&arrays(args, &types)?)?))),
    )
}

fn h3_cell() -> ScalarUDF {
    udf("h3_cell", vec![DataType::Float64, DataType::Float64, DataType::Int64], DataType::UInt64, |a| {
        let (lat, lon, r) = (
            a[0].as_primitive::<Float64Type>(),
            a[1].as_primitive::<Float64Type>(),
            a[2].as_primitive::<Int64Type>(),
        );
        let out: UInt64Array = (0..lat.len())
            .map(|i| {
                if lat.is_null(i) || lon.is_null(i) || r.is_null(i) {
                    return None;
                }
                let (y, x) = (lat.value(i), lon.value(i));
                if !((-90.0..=90.0).contains(&y) && (-180.0..=180.0).contains(&x)) {
                    return None;
                }
                let ll = LatLng::new(y, x).ok()?;
                Some(u64::from(ll.to_cell(res(r.value(i))?)))
            })
            .collect();
        Ok(Arc::new(out))
    })
}

fn h3_parent() -> ScalarUDF {
    udf("h3_parent", vec![DataType::UInt64, DataType::Int64], DataType::UInt64, |a| {
        let (c, r) = (a[0].as_primitive::<UInt64Type>(), a[1].as_primitive::<Int64Type>());
        let out: UInt64Array = (0..c.len())
            .map(|i| {
                if c.is_null(i) || r.is_null(i) {
                    return None;
                }
                cell(c.value(i))?.parent(res(r.value(i))?).map(u64::from)
            })
            .collect();
        Ok(Arc::new(out))
    })
}

fn h3_to_string() -> ScalarUDF {
    udf("h3_to_string", vec![DataType::UInt64], DataType::Utf8, |a| {
        let c = a[0].as_primitive::<UInt64Type>();
        let out: StringArray = (0..c.len())
            .map(|i| (!c.is_null(i)).then(|| cell(c.value(i)).map(|x| x.to_string())).flatten())
            .collect();
        Ok(Arc::new(out))
    })
}

fn h3_boundary_wkt() -> ScalarUDF {
    udf("h3_boundary_wkt", vec![DataType::UInt64], DataType::Utf8, |a| {
        let c = a[0].as_primitive::<UInt64Type>();
        let out: StringArray = (0..c.len())
            .map(|i| {
                let x = cell(c.value(i)).filter(|_| !c.is_null(i))?;
                let ring: Vec<String> =
                    x.boundary().iter().map(|p| format!("{} {}", p.lng(), p.lat())).collect();
                let first = ring.first()?.clone();
                Some(format!("POLYGON(({}, {first}))", ring.join(", ")))
            })
            .collect();
        Ok(Arc::new(out))
    })
}

fn h3_distance() -> ScalarUDF {
    udf("h3_distance", vec![DataType::UInt64, DataType::UInt64], DataType::Int64, |a| {
        let (x, y) = (a[0].as_primitive::<UInt64Type>(), a[1].as_primitive::<UInt64Type>());
        let out: Int64Array = (0..x.len())
            .map(|i| {
                if x.is_null(i) || y.is_null(i) {
                    return None;
                }
                cell(x.value(i))?.grid_distance(cell(y.value(i))?).ok().map(i64::from)
            })
            .collect();
        Ok(Arc::new(out))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::util::pretty::pretty_format_batches;

    #[tokio::test]
    async fn h3_functions() {
        let ctx = SessionContext::new();
        register(&ctx);
        let sql = "SELECT h3_to_string(h3_cell(37.7749, -122.4194, 9)) AS c9, \
                   h3_to_string(h3_parent(h3_cell(37.7749, -122.4194, 12), 9)) AS p9, \
                   h3_distance(h3_cell(37.7749, -122.4194, 12), h3_cell(37.7749, -122.4194, 12)) AS d0, \
                   h3_cell(95.0, 0.0, 12) AS bad, \
                   h3_boundary_wkt(h3_cell(37.7749, -122.4194, 9)) AS wkt";
        let rows = ctx.sql(sql).await.expect("plan").collect().await.expect("run");
        let text = pretty_format_batches(&rows).expect("fmt").to_string();
        // San Francisco at res 9: h3-py's latlng_to_cell(37.7749, -122.4194, 9).
        assert!(text.contains("| 89283082803ffff | 89283082803ffff | 0  |"), "{text}");
        assert!(text.contains("POLYGON((-122.4"), "{text}");
        let batch = &rows[0];
        assert!(batch.column(3).is_null(0), "latitude 95 has no cell");
    }
}
