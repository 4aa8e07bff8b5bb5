//! Feature fetching for one request: cache first, then every miss of every group and row
//! in one store round trip, then the store-error policy.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;

use super::cache::{CacheOptions, GroupCache};
use super::store::{Lookup, OnlineStore, StoreError};
use super::view::{FeatureView, GroupRead, GroupValues, OnMissing};
use crate::Error;
use crate::metrics::Metrics;

/// What a request does when the online store fails or times out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStoreError {
    /// Answer 503 (`store_unavailable`).
    Fail,
    /// Serve with every group feature defaulted and listed in `missing_features`, except
    /// for groups whose `on_missing` is `error`.
    Defaults,
}

/// Fetched values for a batch: index `row * groups + group`.
#[derive(Debug)]
pub struct FetchedGroups {
    pub values: Vec<GroupRead>,
    /// The entity part of each key (`4111...`, or `a:b` for composite keys), for messages.
    pub entities: Vec<String>,
}

pub struct FeatureService {
    store: Arc<dyn OnlineStore>,
    cache: Option<GroupCache>,
    cache_options: CacheOptions,
    prefix: String,
    policy: OnStoreError,
    up: AtomicBool,
    /// Wakes the health watcher as soon as a lookup fails.
    wake: Notify,
    metrics: Metrics,
}

/// While the store is down, it is pinged this often (or at the configured interval, if
/// shorter), so serving resumes soon after it comes back.
const RECHECK_WHILE_DOWN: Duration = Duration::from_millis(200);

impl std::fmt::Debug for FeatureService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeatureService")
            .field("store", &self.store.describe())
            .field("prefix", &self.prefix)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl FeatureService {
    pub fn new(
        store: Arc<dyn OnlineStore>,
        cache_options: CacheOptions,
        prefix: String,
        policy: OnStoreError,
        metrics: Metrics,
    ) -> FeatureService {
        let longest = cache_options.longest_ttl();
        let cache = (!longest.is_zero()).then(|| GroupCache::new(cache_options.max_entries, longest));
        FeatureService {
            store,
            cache,
            cache_options,
            prefix,
            policy,
            up: AtomicBool::new(true),
            wake: Notify::new(),
            metrics,
        }
    }

    pub fn describe(&self) -> String {
        self.store.describe()
    }

    /// Whether the store answered its last health ping.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Pings the store and records the outcome for readiness and the `fti_store_up` gauge.
    pub async fn check_health(&self) -> bool {
        let up = match self.store.ping().await {
            Ok(()) => true,
            Err(e) => {
                if self.is_up() {
                    tracing::warn!("online store health check failed: {e}");
                }
                false
            }
        };
        self.set_up(up);
        up
    }

    /// Keeps readiness current: pings every `interval` while the store is up, and every
    /// [`RECHECK_WHILE_DOWN`] (at most) from the moment a lookup fails until it answers.
    /// The pings also drive reconnection, so no request waits for one. Runs until dropped.
    pub async fn watch_health(&self, interval: Duration) {
        loop {
            let wait = if self.is_up() { interval } else { interval.min(RECHECK_WHILE_DOWN) };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.wake.notified() => {}
            }
            self.check_health().await;
        }
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Relaxed);
        self.metrics.store_up.set(i64::from(up));
    }

    /// Looks up every group of `view` for every row (`rows[r]` = entity values in the
    /// view's entity order).
    pub async fn fetch(&self, view: &FeatureView, rows: &[Vec<String>]) -> Result<FetchedGroups, Error> {
        let groups = view.groups.len();
        let mut values: Vec<Option<GroupValues>> = vec![None; rows.len() * groups];
        let mut entities = Vec::with_capacity(values.len());
        let mut pending = Vec::new();
        let mut lookups = Vec::new();
        for entity_values in rows {
            for plan in &view.groups {
                let index = entities.len();
                let entity = plan.entity_key(entity_values);
                // The view checked the request's join keys already (resolve_entities).
                let key = plan
                    .store_key(&self.prefix, &view.entities, entity_values, &entity)
                    .map_err(|(name, m)| Error::invalid(format!("entities.{name}"), m))?;
                entities.push(entity);
                let ttl = self.cache_options.ttl_for(&plan.name);
                if let (Some(cache), false) = (&self.cache, ttl.is_zero()) {
                    let cache_key = (plan.id, key);
                    let hit = cache.get(&cache_key).await;
                    let result = if hit.is_some() { "hit" } else { "miss" };
                    self.metrics.cache_lookups.with_label_values(&[&*plan.name, result]).inc();
                    if let Some(hit) = hit {
                        values[index] = Some(hit);
                        continue;
                    }
                    lookups.push(Lookup { key: cache_key.1, fields: plan.field_names() });
                } else {
                    lookups.push(Lookup { key, fields: plan.field_names() });
                }
                pending.push(index);
            }
        }

        if !lookups.is_empty() {
            let result = if self.is_up() { self.store.get(&lookups).await } else { Err(StoreError::Down) };
            match result {
                Ok(fetched) => {
                    for ((index, lookup), raw) in pending.into_iter().zip(lookups).zip(fetched) {
                        let plan = &view.groups[index % groups];
                        let (parsed, bad) = plan.from_stored(raw);
                        if bad > 0 {
                            self.metrics
                                .stored_value_errors
                                .with_label_values(&[&*plan.name])
                                .inc_by(bad as u64);
                        }
                        let ttl = self.cache_options.ttl_for(&plan.name);
                        if let (Some(cache), false) = (&self.cache, ttl.is_zero()) {
                            cache.insert((plan.id, lookup.key), parsed.clone(), ttl).await;
                        }
                        values[index] = Some(parsed);
                    }
                }
                Err(e) => {
                    self.metrics.store_errors.with_label_values(&[e.kind()]).inc();
                    if !matches!(e, StoreError::Down) {
                        if self.is_up() {
                            tracing::warn!("online store lookup failed, failing fast until it answers: {e}");
                        }
                        self.set_up(false);
                        self.wake.notify_one();
                    }
                    if self.policy == OnStoreError::Fail {
                        return Err(Error::StoreUnavailable(e.to_string()));
                    }
                    for index in pending {
                        if view.groups[index % groups].on_missing == OnMissing::Error {
                            return Err(Error::StoreUnavailable(e.to_string()));
                        }
                        values[index] = Some(None);
                    }
                }
            }
        }
        let now = SystemTime::now();
        let values = values
            .into_iter()
            .enumerate()
            .map(|(index, values)| {
                let plan = &view.groups[index % groups];
                match GroupRead::from_values(values.unwrap_or_default()) {
                    GroupRead::Found(stored) if plan.is_stale(&stored, now) => {
                        self.metrics.stale_reads.with_label_values(&[&*plan.name]).inc();
                        GroupRead::Stale(stored)
                    }
                    read => read,
                }
            })
            .collect();
        Ok(FetchedGroups { values, entities })
    }
}
