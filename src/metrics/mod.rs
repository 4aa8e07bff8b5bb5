//! Metric names, buckets and the Prometheus registry. Labels are model, version, backend,
//! stage, outcome, feature group, alias: names the registry and the config define, never
//! entity IDs, raw paths or a model name a client made up ([`UNKNOWN_MODEL`]).

mod observe;

pub use observe::*;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

pub const REQUESTS_TOTAL: &str = "fti_requests_total";
pub const STAGE_SECONDS: &str = "fti_request_stage_seconds";
pub const ROWS_TOTAL: &str = "fti_predicted_rows_total";
pub const MISSING_FEATURES_TOTAL: &str = "fti_missing_features_total";
pub const CACHE_LOOKUPS_TOTAL: &str = "fti_feature_cache_lookups_total";
pub const STORE_ERRORS_TOTAL: &str = "fti_store_errors_total";
pub const STORE_UP: &str = "fti_store_up";
pub const STORED_VALUE_ERRORS_TOTAL: &str = "fti_stored_value_errors_total";
pub const STALE_READS_TOTAL: &str = "fti_feature_stale_reads_total";
pub const MODEL_LOADS_TOTAL: &str = "fti_model_loads_total";
pub const MODEL_VERSION_INFO: &str = "fti_model_version_info";
pub const ALIAS_VERSION: &str = "fti_alias_version";
pub const ALIAS_MOVES_TOTAL: &str = "fti_alias_moves_total";
pub const ADMIN_AUTH_FAILURES_TOTAL: &str = "fti_admin_auth_failures_total";
pub const REQUESTS_SHED_TOTAL: &str = "fti_requests_shed_total";
pub const REQUESTS_IN_FLIGHT: &str = "fti_requests_in_flight";
pub const CONNECTIONS_REFUSED_TOTAL: &str = "fti_connections_refused_total";
pub const SHADOW_RUNS_TOTAL: &str = "fti_shadow_runs_total";
pub const SHADOW_ABS_DIFF: &str = "fti_shadow_output_abs_diff";
pub const SHADOW_DISAGREEMENTS_TOTAL: &str = "fti_shadow_label_disagreements_total";
pub const GUARD_TRIPS_TOTAL: &str = "fti_rollout_guard_trips_total";
pub const REGISTRY_SOURCE_UP: &str = "fti_registry_source_up";
pub const REGISTRY_SOURCE_SYNCS_TOTAL: &str = "fti_registry_source_syncs_total";
pub const REGISTRY_SOURCE_DOWNLOADS_TOTAL: &str = "fti_registry_source_downloads_total";

/// The `model` label of requests for a model that is not served.
pub const UNKNOWN_MODEL: &str = "_unknown";

/// Request stages, each with its own histogram series.
pub mod stage {
    pub const FEATURES: &str = "features";
    pub const TRANSFORM: &str = "transform";
    pub const INFERENCE: &str = "inference";
    pub const TOTAL: &str = "total";
}

/// 5 µs to 10 s: the fast path lives in tens of microseconds, a Redis round trip in
/// hundreds, a timeout in seconds.
const LATENCY_BUCKETS: &[f64] = &[
    5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub stage_seconds: HistogramVec,
    pub rows: IntCounterVec,
    pub missing_features: IntCounterVec,
    pub cache_lookups: IntCounterVec,
    pub store_errors: IntCounterVec,
    pub store_up: IntGauge,
    pub stored_value_errors: IntCounterVec,
    pub stale_reads: IntCounterVec,
    pub model_loads: IntCounterVec,
    pub model_version_info: IntGaugeVec,
    pub alias_version: IntGaugeVec,
    pub alias_moves: IntCounterVec,
    pub admin_auth_failures: IntCounterVec,
    pub shed: IntCounter,
    pub in_flight: IntGauge,
    pub connections_refused: IntCounterVec,
    pub shadow_runs: IntCounterVec,
    pub shadow_abs_diff: HistogramVec,
    pub shadow_disagreements: IntCounterVec,
    pub guard_trips: IntCounterVec,
    pub registry_source_up: IntGauge,
    pub registry_source_syncs: IntCounterVec,
    pub registry_source_downloads: IntCounterVec,
    /// The prediction log's and drift monitor's series.
    pub observe: ObserveMetrics,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            registered(&registry, IntCounterVec::new(Opts::new(name, help), labels))
        };
        let requests = counter(
            REQUESTS_TOTAL,
            "Predict requests by model, version, backend and outcome (ok or an error code).",
            &["model", "version", "backend", "outcome"],
        );
        let rows = counter(ROWS_TOTAL, "Rows predicted.", &["model", "version"]);
        let missing_features = counter(
            MISSING_FEATURES_TOTAL,
            "Features that were missing and took their default.",
            &["model", "version"],
        );
        let cache_lookups = counter(
            CACHE_LOOKUPS_TOTAL,
            "Feature cache lookups by group and result (hit or miss).",
            &["group", "result"],
        );
        let store_errors =
            counter(STORE_ERRORS_TOTAL, "Online store failures by kind (backend, timeout).", &["kind"]);
        let stored_value_errors = counter(
            STORED_VALUE_ERRORS_TOTAL,
            "Stored feature values that did not parse as their dtype (served as missing).",
            &["group"],
        );
        let stale_reads = counter(
            STALE_READS_TOTAL,
            "Feature group reads older than the group's max_age_ms (served as missing).",
            &["group"],
        );
        let model_loads = counter(
            MODEL_LOADS_TOTAL,
            "Model version loads by outcome (ready or failed).",
            &["model", "outcome"],
        );
        let alias_moves = counter(
            ALIAS_MOVES_TOTAL,
            "Alias moves and canary steps made through this process's admin API, by action (promote, rollback, canary, abort).",
            &["model", "alias", "action"],
        );
        let admin_auth_failures = counter(
            ADMIN_AUTH_FAILURES_TOTAL,
            "Admin API requests refused for a missing or wrong bearer token, by reason.",
            &["reason"],
        );
        let registry_source_syncs = counter(
            REGISTRY_SOURCE_SYNCS_TOTAL,
            "Rounds of reading the registry source (MLflow), by result (ok, error).",
            &["result"],
        );
        let registry_source_downloads = counter(
            REGISTRY_SOURCE_DOWNLOADS_TOTAL,
            "Model versions downloaded from the registry source into the cache, by result (ok, error).",
            &["result"],
        );
        let shadow_runs = counter(
            SHADOW_RUNS_TOTAL,
            "Shadow runs by the shadow's model, version and outcome (ok, error, dropped: the queue was full).",
            &["model", "version", "outcome"],
        );
        let shadow_disagreements = counter(
            SHADOW_DISAGREEMENTS_TOTAL,
            "Shadow runs whose label (integer or string output) differed from the stable answer's, per output.",
            &["model", "version", "output"],
        );
        let guard_trips = counter(
            GUARD_TRIPS_TOTAL,
            "Rollouts a guard pulled back, by rule (non_finite, error_rate, p99, disagreement).",
            &["model", "alias", "rule"],
        );
        let shadow_abs_diff = registered(
            &registry,
            HistogramVec::new(
                HistogramOpts::new(
                    SHADOW_ABS_DIFF,
                    "Per shadow run and numeric output, the largest |shadow - stable| over its rows.",
                )
                .buckets(vec![1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.05, 0.1, 0.25, 0.5, 1.0]),
                &["model", "version", "output"],
            ),
        );
        let shed = registered(
            &registry,
            IntCounter::new(
                REQUESTS_SHED_TOTAL,
                "Requests refused by admission control (server.max_in_flight reached): HTTP 429, gRPC RESOURCE_EXHAUSTED.",
            ),
        );
        let connections_refused = counter(
            CONNECTIONS_REFUSED_TOTAL,
            "Connections closed at accept because the listener had server.max_connections open, by transport.",
            &["transport"],
        );
        let in_flight = registered(
            &registry,
            IntGauge::new(
                REQUESTS_IN_FLIGHT,
                "Predict and infer requests holding an admission permit (at most server.max_in_flight).",
            ),
        );
        let stage_seconds = registered(
            &registry,
            HistogramVec::new(
                HistogramOpts::new(STAGE_SECONDS, "Time per request stage.")
                    .buckets(LATENCY_BUCKETS.to_vec()),
                &["model", "version", "backend", "stage"],
            ),
        );
        let store_up = registered(
            &registry,
            IntGauge::new(STORE_UP, "1 when the online store answered its last health ping."),
        );
        let registry_source_up = registered(
            &registry,
            IntGauge::new(
                REGISTRY_SOURCE_UP,
                "1 when the registry source (MLflow) answered the last round (reachable, credentials accepted); 0 also when none is configured.",
            ),
        );
        let model_version_info = registered(
            &registry,
            IntGaugeVec::new(
                Opts::new(MODEL_VERSION_INFO, "1 per loaded model version, with its backend and aliases."),
                &["model", "version", "backend", "aliases"],
            ),
        );
        let alias_version = registered(
            &registry,
            IntGaugeVec::new(
                Opts::new(ALIAS_VERSION, "The version each alias serves in this replica."),
                &["model", "alias"],
            ),
        );

        Metrics {
            requests,
            stage_seconds,
            rows,
            missing_features,
            cache_lookups,
            store_errors,
            store_up,
            stored_value_errors,
            stale_reads,
            model_loads,
            model_version_info,
            alias_version,
            alias_moves,
            admin_auth_failures,
            shed,
            in_flight,
            connections_refused,
            shadow_runs,
            shadow_abs_diff,
            shadow_disagreements,
            guard_trips,
            registry_source_up,
            registry_source_syncs,
            registry_source_downloads,
            observe: ObserveMetrics::new(&registry),
            registry,
        }
    }

    /// One model version's request series, resolved once when the version loads.
    pub fn for_version(&self, model: &str, version: &str, backend: &str) -> VersionMetrics {
        let stage = |s: &str| self.stage_seconds.with_label_values(&[model, version, backend, s]);
        VersionMetrics {
            labels: [model.to_string(), version.to_string(), backend.to_string()],
            requests: self.requests.clone(),
            ok: self.requests.with_label_values(&[model, version, backend, "ok"]),
            features: stage(stage::FEATURES),
            transform: stage(stage::TRANSFORM),
            inference: stage(stage::INFERENCE),
            total: stage(stage::TOTAL),
            rows: self.rows.with_label_values(&[model, version]),
            missing_features: self.missing_features.with_label_values(&[model, version]),
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metric families.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!("encoding metrics: {e}");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// A loaded version's series: a request pays no label lookup on the way to success.
#[derive(Clone)]
pub struct VersionMetrics {
    labels: [String; 3],
    requests: IntCounterVec,
    ok: IntCounter,
    pub features: Histogram,
    pub transform: Histogram,
    pub inference: Histogram,
    pub total: Histogram,
    pub rows: IntCounter,
    pub missing_features: IntCounter,
}

impl std::fmt::Debug for VersionMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VersionMetrics").field("labels", &self.labels).finish_non_exhaustive()
    }
}

impl VersionMetrics {
    /// Counts one request's outcome: `ok` or an error code (a closed set).
    pub fn count(&self, outcome: &str) {
        if outcome == "ok" {
            self.ok.inc();
        } else {
            let [model, version, backend] = &self.labels;
            self.requests.with_label_values(&[model.as_str(), version, backend, outcome]).inc();
        }
    }
}

/// Registers a metric of a static definition: a bad definition or a name used twice is a
/// mistake in this file, found by the first test that builds [`Metrics`].
fn registered<C: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: prometheus::Result<C>,
) -> C {
    let metric = metric.expect("static metric definition");
    registry.register(Box::new(metric.clone())).expect("metric registered once");
    metric
}
