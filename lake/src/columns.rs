//! Typed column access on query results, whatever physical type DataFusion chose (string views
//! or plain strings, any integer width): the readers of every stage use these.

use crate::error::Result;
use arrow::array::{
    Array, ArrayRef, AsArray as _, PrimitiveArray, RecordBatch, StringArray, StringViewArray,
};
use arrow::compute::cast;
use arrow::datatypes::{ArrowPrimitiveType, DataType};
use arrow::error::ArrowError;

/// A column by name, or a schema error naming it.
pub fn column<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    b.column_by_name(name)
        .ok_or_else(|| ArrowError::SchemaError(format!("query result has no column {name:?}")).into())
}

/// A string column (view or plain), read without copying views.
#[derive(Debug)]
pub enum Text {
    Plain(StringArray),
    View(StringViewArray),
}

impl Text {
    pub fn value(&self, i: usize) -> &str {
        match self {
            Self::Plain(a) => a.value(i),
            Self::View(a) => a.value(i),
        }
    }

    pub fn is_null(&self, i: usize) -> bool {
        match self {
            Self::Plain(a) => a.is_null(i),
            Self::View(a) => a.is_null(i),
        }
    }
}

pub fn text(b: &RecordBatch, name: &str) -> Result<Text> {
    let a = column(b, name)?;
    if let Some(v) = a.as_string_view_opt() {
        return Ok(Text::View(v.clone()));
    }
    Ok(Text::Plain(cast(a, &DataType::Utf8)?.as_string::<i32>().clone()))
}

/// A numeric (or timestamp) column cast to `T`.
pub fn prim<T: ArrowPrimitiveType>(b: &RecordBatch, name: &str) -> Result<PrimitiveArray<T>> {
    Ok(cast(column(b, name)?, &T::DATA_TYPE)?.as_primitive::<T>().clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int32Array, StringArray};
    use arrow::datatypes::{Field, Int64Type, Schema};
    use std::sync::Arc;

    #[test]
    fn reads_any_width_and_string_kind() {
        let schema =
            Schema::new(vec![Field::new("n", DataType::Int32, false), Field::new("s", DataType::Utf8, true)]);
        let b = RecordBatch::try_new(
            Arc::new(schema),
            vec![Arc::new(Int32Array::from(vec![7])), Arc::new(StringArray::from(vec![Some("a")]))],
        )
        .expect("batch");
        assert_eq!(prim::<Int64Type>(&b, "n").expect("n").value(0), 7);
        assert_eq!(text(&b, "s").expect("s").value(0), "a");
        assert!(column(&b, "missing").is_err());
    }
}
