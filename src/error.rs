//! The domain error vocabulary. Transports map every variant explicitly (no catch-all arm),
//! so a new failure class does not compile until someone decides how clients see it.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("model `{model}` is not served here")]
    ModelNotFound { model: String },

    #[error("model `{model}` has no version {version}")]
    VersionNotFound { model: String, version: u64 },

    #[error("model `{model}` has no alias `{alias}`")]
    AliasNotFound { model: String, alias: String },

    /// The version exists in the registry but is not loaded (it failed validation, or is
    /// still loading). `reason` is safe to show to clients.
    #[error("model `{model}` version {version} is not available: {reason}")]
    VersionUnavailable { model: String, version: u64, reason: String },

    /// A request value is missing or malformed. `field` is a path such as
    /// `rows[2].features.amount`.
    #[error("{field}: {message}")]
    InvalidInput { field: String, message: String },

    #[error("batch of {got} rows exceeds the limit of {max}")]
    TooManyRows { got: usize, max: usize },

    #[error("entity {entity} not found in feature group `{group}`")]
    EntityNotFound { group: String, entity: String },

    /// Found, but older than the group's `max_age_ms`.
    #[error("the values of entity {entity} in feature group `{group}` are older than its max_age_ms")]
    StaleFeatures { group: String, entity: String },

    #[error("feature `{feature}` of group `{group}` is required but missing for entity {entity}")]
    FeatureMissing { group: String, entity: String, feature: String },

    #[error("online feature store unavailable: {0}")]
    StoreUnavailable(String),

    #[error("request timed out after {0:?}")]
    Timeout(Duration),

    /// Admission control: more requests in flight than `server.max_in_flight`.
    #[error("overloaded: {limit} requests already in flight; retry later")]
    Overloaded { limit: usize },

    /// The model failed at run time on valid input. Details are logged, not sent.
    #[error("inference failed for model `{model}` version {version}")]
    Inference { model: String, version: u64 },

    /// A promotion's target failed validation; the registry is unchanged.
    #[error("model `{model}` version {version} cannot be promoted: {reason}")]
    VersionRefused { model: String, version: u64, reason: String },

    #[error("alias `{alias}` of model `{model}` already points at version {version}")]
    AliasUnchanged { model: String, alias: String, version: u64 },

    #[error("alias `{alias}` of model `{model}` has no earlier version to roll back to")]
    NothingToRollBack { model: String, alias: String },

    /// Reading or writing registry state failed (I/O, a corrupt state file).
    #[error("registry: {0}")]
    Registry(String),

    /// The registry source (an MLflow tracking server) was unreachable or refused the
    /// call; nothing was changed.
    #[error("registry source: {0}")]
    RegistrySource(String),
}

impl Error {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidInput { field: field.into(), message: message.into() }
    }

    /// Whether the failure is the serving version's (its run, its deadline, its store
    /// reads), so that it counts against it in a rollout's error rate; a client's mistake
    /// does not.
    pub fn is_version_fault(&self) -> bool {
        match self {
            Error::Inference { .. }
            | Error::Timeout(_)
            | Error::StoreUnavailable(_)
            | Error::VersionUnavailable { .. } => true,
            Error::ModelNotFound { .. }
            | Error::VersionNotFound { .. }
            | Error::AliasNotFound { .. }
            | Error::InvalidInput { .. }
            | Error::TooManyRows { .. }
            | Error::EntityNotFound { .. }
            | Error::StaleFeatures { .. }
            | Error::FeatureMissing { .. }
            | Error::Overloaded { .. }
            | Error::VersionRefused { .. }
            | Error::AliasUnchanged { .. }
            | Error::NothingToRollBack { .. }
            | Error::Registry(_)
            | Error::RegistrySource(_) => false,
        }
    }

    /// Stable, low-cardinality label for metrics and machine-readable error codes.
    pub fn code(&self) -> &'static str {
        match self {
            Error::ModelNotFound { .. } => "model_not_found",
            Error::VersionNotFound { .. } => "version_not_found",
            Error::AliasNotFound { .. } => "alias_not_found",
            Error::VersionUnavailable { .. } => "version_unavailable",
            Error::InvalidInput { .. } => "invalid_input",
            Error::TooManyRows { .. } => "too_many_rows",
            Error::EntityNotFound { .. } => "entity_not_found",
            Error::StaleFeatures { .. } => "stale_features",
            Error::FeatureMissing { .. } => "feature_missing",
            Error::StoreUnavailable(_) => "store_unavailable",
            Error::Timeout(_) => "timeout",
            Error::Overloaded { .. } => "overloaded",
            Error::Inference { .. } => "inference_failed",
            Error::VersionRefused { .. } => "version_refused",
            Error::AliasUnchanged { .. } => "alias_unchanged",
            Error::NothingToRollBack { .. } => "nothing_to_roll_back",
            Error::Registry(_) => "registry_error",
            Error::RegistrySource(_) => "registry_source_error",
        }
    }
}
