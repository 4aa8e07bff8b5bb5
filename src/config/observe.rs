//! `[prediction_log]` and `[drift]`: what the server records of its predictions and how it
//! compares what it serves with the training data (docs/prediction-log.md).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PredictionLogConfig {
    pub enabled: bool,
    /// Share of requests recorded (every row of a sampled request).
    pub sample: f64,
    /// Requests queued for the writer or taken and not yet written by it: beyond this
    /// they are dropped (and their records counted).
    pub queue: usize,
    /// Records per write to a sink.
    pub batch: usize,
    /// Per-model overrides of `sample`.
    pub models: BTreeMap<String, ModelLogConfig>,
    pub files: Option<FilesSinkConfig>,
    pub stream: Option<StreamSinkConfig>,
}

impl Default for PredictionLogConfig {
    fn default() -> Self {
        PredictionLogConfig {
            enabled: false,
            sample: 1.0,
            queue: 16_384,
            batch: 1024,
            models: BTreeMap::new(),
            files: None,
            stream: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelLogConfig {
    pub sample: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilesSinkConfig {
    pub dir: PathBuf,
    pub max_file_bytes: u64,
    pub max_file_age_s: u64,
    /// The oldest files beyond this many are deleted (0: keep all).
    pub max_files: usize,
}

impl Default for FilesSinkConfig {
    fn default() -> Self {
        FilesSinkConfig {
            dir: PathBuf::from("prediction-log"),
            max_file_bytes: 64 << 20,
            max_file_age_s: 3600,
            max_files: 168,
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamSinkConfig {
    /// Default (empty): the store's `store.redis.url`, with its password and CA files.
    /// May hold a password: never logged.
    pub url: String,
    /// With `url`: a file holding the password (overrides one in `url`).
    pub password_file: Option<PathBuf>,
    /// With a `rediss://` `url`: the PEM certificate authority to trust.
    pub ca_file: Option<PathBuf>,
    /// `{model}` is replaced by the model's name.
    pub key: String,
    /// `XADD ... MAXLEN ~ maxlen`.
    pub maxlen: u64,
    pub timeout_ms: u64,
}

impl Default for StreamSinkConfig {
    fn default() -> Self {
        StreamSinkConfig {
            url: String::new(),
            password_file: None,
            ca_file: None,
            key: "fti:predictions:{model}".into(),
            maxlen: 1_000_000,
            timeout_ms: 1000,
        }
    }
}

impl std::fmt::Debug for StreamSinkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamSinkConfig")
            .field("url", &crate::secret::redact_url(&self.url))
            .field("password_file", &self.password_file)
            .field("ca_file", &self.ca_file)
            .field("key", &self.key)
            .field("maxlen", &self.maxlen)
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DriftConfig {
    /// For versions whose manifest has a `[reference]`.
    pub enabled: bool,
    /// The sliding window (10 slices) of what each version served.
    pub window_s: u64,
    /// Scores are exported once the window holds this many rows.
    pub min_rows: u64,
    pub psi_threshold: f64,
    /// Share of requests that feed the windows.
    pub sample: f64,
}

impl Default for DriftConfig {
    fn default() -> Self {
        DriftConfig { enabled: true, window_s: 3600, min_rows: 500, psi_threshold: 0.2, sample: 1.0 }
    }
}

/// The largest queue a config may ask for: each waiting record holds a request's pieces.
const MAX_QUEUE: usize = 1 << 22;

fn invalid(key: &str, message: &str) -> Result<(), ConfigError> {
    Err(ConfigError::Invalid { key: key.into(), message: message.into() })
}

fn share(key: &str, v: f64) -> Result<(), ConfigError> {
    if (0.0..=1.0).contains(&v) { Ok(()) } else { invalid(key, "must be between 0 and 1") }
}

impl PredictionLogConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        share("prediction_log.sample", self.sample)?;
        for (model, m) in &self.models {
            share(&format!("prediction_log.models.{model}.sample"), m.sample)?;
        }
        if self.queue == 0 || self.queue > MAX_QUEUE {
            return invalid("prediction_log.queue", &format!("must be between 1 and {MAX_QUEUE}"));
        }
        if self.batch == 0 || self.batch > self.queue {
            return invalid("prediction_log.batch", "must be between 1 and prediction_log.queue");
        }
        if self.enabled && self.files.is_none() && self.stream.is_none() {
            return invalid(
                "prediction_log",
                "enabled without a sink: add [prediction_log.files] or [prediction_log.stream]",
            );
        }
        if let Some(files) = &self.files {
            if files.dir.as_os_str().is_empty() {
                return invalid("prediction_log.files.dir", "must not be empty");
            }
            if files.max_file_bytes < 4096 {
                return invalid("prediction_log.files.max_file_bytes", "must be at least 4096");
            }
            if files.max_file_age_s == 0 {
                return invalid("prediction_log.files.max_file_age_s", "must be greater than 0");
            }
        }
        if let Some(stream) = &self.stream {
            if stream.key.is_empty() {
                return invalid("prediction_log.stream.key", "must not be empty");
            }
            if stream.maxlen == 0 {
                return invalid("prediction_log.stream.maxlen", "must be greater than 0");
            }
            if stream.timeout_ms == 0 {
                return invalid("prediction_log.stream.timeout_ms", "must be greater than 0");
            }
            if stream.url.is_empty() && (stream.password_file.is_some() || stream.ca_file.is_some()) {
                return invalid(
                    "prediction_log.stream.password_file",
                    "only with prediction_log.stream.url (without it the store's Redis settings apply)",
                );
            }
        }
        Ok(())
    }
}

impl DriftConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        share("drift.sample", self.sample)?;
        if self.window_s < 10 {
            return invalid("drift.window_s", "must be at least 10 (seconds)");
        }
        if !(self.psi_threshold.is_finite() && self.psi_threshold > 0.0) {
            return invalid("drift.psi_threshold", "must be a number greater than 0");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(result: Result<(), ConfigError>) -> String {
        match result {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("expected an invalid key, got {other:?}"),
        }
    }

    #[test]
    fn mistakes_name_their_key() {
        let on = PredictionLogConfig { enabled: true, ..PredictionLogConfig::default() };
        assert_eq!(key_of(on.validate()), "prediction_log");
        let files = Some(FilesSinkConfig::default());
        assert!(PredictionLogConfig { files: files.clone(), ..on.clone() }.validate().is_ok());
        let bad_sample = PredictionLogConfig { sample: 1.5, files: files.clone(), ..on.clone() };
        assert_eq!(key_of(bad_sample.validate()), "prediction_log.sample");
        let mut per_model = PredictionLogConfig { files: files.clone(), ..on.clone() };
        per_model.models.insert("fraud".into(), ModelLogConfig { sample: -0.1 });
        assert_eq!(key_of(per_model.validate()), "prediction_log.models.fraud.sample");
        let batch = PredictionLogConfig { batch: 0, files: files.clone(), ..on.clone() };
        assert_eq!(key_of(batch.validate()), "prediction_log.batch");
        let queue = PredictionLogConfig { queue: 0, files, ..on.clone() };
        assert_eq!(key_of(queue.validate()), "prediction_log.queue");
        let small = Some(FilesSinkConfig { max_file_bytes: 10, ..FilesSinkConfig::default() });
        assert_eq!(
            key_of(PredictionLogConfig { files: small, ..on.clone() }.validate()),
            "prediction_log.files.max_file_bytes"
        );
        let stray = Some(StreamSinkConfig { password_file: Some("p".into()), ..StreamSinkConfig::default() });
        assert_eq!(
            key_of(PredictionLogConfig { stream: stray, ..on.clone() }.validate()),
            "prediction_log.stream.password_file"
        );
        let no_key = Some(StreamSinkConfig { key: String::new(), ..StreamSinkConfig::default() });
        assert_eq!(
            key_of(PredictionLogConfig { stream: no_key, ..on }.validate()),
            "prediction_log.stream.key"
        );
        assert_eq!(
            key_of(DriftConfig { window_s: 1, ..DriftConfig::default() }.validate()),
            "drift.window_s"
        );
        assert_eq!(
            key_of(DriftConfig { psi_threshold: 0.0, ..DriftConfig::default() }.validate()),
            "drift.psi_threshold"
        );
        assert_eq!(key_of(DriftConfig { sample: 2.0, ..DriftConfig::default() }.validate()), "drift.sample");
    }

    #[test]
    fn stream_urls_are_not_printed() {
        let s =
            StreamSinkConfig { url: "redis://:hunter2@10.0.0.1:6379".into(), ..StreamSinkConfig::default() };
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
