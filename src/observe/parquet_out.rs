//! Columns to a Parquet file (snappy, every column nullable), in row groups.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use parquet::basic::{Compression, LogicalType, Repetition, TimeUnit, Type as Physical};
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int32Type, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;

/// Rows per row group: large enough to compress well, small enough to read in parts.
const ROW_GROUP: usize = 65_536;

#[derive(Debug, Clone, PartialEq)]
pub enum ColumnData {
    Str(Vec<Option<String>>),
    F64(Vec<Option<f64>>),
    I64(Vec<Option<i64>>),
    I32(Vec<Option<i32>>),
    /// Microseconds since the epoch, UTC.
    Timestamp(Vec<Option<i64>>),
}

impl ColumnData {
    pub fn len(&self) -> usize {
        match self {
            ColumnData::Str(v) => v.len(),
            ColumnData::F64(v) => v.len(),
            ColumnData::I64(v) | ColumnData::Timestamp(v) => v.len(),
            ColumnData::I32(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub data: ColumnData,
}

fn field(column: &Column) -> Result<Arc<Type>, String> {
    let (physical, logical) = match column.data {
        ColumnData::Str(_) => (Physical::BYTE_ARRAY, Some(LogicalType::String)),
        ColumnData::F64(_) => (Physical::DOUBLE, None),
        ColumnData::I64(_) => (Physical::INT64, None),
        ColumnData::I32(_) => (Physical::INT32, None),
        ColumnData::Timestamp(_) => (Physical::INT64, Some(LogicalType::timestamp(true, TimeUnit::MICROS))),
    };
    Type::primitive_type_builder(&column.name, physical)
        .with_repetition(Repetition::OPTIONAL)
        .with_logical_type(logical)
        .build()
        .map(Arc::new)
        .map_err(|e| format!("column {}: {e}", column.name))
}

/// The present values of `part` and a definition level per row (1 present, 0 null).
fn split<T: Clone, U>(part: &[Option<T>], convert: impl Fn(&T) -> U) -> (Vec<U>, Vec<i16>) {
    let values = part.iter().flatten().map(convert).collect();
    let levels = part.iter().map(|v| i16::from(v.is_some())).collect();
    (values, levels)
}

/// Writes `columns` (all of one length) to `path`.
pub fn write(path: &Path, columns: &[Column]) -> Result<(), String> {
    let rows = columns.first().map_or(0, |c| c.data.len());
    if columns.iter().any(|c| c.data.len() != rows) {
        return Err("columns of different lengths".into());
    }
    let fields = columns.iter().map(field).collect::<Result<Vec<_>, _>>()?;
    let schema = Arc::new(
        Type::group_type_builder("prediction_log").with_fields(fields).build().map_err(|e| e.to_string())?,
    );
    let props = Arc::new(WriterProperties::builder().set_compression(Compression::SNAPPY).build());
    let file = File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let mut writer = SerializedFileWriter::new(file, schema, props).map_err(|e| e.to_string())?;
    let err = |e: parquet::errors::ParquetError| e.to_string();
    let mut start = 0;
    while start < rows || (rows == 0 && start == 0) {
        let end = (start + ROW_GROUP).min(rows);
        let mut group = writer.next_row_group().map_err(err)?;
        for column in columns {
            let Some(mut out) = group.next_column().map_err(err)? else { break };
            match &column.data {
                ColumnData::Str(v) => {
                    let (values, levels) = split(&v[start..end], |s| ByteArray::from(s.as_str()));
                    out.typed::<ByteArrayType>().write_batch(&values, Some(&levels), None).map_err(err)?;
                }
                ColumnData::F64(v) => {
                    let (values, levels) = split(&v[start..end], |x| *x);
                    out.typed::<DoubleType>().write_batch(&values, Some(&levels), None).map_err(err)?;
                }
                ColumnData::I64(v) | ColumnData::Timestamp(v) => {
                    let (values, levels) = split(&v[start..end], |x| *x);
                    out.typed::<Int64Type>().write_batch(&values, Some(&levels), None).map_err(err)?;
                }
                ColumnData::I32(v) => {
                    let (values, levels) = split(&v[start..end], |x| *x);
                    out.typed::<Int32Type>().write_batch(&values, Some(&levels), None).map_err(err)?;
                }
            }
            out.close().map_err(err)?;
        }
        group.close().map_err(err)?;
        if end == rows {
            break;
        }
        start = end;
    }
    writer.close().map_err(err)?;
    Ok(())
}
