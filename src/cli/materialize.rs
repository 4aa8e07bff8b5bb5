//! `fti-serve materialize`: the feature pipeline's sink. Loads a feature file into Redis
//! in pipelined, atomic batches (`MULTI` … `EXEC`), so a row is written whole or not at all.
//! A Feast group is written as `feast materialize` writes it (the newest row of each
//! entity, Feast's keys, fields and value bytes).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::config::Config;
use crate::features::feast_write::{FeastHash, Newest, feast_hash};
use crate::features::files::{FeatureFile, FeatureRow, GroupSchema, group_schemas};
use crate::features::redis::RedisOptions;
use crate::features::redis_cluster::{cluster_client, is_cluster_url};
use crate::registry::{Manifest, RegistryDir};
use crate::secret::redact_url;

#[derive(Debug, Clone)]
pub struct MaterializeArgs {
    pub group: String,
    pub file: PathBuf,
    pub redis_url: String,
    pub prefix: String,
    /// Entity key columns; default: the group's keys in the registry's feature views.
    pub keys: Option<Vec<String>>,
    pub batch_size: usize,
    /// Feast groups: the column holding each row's event time.
    pub timestamp_column: String,
    /// Skip bad rows (reported at the end) instead of stopping at the first.
    pub keep_going: bool,
    pub progress: bool,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct MaterializeReport {
    pub written: usize,
    pub skipped: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum MaterializeError {
    #[error("{0}")]
    Setup(String),
    #[error("{message} ({written} rows written before it)")]
    Row { message: String, written: usize },
    #[error("redis {url}: {message} ({written} rows written before it)")]
    Redis { url: String, message: String, written: usize },
}

/// The schema of `group` as the registry's feature views declare it.
pub fn registry_schema(config: &Config, group: &str) -> Result<Option<GroupSchema>, String> {
    let dir = RegistryDir::new(&config.registry.path);
    let models = if config.registry.models.is_empty() {
        dir.models().map_err(|e| e.to_string())?
    } else {
        config.registry.models.clone()
    };
    let mut views = Vec::new();
    for model in models {
        for version in dir.versions(&model).map_err(|e| e.to_string())? {
            // A broken manifest is the server's problem to report; it does not block
            // loading features for the versions that work.
            if let Ok(m) = Manifest::read(&dir.version_dir(&model, version).join("manifest.toml")) {
                views.push(m.feature_view);
            }
        }
    }
    Ok(group_schemas(&views)?.remove(group))
}

pub async fn run(args: &MaterializeArgs, schema: GroupSchema) -> Result<MaterializeReport, MaterializeError> {
    let url = redact_url(&args.redis_url);
    let file = FeatureFile::open(&args.file, &schema).map_err(|e| MaterializeError::Setup(e.to_string()))?;
    let mut conn =
        connect(&args.redis_url).await.map_err(|e| MaterializeError::Setup(format!("redis {url}: {e}")))?;

    let bar = progress_bar(args.progress, file.total_rows());
    let started = Instant::now();
    let mut report = MaterializeReport::default();
    let mut batch: Vec<Write> = Vec::with_capacity(args.batch_size);
    let mut newest = Newest::default();
    let redis_err =
        |message: String, written: usize| MaterializeError::Redis { url: url.clone(), message, written };
    for row in file {
        let row = row.map_err(|e| e.to_string()).and_then(|row| match &schema.feast {
            None => Ok(Some(Write::Native(row))),
            Some(feast) => {
                let hash = feast_hash(&schema, feast, &row, &args.timestamp_column)
                    .map_err(|m| format!("{} row {}: {m}", args.file.display(), row.row))?;
                Ok(newest.admit(&hash.key, hash.time).then_some(Write::Feast(hash)))
            }
        });
        match row {
            Ok(Some(write)) => batch.push(write),
            Ok(None) => bar.inc(1),
            Err(e) if args.keep_going => {
                bar.println(format!("skipped: {e}"));
                report.skipped.push(e);
            }
            Err(e) => {
                // Rows before the bad one are valid: write them, then stop.
                write_batch(&mut conn, &args.prefix, &args.group, &batch)
                    .await
                    .map_err(|m| redis_err(m, report.written))?;
                report.written += batch.len();
                bar.abandon();
                return Err(MaterializeError::Row { message: e, written: report.written });
            }
        }
        if batch.len() >= args.batch_size {
            write_batch(&mut conn, &args.prefix, &args.group, &batch)
                .await
                .map_err(|m| redis_err(m, report.written))?;
            report.written += batch.len();
            bar.inc(batch.len() as u64);
            batch.clear();
        }
    }
    write_batch(&mut conn, &args.prefix, &args.group, &batch)
        .await
        .map_err(|m| redis_err(m, report.written))?;
    report.written += batch.len();
    bar.inc(batch.len() as u64);
    bar.finish_and_clear();
    tracing::info!(
        group = %args.group,
        rows = report.written,
        skipped = report.skipped.len(),
        seconds = started.elapsed().as_secs_f64(),
        "materialized"
    );
    Ok(report)
}

/// One row's write, in its group's layout.
enum Write {
    Native(FeatureRow),
    Feast(FeastHash),
}

/// A single Redis, or a cluster (`redis+cluster://`).
enum Conn {
    Single(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

async fn connect(url: &str) -> Result<Conn, String> {
    if is_cluster_url(url) {
        let options = RedisOptions {
            url: url.to_string(),
            password: None,
            ca_pem: None,
            timeout: Duration::from_secs(10),
        };
        let client = cluster_client(&options)?;
        let conn = client.get_async_connection().await.map_err(|e| format!("cannot connect: {e}"))?;
        return Ok(Conn::Cluster(conn));
    }
    let client = redis::Client::open(url).map_err(|e| format!("invalid url: {e}"))?;
    let conn = client.get_multiplexed_async_connection().await.map_err(|e| format!("cannot connect: {e}"))?;
    Ok(Conn::Single(conn))
}

/// One row's commands: written whole or not at all (`MULTI` … `EXEC` on its one key).
fn row_commands(pipe: &mut redis::Pipeline, prefix: &str, group: &str, row: &Write) {
    match row {
        Write::Native(row) => {
            let key = format!("{prefix}{group}:{}", row.entity);
            if !row.set.is_empty() {
                pipe.cmd("HSET").arg(&key).arg(&row.set).ignore();
            }
            if !row.unset.is_empty() {
                pipe.cmd("HDEL").arg(&key).arg(&row.unset).ignore();
            }
        }
        Write::Feast(hash) => {
            pipe.cmd("HSET").arg(&hash.key).arg(&hash.fields).ignore();
        }
    }
}

async fn write_batch(conn: &mut Conn, prefix: &str, group: &str, rows: &[Write]) -> Result<(), String> {
    if rows.is_empty() {
        return Ok(());
    }
    match conn {
        // One atomic pipeline for the batch.
        Conn::Single(conn) => {
            let mut pipe = redis::pipe();
            pipe.atomic();
            for row in rows {
                row_commands(&mut pipe, prefix, group, row);
            }
            pipe.query_async::<()>(conn).await.map_err(|e| e.to_string())
        }
        // A cluster cannot run a transaction across slots: each row atomically on its
        // key's node, the batch's rows at once.
        Conn::Cluster(conn) => {
            let writes = rows.iter().map(|row| {
                let mut pipe = redis::pipe();
                pipe.atomic();
                row_commands(&mut pipe, prefix, group, row);
                let mut conn = conn.clone();
                async move { pipe.query_async::<()>(&mut conn).await }
            });
            futures_util::future::try_join_all(writes).await.map(drop).map_err(|e| e.to_string())
        }
    }
}

fn progress_bar(visible: bool, total: Option<u64>) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    match total {
        Some(total) => {
            let bar = ProgressBar::new(total);
            if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} rows {per_sec} eta {eta}") {
                bar.set_style(style);
            }
            bar
        }
        None => {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {pos} rows {per_sec}") {
                bar.set_style(style);
            }
            bar
        }
    }
}
