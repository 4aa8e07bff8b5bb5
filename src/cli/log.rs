//! `fti-serve log export`: the prediction log (files or a Redis Stream) to Parquet.

use std::path::PathBuf;
use std::time::Duration;

use crate::features::redis::RedisOptions;
use crate::observe::export::{self, Filter, Record};
use crate::observe::parquet_out;
use crate::secret::Secret;

pub enum Source {
    Files(PathBuf),
    Stream { url: String, password: Option<Secret>, key: String },
}

pub struct ExportArgs {
    pub source: Source,
    pub out: PathBuf,
    pub model: Option<String>,
    pub version: Option<u64>,
    pub since: Option<String>,
    pub until: Option<String>,
}

/// How many records were exported.
pub async fn export(args: &ExportArgs) -> Result<usize, String> {
    let bound = |flag: &str, text: &Option<String>| -> Result<Option<i64>, String> {
        text.as_deref().map(|t| export::parse_bound(t).map_err(|e| format!("{flag}: {e}"))).transpose()
    };
    let filter = Filter {
        model: args.model.clone(),
        version: args.version,
        since_us: bound("--since", &args.since)?,
        until_us: bound("--until", &args.until)?,
    };
    let mut records: Vec<Record> = match &args.source {
        Source::Files(dir) => export::read_files(dir, &filter)?,
        Source::Stream { url, password, key } => {
            let redis = RedisOptions {
                url: url.clone(),
                password: password.clone(),
                ca_pem: None,
                timeout: Duration::from_secs(10),
            };
            export::read_stream(&redis, key, &filter).await?
        }
    };
    // Files from several replicas, or a stream read in id order: one time order out.
    records.sort_by_key(|r| r.time_us);
    // A batch a failing sink wrote again holds the same records twice: keep one of each
    // (request id, row, time). A caller reusing an id at another time is kept.
    let mut seen = std::collections::HashSet::new();
    records.retain(|r| {
        let id =
            r.fields.get("request_id").and_then(serde_json::Value::as_str).unwrap_or_default().to_string();
        let row = r.fields.get("row").and_then(serde_json::Value::as_u64).unwrap_or_default();
        seen.insert((id, row, r.time_us))
    });
    let columns = export::columns(&records);
    parquet_out::write(&args.out, &columns)?;
    Ok(records.len())
}
