//! `fti-serve transform`: the serving path's feature assembly, offline. The training
//! pipeline runs it over its point-in-time rows so that on-demand features are computed
//! by the very code that serves them (no training/serving skew).
//!
//! Each row goes through the same fill as a served request (`FeatureView::fill_request`
//! and `fill_groups`): request features are read as a client's values, group features as
//! the online store holds them (text, parsed by dtype; a value that does not parse is
//! missing), a group none of whose features is present is a missing entity under the
//! group's `on_missing` policy, and defaults fill the rest. The file format decides only
//! what "absent" is: an empty CSV cell (as `materialize` deletes the field for one), a
//! JSON `null` or a missing key.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use crate::Error;
use crate::features::view::GroupRead;
use crate::features::{DType, FeatureView, RequestValue, Value};
use crate::transform::Frame;

#[derive(Debug, Clone)]
pub struct TransformArgs {
    pub feature_view: PathBuf,
    pub input: PathBuf,
    /// `-` for standard output.
    pub output: PathBuf,
    /// Write the kept columns and exactly the model input vector (instead of every input
    /// column plus the on-demand ones).
    pub model_input: bool,
    /// Columns passed through unchanged, first (with `--model-input`).
    pub keep: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TransformCliError {
    #[error("{0}")]
    Setup(String),
    #[error("{path} row {row}, {what}")]
    Row { path: PathBuf, row: usize, what: String },
    #[error("writing {path}: {message}")]
    Write { path: PathBuf, message: String },
}

/// One cell as the file holds it.
enum Cell {
    Text(String),
    Json(Json),
}

/// One input row: column names with their cells.
struct Row {
    cells: Vec<(String, Cell)>,
}

impl Row {
    fn cell(&self, name: &str) -> Option<&Cell> {
        self.cells.iter().find(|(k, _)| k == name).map(|(_, c)| c)
    }

    /// The cell as text, `None` when absent (an empty CSV cell, JSON null).
    fn text(&self, name: &str) -> Option<String> {
        self.cell(name).and_then(Cell::text)
    }

    /// The cell as a client would have sent it as a request value of `dtype`.
    fn request_value(&self, name: &str, dtype: DType) -> RequestValue {
        match self.cell(name) {
            None => RequestValue::Null,
            Some(Cell::Json(v)) => RequestValue::from(v.clone()),
            Some(Cell::Text(t)) if t.is_empty() => RequestValue::Null,
            Some(Cell::Text(t)) => text_request_value(t, dtype),
        }
    }
}

impl Cell {
    fn text(&self) -> Option<String> {
        match self {
            Cell::Text(t) if t.is_empty() => None,
            Cell::Text(t) => Some(t.clone()),
            Cell::Json(Json::Null) => None,
            Cell::Json(Json::String(s)) => Some(s.clone()),
            Cell::Json(other) => Some(other.to_string()),
        }
    }
}

/// CSV carries no types: a cell is read as the JSON value a client would send for the
/// feature's dtype (a number for numbers, `true`/`false` for bools). Text that is not
/// one stays text, which the feature then refuses as a served request would.
fn text_request_value(text: &str, dtype: DType) -> RequestValue {
    match dtype {
        DType::Float | DType::Int => {
            text.trim().parse::<f64>().map_or_else(|_| RequestValue::Str(text.to_string()), RequestValue::Num)
        }
        DType::Bool => match text.trim() {
            "true" | "True" | "TRUE" => RequestValue::Bool(true),
            "false" | "False" | "FALSE" => RequestValue::Bool(false),
            _ => RequestValue::Str(text.to_string()),
        },
        DType::String => RequestValue::Str(text.to_string()),
    }
}

/// Fills and computes one row's frame exactly as serving does.
fn fill_row(view: &FeatureView, row: &Row, stored_value_errors: &mut usize) -> Result<Frame, Error> {
    let mut frame = view.new_frame();
    let mut missing = Vec::new();
    let request: Vec<(String, RequestValue)> =
        view.request.iter().map(|f| (f.name.to_string(), row.request_value(&f.name, f.dtype))).collect();
    view.fill_request(&mut frame, &request, "", &mut missing)?;
    // Entity keys only name the entity in messages here; no store is read.
    let entities: Vec<String> =
        view.entities.iter().map(|e| row.text(e).unwrap_or_else(|| "?".to_string())).collect();
    let mut values = Vec::with_capacity(view.groups.len());
    let mut keys = Vec::with_capacity(view.groups.len());
    for plan in &view.groups {
        let stored: Vec<Option<String>> = plan.fields.iter().map(|f| row.text(&f.name)).collect();
        let (group, bad) = plan.from_texts(stored);
        *stored_value_errors += bad;
        values.push(GroupRead::from_values(group));
        keys.push(plan.entity_key(&entities));
    }
    view.fill_groups(&mut frame, &values, &keys, &mut missing)?;
    view.compute(&mut frame);
    Ok(frame)
}

/// A fill error as `column `x`: message` where it names a feature.
fn describe(error: &Error) -> String {
    match error {
        Error::InvalidInput { field, message } => {
            let column = field.strip_prefix("features.").unwrap_or(field);
            format!("column `{column}`: {message}")
        }
        Error::FeatureMissing { feature, .. } => format!("column `{feature}`: {error}"),
        other => other.to_string(),
    }
}

pub fn run(args: &TransformArgs) -> Result<usize, TransformCliError> {
    let spec = super::read_feature_view(&args.feature_view).map_err(TransformCliError::Setup)?;
    let view = FeatureView::compile(spec).map_err(|e| TransformCliError::Setup(e.to_string()))?;
    let rows = read_rows(&args.input)?;
    let out_json = is_jsonl(&args.output);
    let write_err = |e: &dyn std::fmt::Display| TransformCliError::Write {
        path: args.output.clone(),
        message: e.to_string(),
    };
    let sink: Box<dyn Write> = if args.output.as_os_str() == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(File::create(&args.output).map_err(|e| write_err(&e))?)
    };
    let sink = BufWriter::new(sink);

    let input_columns: Vec<String> =
        rows.first().map(|r| r.cells.iter().map(|(k, _)| k.clone()).collect()).unwrap_or_default();
    for keep in &args.keep {
        if !input_columns.is_empty() && !input_columns.contains(keep) {
            return Err(TransformCliError::Setup(format!(
                "--keep column `{keep}` is not in {}",
                args.input.display()
            )));
        }
    }
    let header: Vec<String> = if args.model_input {
        args.keep.iter().cloned().chain(view.input_names().iter().cloned()).collect()
    } else {
        input_columns.iter().cloned().chain(view.on_demand_columns()).collect()
    };
    let mut out = if out_json {
        Output::Jsonl(sink)
    } else {
        let mut w = csv::Writer::from_writer(sink);
        w.write_record(&header).map_err(|e| write_err(&e))?;
        Output::Csv(Box::new(w))
    };
    let mut stored_value_errors = 0;
    for (i, row) in rows.iter().enumerate() {
        let frame = fill_row(&view, row, &mut stored_value_errors).map_err(|e| TransformCliError::Row {
            path: args.input.clone(),
            row: i + 1,
            what: describe(&e),
        })?;
        let computed: Vec<Value> = if args.model_input {
            view.input_values(&frame).map(|(_, v)| Value::Num(v)).collect()
        } else {
            view.on_demand_values(&frame)
        };
        let passed: Vec<Option<String>> = if args.model_input {
            args.keep.iter().map(|k| row.text(k)).collect()
        } else {
            row.cells.iter().map(|(_, c)| c.text()).collect()
        };
        match &mut out {
            Output::Csv(w) => {
                let cells =
                    passed.into_iter().map(Option::unwrap_or_default).chain(computed.iter().map(cell_text));
                w.write_record(cells).map_err(|e| write_err(&e))?;
            }
            Output::Jsonl(w) => {
                let values = passed
                    .into_iter()
                    .map(|p| p.map_or(Json::Null, Json::String))
                    .chain(computed.iter().map(cell_json));
                let object: serde_json::Map<String, Json> = header.iter().cloned().zip(values).collect();
                writeln!(w, "{}", Json::Object(object)).map_err(|e| write_err(&e))?;
            }
        }
    }
    match out {
        Output::Csv(mut w) => w.flush().map_err(|e| write_err(&e))?,
        Output::Jsonl(mut w) => w.flush().map_err(|e| write_err(&e))?,
    }
    if stored_value_errors > 0 {
        // Served requests count these in fti_stored_value_errors_total.
        tracing::warn!(
            values = stored_value_errors,
            "group feature values did not parse as their dtype and were treated as missing"
        );
    }
    Ok(rows.len())
}

enum Output {
    Csv(Box<csv::Writer<BufWriter<Box<dyn Write>>>>),
    Jsonl(BufWriter<Box<dyn Write>>),
}

fn is_jsonl(path: &Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()), Some("jsonl" | "ndjson"))
}

/// Numbers in their shortest exact form; NaN (missing) as an empty cell.
fn cell_text(v: &Value) -> String {
    match v {
        Value::Num(n) if n.is_nan() => String::new(),
        Value::Num(n) => n.to_string(),
        Value::Str(s) => s.clone(),
    }
}

fn cell_json(v: &Value) -> Json {
    match v {
        Value::Num(n) => serde_json::Number::from_f64(*n).map_or(Json::Null, Json::Number),
        Value::Str(s) => Json::String(s.clone()),
    }
}

fn read_rows(path: &Path) -> Result<Vec<Row>, TransformCliError> {
    let setup = |m: String| TransformCliError::Setup(format!("{}: {m}", path.display()));
    if is_jsonl(path) {
        let file = File::open(path).map_err(|e| setup(e.to_string()))?;
        let mut rows = Vec::new();
        for (i, line) in BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|e| setup(e.to_string()))?;
            if line.trim().is_empty() {
                continue;
            }
            let Json::Object(object) =
                serde_json::from_str(&line).map_err(|e| setup(format!("line {}: {e}", i + 1)))?
            else {
                return Err(setup(format!("line {}: expected a JSON object", i + 1)));
            };
            let cells = object.into_iter().map(|(k, v)| (k, Cell::Json(v))).collect();
            rows.push(Row { cells });
        }
        Ok(rows)
    } else {
        let mut reader = csv::Reader::from_path(path).map_err(|e| setup(e.to_string()))?;
        let header: Vec<String> =
            reader.headers().map_err(|e| setup(e.to_string()))?.iter().map(str::to_string).collect();
        reader
            .records()
            .map(|r| {
                let record = r.map_err(|e| setup(e.to_string()))?;
                Ok(Row {
                    cells: header
                        .iter()
                        .cloned()
                        .zip(record.iter().map(|c| Cell::Text(c.to_string())))
                        .collect(),
                })
            })
            .collect()
    }
}
