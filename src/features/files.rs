//! Feature files (CSV with a header, or Parquet) as the feature pipeline writes them: one
//! row per entity, the key columns and one column per feature. Read by `materialize` and
//! by the embedded in-memory store; every bad value names file, row and column.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use parquet::basic::{LogicalType, TimeUnit};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;

use super::event_time::EventTime;
use super::feast::{FeastSpec, FeastType};
use super::value::DType;
use super::view::FeatureViewSpec;

/// What the served feature views say about one group: its key columns, the dtype of
/// each feature, and for a Feast group how Feast lays it out.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GroupSchema {
    pub keys: Vec<String>,
    pub dtypes: BTreeMap<String, DType>,
    pub feast: Option<FeastSchema>,
}

/// A Feast group's layout: the declaration and each feature's Feast type.
#[derive(Debug, Clone, PartialEq)]
pub struct FeastSchema {
    pub spec: FeastSpec,
    pub types: BTreeMap<String, FeastType>,
}

/// Merges the groups of several feature views; the same group must agree on keys and
/// dtypes everywhere.
pub fn group_schemas<'a>(
    views: impl IntoIterator<Item = &'a FeatureViewSpec>,
) -> Result<BTreeMap<String, GroupSchema>, String> {
    let mut schemas: BTreeMap<String, GroupSchema> = BTreeMap::new();
    for view in views {
        for group in &view.groups {
            let feast = group.feast.as_ref().map(|spec| FeastSchema {
                spec: spec.clone(),
                types: group
                    .features
                    .iter()
                    .map(|f| {
                        (f.name.clone(), f.feast_type.unwrap_or_else(|| FeastType::default_for(f.dtype)))
                    })
                    .collect(),
            });
            let schema = schemas.entry(group.name.clone()).or_insert_with(|| GroupSchema {
                keys: group.entities.clone(),
                dtypes: BTreeMap::new(),
                feast: feast.clone(),
            });
            if schema.feast.as_ref().map(|f| &f.spec) != feast.as_ref().map(|f| &f.spec) {
                return Err(format!(
                    "feature group `{}` is laid out differently in view `{}` than elsewhere (native or Feast, \
                     project, view, key types)",
                    group.name, view.name
                ));
            }
            if let (Some(all), Some(here)) = (schema.feast.as_mut(), feast) {
                all.types.extend(here.types);
            }
            if schema.keys != group.entities {
                return Err(format!(
                    "feature group `{}` is keyed by {:?} in view `{}` but by {:?} elsewhere",
                    group.name, group.entities, view.name, schema.keys
                ));
            }
            for f in &group.features {
                if let Some(old) = schema.dtypes.insert(f.name.clone(), f.dtype)
                    && old != f.dtype
                {
                    return Err(format!(
                        "feature `{}.{}` is {} in view `{}` but {old} elsewhere",
                        group.name, f.name, f.dtype, view.name
                    ));
                }
            }
        }
    }
    Ok(schemas)
}

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error("{path} row {row}, column `{column}`: {message}")]
    BadValue { path: PathBuf, row: usize, column: String, message: String },
    #[error("{path} row {row}: {message}")]
    BadRow { path: PathBuf, row: usize, message: String },
}

/// One validated row: the entity key (key columns joined with `:`, and each key value),
/// the fields to set and the fields that are empty (to clear, so no stale value survives).
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureRow {
    pub row: usize,
    pub entity: String,
    pub keys: Vec<String>,
    pub set: Vec<(String, String)>,
    pub unset: Vec<String>,
    /// Of `unset`, the cells that held an empty string rather than null (Parquet tells
    /// them apart; in CSV every empty cell is null). Natively both are missing; Feast
    /// stores an empty string as one.
    pub empty_strings: Vec<String>,
}

type RawRows = Box<dyn Iterator<Item = Result<Vec<Option<String>>, String>>>;

pub struct FeatureFile {
    path: PathBuf,
    header: Vec<String>,
    keys: Vec<usize>,
    dtypes: Vec<Option<DType>>,
    rows: RawRows,
    row: usize,
    total: Option<u64>,
}

impl FeatureFile {
    /// Opens a CSV (`.csv`) or Parquet (`.parquet`, `.pq`) file and checks its header
    /// against the group's schema. Columns the schema does not know are loaded as-is.
    pub fn open(path: &Path, schema: &GroupSchema) -> Result<FeatureFile, FileError> {
        let open_err = |message: String| FileError::Open { path: path.to_path_buf(), message };
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        let (header, rows, total) = match ext.as_str() {
            "csv" => open_csv(path).map_err(open_err)?,
            "parquet" | "pq" => open_parquet(path).map_err(open_err)?,
            other => {
                return Err(open_err(format!("unknown feature file type `.{other}` (use .csv or .parquet)")));
            }
        };
        let keys = schema
            .keys
            .iter()
            .map(|k| {
                header.iter().position(|h| h == k).ok_or_else(|| {
                    open_err(format!("key column `{k}` is missing (columns: {})", header.join(", ")))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let dtypes = header.iter().map(|h| schema.dtypes.get(h).copied()).collect();
        Ok(FeatureFile { path: path.to_path_buf(), header, keys, dtypes, rows, row: 0, total })
    }

    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// Number of data rows, when the format records it up front.
    pub fn total_rows(&self) -> Option<u64> {
        self.total
    }

    fn validate(&self, cells: Vec<Option<String>>) -> Result<FeatureRow, FileError> {
        if cells.len() != self.header.len() {
            return Err(FileError::BadRow {
                path: self.path.clone(),
                row: self.row,
                message: format!("{} cells for {} columns", cells.len(), self.header.len()),
            });
        }
        let mut entity = String::new();
        let mut keys = Vec::with_capacity(self.keys.len());
        for (i, &k) in self.keys.iter().enumerate() {
            let Some(value) = cells[k].as_deref().filter(|v| !v.is_empty()) else {
                return Err(self.bad_value(k, "entity key is empty".into()));
            };
            if i > 0 {
                entity.push(':');
            }
            entity.push_str(value);
            keys.push(value.to_string());
        }
        let mut set = Vec::with_capacity(cells.len());
        let mut unset = Vec::new();
        let mut empty_strings = Vec::new();
        for (i, cell) in cells.into_iter().enumerate() {
            if self.keys.contains(&i) {
                continue;
            }
            if cell.as_deref() == Some("") {
                empty_strings.push(self.header[i].clone());
            }
            match cell.filter(|c| !c.is_empty()) {
                None => unset.push(self.header[i].clone()),
                Some(value) => {
                    if let Some(dtype) = self.dtypes[i] {
                        dtype.parse_stored(&value).map_err(|m| self.bad_value(i, m))?;
                    }
                    set.push((self.header[i].clone(), value));
                }
            }
        }
        Ok(FeatureRow { row: self.row, entity, keys, set, unset, empty_strings })
    }

    fn bad_value(&self, column: usize, message: String) -> FileError {
        FileError::BadValue {
            path: self.path.clone(),
            row: self.row,
            column: self.header[column].clone(),
            message,
        }
    }
}

impl Iterator for FeatureFile {
    type Item = Result<FeatureRow, FileError>;

    fn next(&mut self) -> Option<Self::Item> {
        let cells = self.rows.next()?;
        self.row += 1;
        Some(match cells {
            Ok(cells) => self.validate(cells),
            Err(message) => Err(FileError::BadRow { path: self.path.clone(), row: self.row, message }),
        })
    }
}

fn open_csv(path: &Path) -> Result<(Vec<String>, RawRows, Option<u64>), String> {
    let mut reader =
        csv::ReaderBuilder::new().has_headers(true).from_path(path).map_err(|e| e.to_string())?;
    let header: Vec<String> =
        reader.headers().map_err(|e| e.to_string())?.iter().map(str::to_string).collect();
    let rows = reader.into_records().map(|record| {
        record
            .map(|r| r.iter().map(|c| (!c.is_empty()).then(|| c.to_string())).collect())
            .map_err(|e| e.to_string())
    });
    Ok((header, Box::new(rows), None))
}

fn open_parquet(path: &Path) -> Result<(Vec<String>, RawRows, Option<u64>), String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let reader = SerializedFileReader::new(file).map_err(|e| e.to_string())?;
    let metadata = reader.metadata().file_metadata();
    let total = u64::try_from(metadata.num_rows()).ok();
    let header: Vec<String> =
        metadata.schema_descr().root_schema().get_fields().iter().map(|f| f.name().to_string()).collect();
    // Nanosecond timestamps (pandas' default) reach the row API as plain integers: the
    // schema says which integers are times.
    let nanos: Vec<bool> = metadata
        .schema_descr()
        .root_schema()
        .get_fields()
        .iter()
        .map(|f| {
            matches!(
                f.get_basic_info().logical_type_ref(),
                Some(LogicalType::Timestamp(t)) if t.unit == TimeUnit::NANOS
            )
        })
        .collect();
    let rows = reader.into_iter().map(move |row| {
        let row = row.map_err(|e| e.to_string())?;
        Ok(row
            .get_column_iter()
            .enumerate()
            .map(|(i, (_, field))| match field {
                Field::Long(ns) if nanos.get(i).copied().unwrap_or(false) => {
                    Some(time_text(ns.div_euclid(1000), 1000))
                }
                field => cell(field),
            })
            .collect())
    });
    Ok((header, Box::new(rows), total))
}

/// A Parquet cell as the string the online store will hold; null and NaN are missing.
fn cell(field: &Field) -> Option<String> {
    match field {
        Field::Null => None,
        Field::Float(f) if f.is_nan() => None,
        Field::Double(f) if f.is_nan() => None,
        Field::TimestampMillis(ms) => Some(time_text(*ms, 1_000)),
        Field::TimestampMicros(us) => Some(time_text(*us, 1)),
        Field::Float(f) => Some(f.to_string()),
        Field::Double(f) => Some(f.to_string()),
        Field::Str(s) => Some(s.clone()),
        Field::Bytes(b) => Some(String::from_utf8_lossy(b.data()).into_owned()),
        other => Some(other.to_string()),
    }
}

/// A timestamp cell (`ticks` of `micros_per_tick` microseconds since the epoch) as RFC 3339.
fn time_text(ticks: i64, micros_per_tick: i64) -> String {
    let micros = ticks.saturating_mul(micros_per_tick);
    let time = EventTime {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1000) as i32,
    };
    time.rfc3339()
}
