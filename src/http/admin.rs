//! The admin API: promote and roll back aliases, read their history. Requires
//! `Authorization: Bearer <admin.token>`; without a configured token it is off (403).
//! The alias moves in the registry (so every replica follows) and this replica swaps
//! before answering.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::extract::{Body, BodyLimits};
use crate::Error;
use crate::predict::manage::{
    Assignment, GuardSpec, History, Move, MoveOutcome, MoveRequest, RepositoryEntry, RolloutOutcome,
    RolloutStep,
};
use crate::predict::{PRODUCTION, Predictor};

use crate::secret::Secret;

#[derive(Clone)]
pub struct AdminState {
    pub predictor: Predictor,
    pub token: Option<Arc<Secret>>,
}

impl axum::extract::FromRef<AdminState> for BodyLimits {
    fn from_ref(state: &AdminState) -> BodyLimits {
        BodyLimits::from_ref(&state.predictor)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PromoteBody {
    version: u64,
    #[serde(default = "production")]
    alias: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    by: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    #[serde(default = "production")]
    alias: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    by: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RolloutBody {
    /// `canary` and `shadow`: the version.
    #[serde(default)]
    version: Option<u64>,
    /// `canary` and `weight`: the canary's share, 0 < weight < 1.
    #[serde(default)]
    weight: Option<f64>,
    #[serde(default)]
    assignment: Assignment,
    #[serde(default)]
    sticky_key: Option<String>,
    /// `shadow`: the share of requests mirrored (default all).
    #[serde(default)]
    sample: Option<f64>,
    /// `guard`: the rules (absent keys take their defaults).
    #[serde(default)]
    guard: Option<GuardSpec>,
    #[serde(default = "production")]
    alias: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    by: Option<String>,
}

fn production() -> String {
    PRODUCTION.to_string()
}

/// Compares digests, not the tokens themselves: the time taken depends on neither the
/// token's length nor the position of the first wrong byte.
fn token_matches(given: &str, expected: &Secret) -> bool {
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(expected.expose().as_bytes());
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The admin API's own refusals: authentication is the HTTP transport's business, not the
/// core's.
fn authorize(state: &AdminState, headers: &HeaderMap) -> Result<(), ApiError> {
    let disabled = || {
        ApiError::with_status(
            StatusCode::FORBIDDEN,
            "admin_disabled",
            "the admin API is off: set admin.token (FTI__ADMIN__TOKEN) to enable it",
        )
    };
    let unauthorized =
        || ApiError::with_status(StatusCode::UNAUTHORIZED, "unauthorized", "missing or wrong bearer token");
    let expected = state.token.as_ref().ok_or_else(disabled)?;
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let reason = match given {
        Some(given) if token_matches(given.trim(), expected) => return Ok(()),
        Some(_) => "wrong",
        None => "missing",
    };
    state.predictor.count_auth_failure(reason);
    Err(unauthorized())
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    let text = if body.iter().all(u8::is_ascii_whitespace) { &b"{}"[..] } else { body };
    serde_json::from_slice(text).map_err(|e| {
        let field = e.to_string();
        ApiError::from(Error::invalid("body", field))
    })
}

pub async fn promote(
    State(state): State<AdminState>,
    Path(model): Path<String>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Json<MoveOutcome>, ApiError> {
    authorize(&state, &headers)?;
    let body: PromoteBody = parse(&body)?;
    let request = MoveRequest {
        alias: body.alias,
        by: body.by.unwrap_or_else(|| "admin-api".into()),
        reason: body.reason,
    };
    Ok(Json(state.predictor.move_alias(&model, Move::Promote(body.version), request).await?))
}

/// `POST /v1/admin/models/{model}/rollout/{step}`, on `alias` (production): `canary`
/// (version, weight, assignment, sticky_key), `weight` (weight), `promote`, `abort`,
/// `shadow` (version, sample), `stop-shadow`, `guard` (guard), `clear-guard`.
pub async fn rollout(
    State(state): State<AdminState>,
    Path((model, step)): Path<(String, String)>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Json<RolloutOutcome>, ApiError> {
    authorize(&state, &headers)?;
    let body: RolloutBody = parse(&body)?;
    let required = |what: &str| Error::invalid(what, "required");
    let step = match step.as_str() {
        "canary" => RolloutStep::Canary {
            version: body.version.ok_or_else(|| required("version"))?,
            weight: body.weight.ok_or_else(|| required("weight"))?,
            assignment: body.assignment,
            sticky_key: body.sticky_key.clone(),
        },
        "weight" => RolloutStep::Weight(body.weight.ok_or_else(|| required("weight"))?),
        "promote" => RolloutStep::Promote,
        "abort" => RolloutStep::Abort,
        "shadow" => RolloutStep::Shadow {
            version: body.version.ok_or_else(|| required("version"))?,
            sample: body.sample.unwrap_or(1.0),
        },
        "stop-shadow" => RolloutStep::StopShadow,
        "guard" => RolloutStep::Guard(Some(body.guard.clone().ok_or_else(|| required("guard"))?)),
        "clear-guard" => RolloutStep::Guard(None),
        other => {
            return Err(ApiError::with_status(
                StatusCode::NOT_FOUND,
                "unknown_step",
                format!(
                    "no rollout step {other:?}: canary, weight, promote, abort, shadow, stop-shadow, guard or clear-guard"
                ),
            ));
        }
    };
    let request = MoveRequest {
        alias: body.alias,
        by: body.by.unwrap_or_else(|| "admin-api".into()),
        reason: body.reason,
    };
    Ok(Json(state.predictor.rollout_step(&model, step, request).await?))
}

pub async fn rollback(
    State(state): State<AdminState>,
    Path(model): Path<String>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Json<MoveOutcome>, ApiError> {
    authorize(&state, &headers)?;
    let body: RollbackBody = parse(&body)?;
    let request = MoveRequest {
        alias: body.alias,
        by: body.by.unwrap_or_else(|| "admin-api".into()),
        reason: body.reason,
    };
    Ok(Json(state.predictor.move_alias(&model, Move::Rollback, request).await?))
}

pub async fn history(
    State(state): State<AdminState>,
    Path(model): Path<String>,
    headers: HeaderMap,
) -> Result<Json<History>, ApiError> {
    authorize(&state, &headers)?;
    Ok(Json(state.predictor.history(&model).await?))
}

/// Open Inference Protocol model repository extension: every model version in the
/// registry directory with its state.
pub async fn repository_index(
    State(state): State<AdminState>,
    headers: HeaderMap,
) -> Result<Json<Vec<RepositoryEntry>>, ApiError> {
    authorize(&state, &headers)?;
    Ok(Json(state.predictor.repository_index().await?))
}

pub async fn repository_load(
    State(state): State<AdminState>,
    Path(model): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    state.predictor.load_model(&model).await?;
    Ok(Json(json!({})))
}

pub async fn repository_unload(
    State(state): State<AdminState>,
    Path(model): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    state.predictor.unload_model(&model).await?;
    Ok(Json(json!({})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_by_digest() {
        let secret = Secret::new("0123456789abcdef");
        assert!(token_matches("0123456789abcdef", &secret));
        assert!(!token_matches("0123456789abcdeg", &secret));
        assert!(!token_matches("", &secret));
    }
}
