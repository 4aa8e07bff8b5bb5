//! The prediction log's and drift monitor's series (`crate::observe`).

use prometheus::{GaugeVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry};

use super::registered;

pub const LOG_ACCEPTED_TOTAL: &str = "fti_prediction_log_accepted_total";
pub const LOG_DROPPED_TOTAL: &str = "fti_prediction_log_dropped_total";
pub const LOG_WRITTEN_TOTAL: &str = "fti_prediction_log_written_total";
pub const LOG_WRITE_ERRORS_TOTAL: &str = "fti_prediction_log_write_errors_total";
pub const LOG_SINK_UP: &str = "fti_prediction_log_sink_up";
pub const DRIFT_PSI: &str = "fti_drift_psi";
pub const DRIFT_OUTPUT_PSI: &str = "fti_drift_output_psi";
pub const DRIFT_OUTPUT_SHARE: &str = "fti_drift_output_share";
pub const DRIFT_MISSING_RATIO: &str = "fti_drift_missing_ratio";
pub const DRIFT_WINDOW_ROWS: &str = "fti_drift_window_rows";
pub const DRIFT_OVER_THRESHOLD: &str = "fti_drift_features_over_threshold";

#[derive(Clone)]
pub struct ObserveMetrics {
    /// Records (rows) taken into the queue for the sinks.
    pub accepted: IntCounter,
    /// Records lost: `sink="queue"` when the queue was full, else the sink that was down.
    pub dropped: IntCounterVec,
    pub written: IntCounterVec,
    pub write_errors: IntCounterVec,
    pub sink_up: IntGaugeVec,
    pub psi: GaugeVec,
    pub output_psi: GaugeVec,
    pub output_share: GaugeVec,
    pub missing_ratio: GaugeVec,
    pub window_rows: IntGaugeVec,
    pub over_threshold: IntGaugeVec,
}

impl ObserveMetrics {
    pub(super) fn new(registry: &Registry) -> ObserveMetrics {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            registered(registry, IntCounterVec::new(Opts::new(name, help), labels))
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            registered(registry, GaugeVec::new(Opts::new(name, help), labels))
        };
        let int_gauge = |name: &str, help: &str, labels: &[&str]| {
            registered(registry, IntGaugeVec::new(Opts::new(name, help), labels))
        };
        let accepted = registered(
            registry,
            IntCounter::new(LOG_ACCEPTED_TOTAL, "Prediction log records (rows) queued for the sinks."),
        );
        ObserveMetrics {
            accepted,
            dropped: counter(
                LOG_DROPPED_TOTAL,
                "Prediction log records lost: sink=queue when the queue was full, else the sink that was down.",
                &["sink"],
            ),
            written: counter(LOG_WRITTEN_TOTAL, "Prediction log records written, by sink.", &["sink"]),
            write_errors: counter(
                LOG_WRITE_ERRORS_TOTAL,
                "Failed writes to a prediction log sink.",
                &["sink"],
            ),
            sink_up: int_gauge(LOG_SINK_UP, "1 while the sink's last write succeeded.", &["sink"]),
            psi: gauge(
                DRIFT_PSI,
                "Population stability index of an input feature: served window against the training reference.",
                &["model", "version", "feature"],
            ),
            output_psi: gauge(
                DRIFT_OUTPUT_PSI,
                "Population stability index of an output: served window against the training reference.",
                &["model", "version", "output"],
            ),
            output_share: gauge(
                DRIFT_OUTPUT_SHARE,
                "Share of the window's rows in each reference bin of an output.",
                &["model", "version", "output", "bin"],
            ),
            missing_ratio: gauge(
                DRIFT_MISSING_RATIO,
                "Share of the window's rows in which a stored or request field took its default.",
                &["model", "version", "feature"],
            ),
            window_rows: int_gauge(DRIFT_WINDOW_ROWS, "Rows in the drift window.", &["model", "version"]),
            over_threshold: int_gauge(
                DRIFT_OVER_THRESHOLD,
                "Input features whose PSI is above drift.psi_threshold.",
                &["model", "version"],
            ),
        }
    }
}
