//! `GET /v1/models[/{model}]`: what is served, per version.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::error::ApiError;
use crate::Error;
use crate::predict::Predictor;
use crate::registry::{ModelEntry, VersionState};

pub async fn list(State(p): State<Predictor>) -> Json<Value> {
    let snapshot = p.registry().snapshot();
    let models: Vec<Value> = snapshot.models.iter().map(|(name, entry)| describe(name, entry)).collect();
    Json(json!({ "models": models, "store": p.features().describe() }))
}

pub async fn show(State(p): State<Predictor>, Path(model): Path<String>) -> Result<Json<Value>, ApiError> {
    let snapshot = p.registry().snapshot();
    let entry = snapshot.models.get(&model).ok_or_else(|| Error::ModelNotFound { model: model.clone() })?;
    Ok(Json(describe(&model, entry)))
}

fn describe(name: &str, entry: &ModelEntry) -> Value {
    let versions: Vec<Value> = entry
        .versions
        .iter()
        .map(|(version, state)| match state {
            VersionState::Ready(v) => {
                let m = &v.manifest;
                let view = v.view.spec();
                json!({
                    "version": version,
                    "state": "ready",
                    "backend": v.backend.kind().as_str(),
                    "description": m.model.description,
                    "created_at": m.model.created_at,
                    "framework": m.model.framework,
                    "sha256": m.model.sha256,
                    "inference": if v.inline { "inline" } else { "blocking-pool" },
                    "warmup_latency_us": v.warmup_latency.as_secs_f64() * 1e6,
                    "input": { "tensor": m.model.input.name, "columns": v.view.input_names() },
                    "outputs": m.outputs.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(),
                    "feature_view": {
                        "name": view.name,
                        "entities": view.entities,
                        "groups": view.groups.iter().map(|g| json!({
                            "name": g.name,
                            "entities": g.entities,
                            "features": g.features.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
                        })).collect::<Vec<_>>(),
                        "request": view.request.iter().map(|f| json!({
                            "name": f.name, "dtype": f.dtype, "required": f.default.is_none(),
                        })).collect::<Vec<_>>(),
                        "on_demand": view.on_demand.iter().map(|f| json!({"name": f.name, "expr": f.expr})).collect::<Vec<_>>(),
                    },
                    "training": m.training,
                })
            }
            VersionState::Failed(reason) => json!({ "version": version, "state": "failed", "reason": reason }),
        })
        .chain(
            entry
                .on_disk
                .iter()
                .filter(|v| !entry.versions.contains_key(v))
                .map(|v| json!({ "version": v, "state": "not_loaded" })),
        )
        .collect();
    json!({
        "name": name,
        "ready": entry.is_ready(),
        "aliases": entry.aliases,
        "alias_errors": entry.alias_errors,
        "state_error": entry.state_error,
        "versions": versions,
    })
}
