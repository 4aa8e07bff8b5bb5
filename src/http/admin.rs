//! The admin API: promote and roll back aliases, read their history. Requires
//! `Authorization: Bearer <admin.token>`; without a configured token it is off (403).
//! The alias moves in the registry (so every replica follows) and this replica swaps
//! before answering.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use crate::Error;
use crate::config::Secret;
use crate::predict::Predictor;
use crate::registry::lifecycle::{self, Move, MoveRequest};
use crate::registry::{PRODUCTION, VersionState};

#[derive(Clone)]
pub struct AdminState {
    pub predictor: Predictor,
    pub token: Option<Arc<Secret>>,
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

fn authorize(state: &AdminState, headers: &HeaderMap) -> Result<(), Error> {
    let expected = state.token.as_ref().ok_or(Error::AdminDisabled)?;
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(Error::Unauthorized)?;
    if token_matches(given.trim(), expected) { Ok(()) } else { Err(Error::Unauthorized) }
}

fn parse<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, ApiError> {
    let text = if body.iter().all(u8::is_ascii_whitespace) { &b"{}"[..] } else { &body[..] };
    serde_json::from_slice(text).map_err(|e| {
        let field = e.to_string();
        ApiError::from(Error::invalid("body", field))
    })
}

async fn move_alias(
    state: &AdminState,
    model: String,
    action: Move,
    request: MoveRequest,
) -> Result<Value, ApiError> {
    let registry = state.predictor.registry_handle();
    let metrics = state.predictor.metrics().clone();
    let outcome = tokio::task::spawn_blocking(move || -> Result<_, Error> {
        let outcome = lifecycle::move_alias(registry.dir(), &model, action, &request, |v| {
            registry.ensure_loaded(&model, v)
        })?;
        // Swap this replica now; the others follow through the registry watcher.
        registry.reconcile().map_err(|e| Error::Registry(e.to_string()))?;
        Ok(outcome)
    })
    .await
    .map_err(|e| Error::Registry(format!("promotion task failed: {e}")))??;
    let action = match outcome.action {
        crate::registry::state::Action::Promote => "promote",
        crate::registry::state::Action::Rollback => "rollback",
    };
    metrics.alias_moves.with_label_values(&[outcome.model.as_str(), outcome.alias.as_str(), action]).inc();
    Ok(serde_json::to_value(&outcome).unwrap_or(Value::Null))
}

pub async fn promote(
    State(state): State<AdminState>,
    Path(model): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let body: PromoteBody = parse(&body)?;
    let request = MoveRequest {
        alias: body.alias,
        by: body.by.unwrap_or_else(|| "admin-api".into()),
        reason: body.reason,
    };
    Ok(Json(move_alias(&state, model, Move::Promote(body.version), request).await?))
}

pub async fn rollback(
    State(state): State<AdminState>,
    Path(model): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let body: RollbackBody = parse(&body)?;
    let request = MoveRequest {
        alias: body.alias,
        by: body.by.unwrap_or_else(|| "admin-api".into()),
        reason: body.reason,
    };
    Ok(Json(move_alias(&state, model, Move::Rollback, request).await?))
}

pub async fn history(
    State(state): State<AdminState>,
    Path(model): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let dir = state.predictor.registry().dir();
    if !dir.model_dir(&model).is_dir() {
        return Err(Error::ModelNotFound { model }.into());
    }
    let st = lifecycle::read_state(dir, &model)?;
    Ok(Json(json!({ "model": model, "aliases": st.aliases, "history": st.history })))
}

/// Open Inference Protocol model repository extension: every model version in the
/// registry directory with its state.
pub async fn repository_index(
    State(state): State<AdminState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let registry = state.predictor.registry();
    let snapshot = registry.snapshot();
    let dir = registry.dir();
    let mut index = Vec::new();
    for model in dir.models().map_err(|e| Error::Registry(e.to_string()))? {
        let versions = dir.versions(&model).unwrap_or_default();
        for v in versions {
            let entry = snapshot.models.get(&model);
            let (state, reason) = match entry.and_then(|e| e.versions.get(&v)) {
                Some(VersionState::Ready(_)) => ("READY", String::new()),
                Some(VersionState::Failed(reason)) => ("UNAVAILABLE", reason.clone()),
                None if entry.is_some() => ("UNAVAILABLE", "not resident (registry.keep_latest)".into()),
                None => ("UNAVAILABLE", "model not loaded".into()),
            };
            index.push(json!({ "name": model, "version": v.to_string(), "state": state, "reason": reason }));
        }
    }
    Ok(Json(Value::Array(index)))
}

pub async fn repository_load(
    State(state): State<AdminState>,
    Path(model): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let registry = state.predictor.registry_handle();
    tokio::task::spawn_blocking(move || registry.load_model(&model))
        .await
        .map_err(|e| Error::Registry(format!("load task failed: {e}")))??;
    Ok(Json(json!({})))
}

pub async fn repository_unload(
    State(state): State<AdminState>,
    Path(model): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let registry = state.predictor.registry_handle();
    tokio::task::spawn_blocking(move || registry.unload_model(&model))
        .await
        .map_err(|e| Error::Registry(format!("unload task failed: {e}")))??;
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
