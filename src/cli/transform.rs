//! `fti-serve transform`: the serving path's feature assembly, offline. The training
//! pipeline runs it over its point-in-time rows so that on-demand features are computed
//! by the very code that serves them (no training/serving skew).

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use crate::features::{FeatureView, Value};

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
    #[error("{path} row {row}, column `{column}`: {message}")]
    Row { path: PathBuf, row: usize, column: String, message: String },
    #[error("writing {path}: {message}")]
    Write { path: PathBuf, message: String },
}

/// One input row: column names with their cells as text (`None` = absent/null).
struct Row {
    cells: Vec<(String, Option<String>)>,
}

impl Row {
    fn get(&self, name: &str) -> Option<&str> {
        self.cells.iter().find(|(k, _)| k == name).and_then(|(_, v)| v.as_deref())
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
    for (i, row) in rows.iter().enumerate() {
        let mut frame = view.new_frame();
        let mut missing = Vec::new();
        view.fill_from_strings(&mut frame, |name| row.get(name), &mut missing).map_err(
            |(column, message)| TransformCliError::Row {
                path: args.input.clone(),
                row: i + 1,
                column,
                message,
            },
        )?;
        view.compute(&mut frame);
        let computed: Vec<Value> = if args.model_input {
            view.input_values(&frame).map(|(_, v)| Value::Num(v)).collect()
        } else {
            view.on_demand_values(&frame)
        };
        let passed: Vec<Option<String>> = if args.model_input {
            args.keep.iter().map(|k| row.get(k).map(str::to_string)).collect()
        } else {
            row.cells.iter().map(|(_, v)| v.clone()).collect()
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
            let cells = object
                .into_iter()
                .map(|(k, v)| {
                    let text = match v {
                        Json::Null => None,
                        Json::String(s) => Some(s),
                        other => Some(other.to_string()),
                    };
                    (k, text)
                })
                .collect();
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
                    cells: header.iter().cloned().zip(record.iter().map(|c| Some(c.to_string()))).collect(),
                })
            })
            .collect()
    }
}
