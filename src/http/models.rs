//! `GET /v1/models[/{model}]`: what is served, per version.

use axum::Json;
use axum::extract::{Path, State};

use super::error::ApiError;
use crate::predict::Predictor;
use crate::predict::describe::{ModelInfo, ModelList};

pub async fn list(State(p): State<Predictor>) -> Json<ModelList> {
    Json(p.models())
}

pub async fn show(
    State(p): State<Predictor>,
    Path(model): Path<String>,
) -> Result<Json<ModelInfo>, ApiError> {
    Ok(Json(p.model(&model)?))
}
