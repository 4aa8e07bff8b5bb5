//! The configured online store; the in-memory one is filled from its feature files.

use std::sync::Arc;

use super::AppError;
use super::options::redis_options;
use crate::config::{Config, RedisClient, StoreKind};
use crate::features::OnlineStore;
use crate::features::feast_write::{Newest, TIMESTAMP_COLUMN, feast_hash};
use crate::features::files::{FeatureFile, GroupSchema, group_schemas};
use crate::features::memory::MemoryStore;
use crate::features::redis::RedisStore;
use crate::features::redis_cluster::{ClusterStore, is_cluster_url};
use crate::registry::{Registry, VersionState};

pub fn open(config: &Config, registry: &Registry) -> Result<Arc<dyn OnlineStore>, AppError> {
    match config.store.kind {
        StoreKind::Redis => {
            let options = redis_options(&config.store.redis)?;
            let store: Arc<dyn OnlineStore> = if is_cluster_url(&options.url) {
                // Only the URL can make a cluster client fail to build.
                Arc::new(
                    ClusterStore::new(&options)
                        .map_err(|e| AppError::Config(format!("store.redis.url: {e}")))?,
                )
            } else {
                let builtin = config.store.redis.client == RedisClient::Builtin;
                Arc::new(RedisStore::new(&options, builtin).map_err(|e| AppError::Store(e.to_string()))?)
            };
            Ok(store)
        }
        StoreKind::Memory => {
            let snapshot = registry.snapshot();
            let views = snapshot.models.values().flat_map(|m| m.versions.values()).filter_map(|s| match s {
                VersionState::Ready(v) => Some(v.view.spec()),
                VersionState::Failed(_) => None,
            });
            let schemas = group_schemas(views).map_err(AppError::Store)?;
            let mut store = MemoryStore::new();
            for file in &config.store.memory.files {
                let schema = match (&file.keys, schemas.get(&file.group)) {
                    (Some(keys), known) => GroupSchema {
                        keys: keys.clone(),
                        dtypes: known.map(|s| s.dtypes.clone()).unwrap_or_default(),
                        feast: known.and_then(|s| s.feast.clone()),
                    },
                    (None, Some(known)) => known.clone(),
                    (None, None) => {
                        return Err(AppError::Store(format!(
                            "feature file {}: group `{}` is not read by any loaded model; set `keys` for it",
                            file.path.display(),
                            file.group
                        )));
                    }
                };
                let rows =
                    FeatureFile::open(&file.path, &schema).map_err(|e| AppError::Store(e.to_string()))?;
                let mut count = 0usize;
                let mut newest = Newest::default();
                for row in rows {
                    let row = row.map_err(|e| AppError::Store(e.to_string()))?;
                    match &schema.feast {
                        // A Feast group is held as Feast lays it out, so it reads the same
                        // from the embedded store as from Redis.
                        Some(feast) => {
                            let hash = feast_hash(&schema, feast, &row, TIMESTAMP_COLUMN).map_err(|m| {
                                AppError::Store(format!(
                                    "feature file {} row {}: {m}",
                                    file.path.display(),
                                    row.row
                                ))
                            })?;
                            if newest.admit(&hash.key, hash.time) {
                                store.insert_bytes(hash.key, hash.fields);
                            }
                        }
                        None => store
                            .insert(format!("{}{}:{}", config.store.prefix, file.group, row.entity), row.set),
                    }
                    count += 1;
                }
                tracing::info!(group = %file.group, path = %file.path.display(), rows = count, "feature file loaded");
                store.add_source(file.path.display().to_string());
            }
            Ok(Arc::new(store))
        }
    }
}
