//! An MLflow Model Registry as the source of versions and aliases. The registry
//! directory (`registry.path`) becomes a local cache that this module keeps in step with
//! MLflow: the versions MLflow's aliases point at are downloaded into it ([`fetch`]), and
//! its `state.toml` follows MLflow's aliases ([`aliases`]); the rest of the registry
//! (loading, checksums, warm-up, refusing a broken version while the old one serves)
//! works on the cache as on any directory. [`poll`] re-reads MLflow on an interval; an
//! operator's promote or rollback sets the alias in MLflow too. When MLflow is down, the
//! cache keeps serving and readiness says so.

pub mod aliases;
pub mod client;
pub mod fetch;
pub mod poll;

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;

use self::aliases::AliasMap;
use self::client::{MlflowClient, MlflowError};
use self::fetch::Fetch;
use super::RegistryDir;
use super::state::{ModelState, StateLock, rfc3339_now};
use crate::Error;
use crate::config::MlflowConfig;
use crate::metrics::Metrics;

/// How the registry source is doing, for readiness and `/v1/models`.
#[derive(Debug, Clone, Serialize)]
pub struct SourceStatus {
    pub kind: &'static str,
    /// Where, without credentials.
    pub uri: String,
    /// MLflow answered the last round (reachable, credentials accepted).
    pub up: bool,
    /// When every model was last read from MLflow without an error (RFC 3339).
    pub last_sync_at: Option<String>,
    /// What went wrong in the last round, if anything.
    pub error: Option<String>,
}

/// An MLflow tracking server mirrored into a registry directory.
pub struct Mlflow {
    client: MlflowClient,
    cache: RegistryDir,
    models: Vec<String>,
    aliases: AliasMap,
    max_version_bytes: u64,
    poll: Duration,
    /// Runs MLflow calls for callers on blocking threads (operator moves).
    runtime: tokio::runtime::Handle,
    status: Mutex<SourceStatus>,
    metrics: Metrics,
}

impl std::fmt::Debug for Mlflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mlflow").field("uri", &self.client.uri()).field("models", &self.models).finish()
    }
}

impl Mlflow {
    /// A source for `models`, mirrored into `cache`. `runtime` serves the blocking entry
    /// points; call them only from threads outside it (the blocking pool, the CLI's main).
    pub fn new(
        config: &MlflowConfig,
        models: Vec<String>,
        cache: RegistryDir,
        runtime: tokio::runtime::Handle,
        metrics: Metrics,
    ) -> Result<Mlflow, String> {
        let auth = config.auth().map_err(|e| e.to_string())?;
        let client = MlflowClient::new(&config.tracking_uri, auth, Duration::from_millis(config.timeout_ms))?;
        std::fs::create_dir_all(cache.root())
            .map_err(|e| format!("cannot create the registry cache {}: {e}", cache.root().display()))?;
        let status =
            SourceStatus { kind: "mlflow", uri: client.uri(), up: false, last_sync_at: None, error: None };
        Ok(Mlflow {
            client,
            cache,
            models,
            aliases: AliasMap::new(config.aliases.clone()),
            max_version_bytes: config.max_version_bytes,
            poll: Duration::from_millis(config.poll_interval_ms),
            runtime,
            status: Mutex::new(status),
            metrics,
        })
    }

    pub fn poll_interval(&self) -> Duration {
        self.poll
    }

    pub fn status(&self) -> SourceStatus {
        self.status.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn set_status(&self, up: bool, error: Option<String>) {
        let mut status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        if status.up != up || status.error != error {
            match &error {
                Some(e) => tracing::warn!(source = %status.uri, "registry source: {e}"),
                None => tracing::info!(source = %status.uri, "registry source in sync"),
            }
        }
        if error.is_none() {
            status.last_sync_at = Some(rfc3339_now());
        }
        status.up = up;
        status.error = error;
        self.metrics.registry_source_up.set(i64::from(up));
    }

    /// Brings every model's cache in line with MLflow: downloads the versions its aliases
    /// point at, then moves the cached aliases. Returns whether any alias moved.
    pub async fn sync(&self) -> bool {
        let mut moved = false;
        let mut errors = Vec::new();
        let mut up = true;
        for model in &self.models {
            match self.sync_model(model).await {
                Ok(m) => moved |= m,
                Err(e) => {
                    // A model MLflow does not know is that model's error; anything else
                    // (unreachable, credentials refused) means MLflow is not usable.
                    up &= matches!(e, MlflowError::NotFound { .. });
                    errors.push(format!("{model}: {e}"));
                }
            }
        }
        let result = if errors.is_empty() { "ok" } else { "error" };
        self.metrics.registry_source_syncs.with_label_values(&[result]).inc();
        self.set_status(up, (!errors.is_empty()).then(|| errors.join("; ")));
        moved
    }

    async fn sync_model(&self, model: &str) -> Result<bool, MlflowError> {
        let wanted = self.aliases.wanted(&self.client.aliases(model).await?);
        let mut failed = None;
        for &version in wanted.values() {
            if let Err(e) = self.fetch(model, version).await {
                failed = Some(e);
            }
        }
        // Moves are made under the state lock, against aliases read under it: an
        // operator's promote (which holds the lock while it sets MLflow) is never undone
        // by an older read.
        let model_dir = self.cache.model_dir(model);
        std::fs::create_dir_all(&model_dir).map_err(|e| MlflowError::Refused {
            call: "cache",
            message: format!("{}: {e}", model_dir.display()),
        })?;
        let lock = tokio::task::spawn_blocking(move || StateLock::acquire(&model_dir))
            .await
            .map_err(|e| MlflowError::Refused { call: "state lock", message: e.to_string() })?
            .map_err(|message| MlflowError::Refused { call: "state lock", message })?;
        let wanted = self.cached(model, self.aliases.wanted(&self.client.aliases(model).await?));
        let mut state = self.read_state(model)?;
        let moved = aliases::align(&mut state, &wanted);
        if moved {
            lock.write(&state).map_err(|message| MlflowError::Refused { call: "state write", message })?;
            tracing::info!(model, aliases = ?state.aliases, "aliases follow MLflow");
        }
        drop(lock);
        match failed {
            Some(e) => Err(e),
            None => Ok(moved),
        }
    }

    fn read_state(&self, model: &str) -> Result<ModelState, MlflowError> {
        super::lifecycle::read_state(&self.cache, model)
            .map_err(|e| MlflowError::Refused { call: "state read", message: e.to_string() })
    }

    /// Only the aliases whose versions are in the cache can move.
    fn cached(&self, model: &str, wanted: BTreeMap<String, u64>) -> BTreeMap<String, u64> {
        wanted.into_iter().filter(|(_, v)| self.cache.version_dir(model, *v).is_dir()).collect()
    }

    async fn fetch(&self, model: &str, version: u64) -> Result<(), MlflowError> {
        let fetch = Fetch {
            client: &self.client,
            model_dir: &self.cache.model_dir(model),
            model,
            version,
            max_bytes: self.max_version_bytes,
        };
        match fetch.run().await {
            Ok(false) => Ok(()),
            Ok(true) => {
                tracing::info!(model, version, "version downloaded from MLflow");
                self.metrics.registry_source_downloads.with_label_values(&["ok"]).inc();
                Ok(())
            }
            Err(e) => {
                self.metrics.registry_source_downloads.with_label_values(&["error"]).inc();
                Err(e)
            }
        }
    }

    // Operator moves (lifecycle::move_alias), on a blocking thread.

    #[allow(clippy::needless_pass_by_value)] // used as `map_err(Self::source_error)`
    fn source_error(e: MlflowError) -> Error {
        Error::RegistrySource(e.to_string())
    }

    /// MLflow knows `model`; its cache directory exists.
    pub fn prepare_model(&self, model: &str) -> Result<(), Error> {
        self.runtime.block_on(self.client.aliases(model)).map_err(|e| match e {
            MlflowError::NotFound { .. } => Error::ModelNotFound { model: model.to_string() },
            e => Self::source_error(e),
        })?;
        let dir = self.cache.model_dir(model);
        std::fs::create_dir_all(&dir).map_err(|e| Error::Registry(format!("{}: {e}", dir.display())))
    }

    /// Under the state lock: `state` follows MLflow's aliases as they are now.
    pub fn pull(&self, model: &str, state: &mut ModelState) -> Result<(), Error> {
        let listed = self.runtime.block_on(self.client.aliases(model)).map_err(Self::source_error)?;
        aliases::align(state, &self.cached(model, self.aliases.wanted(&listed)));
        Ok(())
    }

    /// Downloads `version` into the cache (unless there), so it can be validated.
    pub fn fetch_version(&self, model: &str, version: u64) -> Result<(), Error> {
        self.runtime.block_on(self.fetch(model, version)).map_err(|e| match e {
            MlflowError::NotFound { .. } => Error::VersionNotFound { model: model.to_string(), version },
            e => Self::source_error(e),
        })
    }

    /// Sets in MLflow the alias that serves as `alias` here.
    pub fn publish(&self, model: &str, alias: &str, version: u64) -> Result<(), Error> {
        let Some(remote) = self.aliases.to_mlflow(alias) else {
            return Err(Error::invalid(
                "alias",
                format!("alias {alias:?} is not mapped to an MLflow alias (registry.mlflow.aliases)"),
            ));
        };
        self.runtime.block_on(self.client.set_alias(model, remote, version)).map_err(Self::source_error)
    }
}
