//! The HTTP transport (axum): decode, call [`crate::predict::Predictor`], encode.

mod admin;
pub mod dto;
pub mod error;
mod extract;
mod fast_decode;
mod models;
pub mod oip;
pub mod server;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tower_http::catch_panic::CatchPanicLayer;

use self::error::ApiError;
use self::extract::{Admitted, Body, PredictHeaders};
use crate::predict::{Predictor, Target};
use crate::secret::Secret;

/// What the HTTP API needs beside the core.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// The admin API's bearer token; `None` turns the admin API off.
    pub admin_token: Option<Secret>,
}

pub fn router(predictor: Predictor, options: HttpOptions) -> Router {
    let admin_token = options.admin_token;
    let admin = Router::new()
        .route("/v1/admin/models/{model}/promote", post(admin::promote))
        .route("/v1/admin/models/{model}/rollback", post(admin::rollback))
        .route("/v1/admin/models/{model}/history", get(admin::history))
        .route("/v1/admin/models/{model}/rollout/{step}", post(admin::rollout))
        .route("/v2/repository/index", post(admin::repository_index))
        .route("/v2/repository/models/{model}/load", post(admin::repository_load))
        .route("/v2/repository/models/{model}/unload", post(admin::repository_unload))
        .with_state(admin::AdminState { predictor: predictor.clone(), token: admin_token.map(Arc::new) });
    // Requests that cost something pass admission control first (the `Admitted`
    // extractor); health, readiness, metrics and metadata are never refused.
    let costly = Router::new()
        .route("/v1/models/{model}/predict", post(predict_production))
        .route("/v1/models/{model}/versions/{version}/predict", post(predict_version))
        .route("/v1/models/{model}/aliases/{alias}/predict", post(predict_alias))
        .route("/v2/models/{model}/infer", post(oip::infer_latest))
        .route("/v2/models/{model}/versions/{version}/infer", post(oip::infer_version))
        .with_state(predictor.clone());
    Router::new()
        .route("/v1/models", get(models::list))
        .route("/v1/models/{model}", get(models::show))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/v2", get(oip::server_metadata))
        .route("/v2/health/live", get(oip::live))
        .route("/v2/health/ready", get(oip::ready))
        .route("/v2/models/{model}", get(oip::metadata_latest))
        .route("/v2/models/{model}/ready", get(oip::ready_latest))
        .route("/v2/models/{model}/versions/{version}", get(oip::metadata_version))
        .route("/v2/models/{model}/versions/{version}/ready", get(oip::ready_version))
        .with_state(predictor)
        .merge(admin)
        .merge(costly)
        .fallback(not_found)
        .layer(middleware::from_fn(log_request))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::with_status(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
                .into_response()
        }))
}

/// The header in which an HTTP client may ask for a deadline shorter than the server's.
pub const TIMEOUT_HEADER: &str = "x-request-timeout-ms";
/// Every predict and infer answer names the version that served it (a canary's share
/// included) in this header too.
pub const MODEL_VERSION_HEADER: &str = "x-model-version";
/// The caller's id for a prediction, answered back (one is made without it).
pub use crate::observe::request_id::REQUEST_ID_HEADER;

/// The client's own deadline, from [`TIMEOUT_HEADER`] (milliseconds).
pub fn client_timeout(headers: &HeaderMap) -> Result<Option<Duration>, String> {
    let Some(value) = headers.get(TIMEOUT_HEADER) else { return Ok(None) };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|ms| Some(Duration::from_millis(ms)))
        .ok_or_else(|| format!("header {TIMEOUT_HEADER}: expected a whole number of milliseconds"))
}

async fn predict_production(
    State(p): State<Predictor>,
    _: Admitted,
    Path(model): Path<String>,
    headers: PredictHeaders,
    Body(body): Body,
) -> Result<Response, ApiError> {
    predict(&p, &model, &Target::production(), headers, body).await
}

async fn predict_version(
    State(p): State<Predictor>,
    _: Admitted,
    Path((model, version)): Path<(String, String)>,
    headers: PredictHeaders,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let target = version_target(&version)?;
    predict(&p, &model, &target, headers, body).await
}

/// A version path parameter; unlike an absent version in other protocols, an empty one is
/// not the production alias here.
fn version_target(version: &str) -> Result<Target, ApiError> {
    let bad = |e: crate::Error| ApiError::bad_request("invalid_version", e.to_string());
    match Target::from_version_text("version", version) {
        Ok(target @ Target::Version(_)) => Ok(target),
        Ok(Target::Alias(_)) => Err(bad(crate::Error::invalid("version", "must not be empty"))),
        Err(e) => Err(bad(e)),
    }
}

async fn predict_alias(
    State(p): State<Predictor>,
    _: Admitted,
    Path((model, alias)): Path<(String, String)>,
    headers: PredictHeaders,
    Body(body): Body,
) -> Result<Response, ApiError> {
    predict(&p, &model, &Target::Alias(alias), headers, body).await
}

async fn predict(
    p: &Predictor,
    model: &str,
    target: &Target,
    headers: PredictHeaders,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut request = dto::parse_predict(&body)?;
    request.timeout = headers.timeout;
    request.request_id = headers.request_id;
    let batch = request.batch;
    let response = p.predict(model, target, request).await?;
    let mut http = Json(dto::render_predict(&response, batch)).into_response();
    let headers = http.headers_mut();
    headers.insert(MODEL_VERSION_HEADER, axum::http::HeaderValue::from(response.version));
    // Checked by the core: 1-128 printable ASCII characters, always a valid header value.
    if let Ok(id) = axum::http::HeaderValue::from_str(&response.request_id) {
        headers.insert(REQUEST_ID_HEADER, id);
    }
    Ok(http)
}

async fn live() -> Json<serde_json::Value> {
    Json(json!({"status": "live"}))
}

async fn ready(State(p): State<Predictor>) -> Response {
    let readiness = p.readiness();
    let status = if readiness.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(readiness)).into_response()
}

async fn metrics(State(p): State<Predictor>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], p.render_metrics()).into_response()
}

async fn not_found(request: Request) -> ApiError {
    let message = format!("no route for {} {}", request.method(), request.uri().path());
    ApiError::with_status(StatusCode::NOT_FOUND, "no_route", message)
}

/// One line per request at debug level; the route template, never the raw path. Costs
/// nothing when debug is off.
async fn log_request(request: Request, next: Next) -> Response {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return next.run(request).await;
    }
    let start = Instant::now();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string());
    let response = next.run(request).await;
    tracing::debug!(
        %method,
        route = route.as_deref().unwrap_or("-"),
        status = response.status().as_u16(),
        micros = start.elapsed().as_micros() as u64,
        "request"
    );
    response
}
