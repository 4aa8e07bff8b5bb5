//! The Open Inference Protocol v2 (KServe / Triton) over HTTP: health, server and model
//! metadata, readiness, and `infer` with tensors in JSON or with the binary tensor data
//! extension (tritonclient sends binary by default). `infer` takes the model's input
//! tensor directly: entity lookups and on-demand features belong to the `/v1` API.
//! Errors are `{"error": "..."}` with a 4xx/5xx status, as the specification has them.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::error::status_of;
use super::extract::{Admitted, Body};
use crate::predict::describe::{ModelMetadata, SERVER_NAME, SERVER_VERSION};
use crate::predict::{InferResponse, Predictor, Target, Tensor, TensorData, TensorInput};
use crate::{Error, oip};

/// Header that splits a binary-extension body into its JSON part and the raw tensors.
const HEADER_LENGTH: &str = "inference-header-content-length";

/// An error in the specification's form.
#[derive(Debug)]
pub struct OipError(StatusCode, String);

impl OipError {
    /// The status the client gets.
    pub fn status(&self) -> StatusCode {
        self.0
    }
}

impl From<Error> for OipError {
    fn from(e: Error) -> Self {
        OipError(status_of(&e), e.to_string())
    }
}

impl IntoResponse for OipError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

fn bad(message: impl Into<String>) -> OipError {
    OipError(StatusCode::BAD_REQUEST, message.into())
}

fn target(version: Option<&str>) -> Result<Target, OipError> {
    Target::from_version_text("model_version", version.unwrap_or_default()).map_err(|e| bad(e.to_string()))
}

pub async fn live() -> Json<Value> {
    Json(json!({ "live": true }))
}

pub async fn ready(State(p): State<Predictor>) -> Response {
    let ready = p.is_ready();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(json!({ "ready": ready }))).into_response()
}

pub async fn server_metadata() -> Json<Value> {
    Json(json!({
        "name": SERVER_NAME,
        "version": SERVER_VERSION,
        "extensions": ["binary_tensor_data"],
    }))
}

fn metadata_json(m: &ModelMetadata) -> Value {
    let tensors = |list: &[crate::predict::TensorMeta]| -> Vec<Value> {
        list.iter().map(|t| json!({ "name": t.name, "datatype": t.datatype, "shape": t.shape })).collect()
    };
    json!({
        "name": m.name,
        "versions": m.versions.iter().map(u64::to_string).collect::<Vec<_>>(),
        "platform": m.platform,
        "inputs": tensors(&m.inputs),
        "outputs": tensors(&m.outputs),
    })
}

async fn model_metadata(p: &Predictor, model: &str, version: Option<&str>) -> Result<Json<Value>, OipError> {
    Ok(Json(metadata_json(&p.model_metadata(model, &target(version)?)?)))
}

pub async fn metadata_latest(
    State(p): State<Predictor>,
    Path(model): Path<String>,
) -> Result<Json<Value>, OipError> {
    model_metadata(&p, &model, None).await
}

pub async fn metadata_version(
    State(p): State<Predictor>,
    Path((model, version)): Path<(String, String)>,
) -> Result<Json<Value>, OipError> {
    model_metadata(&p, &model, Some(&version)).await
}

fn model_ready(p: &Predictor, model: &str, version: Option<&str>) -> Result<Response, OipError> {
    let ready = p.model_ready(model, &target(version)?);
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    Ok((status, Json(json!({ "name": model, "ready": ready }))).into_response())
}

pub async fn ready_latest(
    State(p): State<Predictor>,
    Path(model): Path<String>,
) -> Result<Response, OipError> {
    model_ready(&p, &model, None)
}

pub async fn ready_version(
    State(p): State<Predictor>,
    Path((model, version)): Path<(String, String)>,
) -> Result<Response, OipError> {
    model_ready(&p, &model, Some(&version))
}

pub async fn infer_latest(
    State(p): State<Predictor>,
    _: Admitted,
    Path(model): Path<String>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, OipError> {
    infer(&p, &model, None, &headers, &body).await
}

pub async fn infer_version(
    State(p): State<Predictor>,
    _: Admitted,
    Path((model, version)): Path<(String, String)>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, OipError> {
    infer(&p, &model, Some(&version), &headers, &body).await
}

/// Which outputs to return, and which of them as binary.
struct Wanted {
    names: Option<Vec<(String, bool)>>,
    binary_default: bool,
}

/// What an infer request asks for besides its input: outputs and the `id` to echo.
pub struct InferOptions {
    wanted: Wanted,
    id: Option<Value>,
}

async fn infer(
    p: &Predictor,
    model: &str,
    version: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, OipError> {
    let (mut input, options) = decode_infer(headers, body)?;
    input.timeout = super::client_timeout(headers).map_err(bad)?;
    let response = p.infer(model, &target(version)?, input).await?;
    encode_infer(model, &options, &response)
}

/// Decodes an infer request body: JSON, or JSON followed by binary tensor data
/// (`Inference-Header-Content-Length`).
pub fn decode_infer(headers: &HeaderMap, body: &[u8]) -> Result<(TensorInput, InferOptions), OipError> {
    let (json_part, mut binary) = match headers.get(HEADER_LENGTH) {
        Some(v) => {
            let n: usize = v
                .to_str()
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| bad("Inference-Header-Content-Length must be a number"))?;
            if n > body.len() {
                return Err(bad(format!(
                    "Inference-Header-Content-Length {n} exceeds the body ({} bytes)",
                    body.len()
                )));
            }
            body.split_at(n)
        }
        None => (body, &[][..]),
    };
    let request: Value =
        serde_json::from_slice(json_part).map_err(|e| bad(format!("request body is not valid JSON: {e}")))?;
    let Value::Object(mut request) = request else { return Err(bad("the request must be a JSON object")) };
    let inputs =
        request.get("inputs").and_then(Value::as_array).ok_or_else(|| bad("`inputs` must be an array"))?;
    if inputs.len() != 1 {
        return Err(bad(format!("this model takes exactly one input tensor, got {}", inputs.len())));
    }
    let input = decode_input(&inputs[0], json_part.len(), &mut binary)?;
    if !binary.is_empty() {
        return Err(bad(format!(
            "{} bytes of binary data follow the inputs that were declared",
            binary.len()
        )));
    }
    let wanted = requested_outputs(&request)?;
    Ok((input, InferOptions { wanted, id: request.remove("id") }))
}

/// Encodes the answer to an infer request: JSON, or JSON followed by the outputs asked
/// for as binary.
pub fn encode_infer(
    model: &str,
    options: &InferOptions,
    response: &InferResponse,
) -> Result<Response, OipError> {
    let wanted = &options.wanted;
    let outputs_of = &response.outputs;
    let selected: Vec<(usize, bool)> = match &wanted.names {
        None => (0..outputs_of.len()).map(|i| (i, wanted.binary_default)).collect(),
        Some(list) => list
            .iter()
            .map(|(name, binary)| {
                outputs_of.iter().position(|o| o.name == *name).map(|i| (i, *binary)).ok_or_else(|| {
                    let names: Vec<&str> = outputs_of.iter().map(|o| o.name.as_str()).collect();
                    bad(format!("unknown output `{name}` (the model has: {})", names.join(", ")))
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let mut outputs = Vec::new();
    let mut raw = Vec::new();
    for (i, as_binary) in selected {
        let t = &outputs_of[i].tensor;
        let mut out = Map::new();
        out.insert("name".into(), json!(outputs_of[i].name));
        out.insert("datatype".into(), json!(t.datatype()));
        out.insert("shape".into(), json!(t.shape));
        if as_binary {
            let before = raw.len();
            oip::append_raw(t, &mut raw);
            out.insert("parameters".into(), json!({ "binary_data_size": raw.len() - before }));
        } else {
            out.insert("data".into(), data_json(t));
        }
        outputs.push(Value::Object(out));
    }
    let mut body = Map::new();
    body.insert("model_name".into(), json!(model));
    body.insert("model_version".into(), json!(response.version.to_string()));
    if let Some(id) = &options.id {
        body.insert("id".into(), id.clone());
    }
    body.insert("outputs".into(), Value::Array(outputs));
    let header_json = serde_json::to_vec(&Value::Object(body)).unwrap_or_default();
    let version =
        (header::HeaderName::from_static(super::MODEL_VERSION_HEADER), HeaderValue::from(response.version));
    if raw.is_empty() {
        let content = (header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return Ok(([content, version], header_json).into_response());
    }
    let length = header_json.len();
    let mut bytes = header_json;
    bytes.extend_from_slice(&raw);
    let content = (header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    let mut response = ([content, version], bytes).into_response();
    response.headers_mut().insert(HEADER_LENGTH, HeaderValue::from(length));
    Ok(response)
}

fn requested_outputs(request: &Map<String, Value>) -> Result<Wanted, OipError> {
    let binary_default = request
        .get("parameters")
        .and_then(|p| p.get("binary_data_output"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let names = match request.get("outputs") {
        None | Some(Value::Null) => None,
        Some(Value::Array(list)) => Some(
            list.iter()
                .map(|o| {
                    let name = o
                        .get("name")
                        .and_then(Value::as_str)
                        .ok_or_else(|| bad("each of `outputs` needs a `name`"))?;
                    let binary = o
                        .get("parameters")
                        .and_then(|p| p.get("binary_data"))
                        .and_then(Value::as_bool)
                        .unwrap_or(binary_default);
                    Ok((name.to_string(), binary))
                })
                .collect::<Result<Vec<_>, OipError>>()?,
        ),
        Some(_) => return Err(bad("`outputs` must be an array")),
    };
    Ok(Wanted { names, binary_default })
}

/// `json_len`: the size of the JSON part of the body, which bounds how many values it
/// can carry.
fn decode_input(input: &Value, json_len: usize, binary: &mut &[u8]) -> Result<TensorInput, OipError> {
    let name = input.get("name").and_then(Value::as_str).ok_or_else(|| bad("inputs[0].name is required"))?;
    let shape: Vec<usize> = input
        .get("shape")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("inputs[0].shape must be an array"))?
        .iter()
        .map(|d| {
            d.as_u64()
                .map(|d| d as usize)
                .ok_or_else(|| bad("inputs[0].shape: dimensions must be non-negative integers"))
        })
        .collect::<Result<_, _>>()?;
    let datatype =
        input.get("datatype").and_then(Value::as_str).ok_or_else(|| bad("inputs[0].datatype is required"))?;
    let width = oip::input_width(datatype).map_err(|m| bad(format!("inputs[0].datatype: {m}")))?;
    let count = oip::element_count(&shape).map_err(|m| bad(format!("inputs[0].shape: {m}")))?;
    let size = input.get("parameters").and_then(|p| p.get("binary_data_size")).and_then(Value::as_u64);
    let data = match (size, input.get("data")) {
        (Some(size), _) => {
            let size = usize::try_from(size).unwrap_or(usize::MAX);
            if count.checked_mul(width) != Some(size) || size > binary.len() {
                return Err(bad(format!(
                    "inputs[0]: binary_data_size {size} does not match shape {shape:?} of {datatype} ({} bytes available)",
                    binary.len()
                )));
            }
            let (bytes, rest) = binary.split_at(size);
            *binary = rest;
            oip::decode_raw(datatype, bytes).map_err(|m| bad(format!("inputs[0]: {m}")))?
        }
        (None, Some(data)) => {
            // Every JSON number takes at least one byte of the body, so a shape that needs
            // more values than the body has bytes is refused before anything is sized by it.
            if count > json_len {
                return Err(bad(format!(
                    "inputs[0]: shape {shape:?} needs {count} values; a body of {json_len} bytes cannot hold them"
                )));
            }
            let mut flat = Vec::with_capacity(count);
            flatten(data, &mut flat)?;
            flat
        }
        (None, None) => return Err(bad("inputs[0] has neither `data` nor binary data")),
    };
    if data.len() != count {
        return Err(bad(format!("inputs[0]: shape {shape:?} needs {count} values, got {}", data.len())));
    }
    Ok(TensorInput { name: name.to_string(), shape, data, timeout: None })
}

/// Row-major `data`, flat or nested as the shape.
fn flatten(v: &Value, out: &mut Vec<f32>) -> Result<(), OipError> {
    match v {
        Value::Array(items) => items.iter().try_for_each(|i| flatten(i, out)),
        Value::Number(n) => {
            out.push(n.as_f64().unwrap_or(f64::NAN) as f32);
            Ok(())
        }
        other => Err(bad(format!("inputs[0].data: expected numbers, got {other}"))),
    }
}

fn data_json(t: &Tensor) -> Value {
    match &t.data {
        TensorData::F32(v) => v.iter().map(|&x| finite_or_null(f64::from(x))).collect(),
        TensorData::F64(v) => v.iter().map(|&x| finite_or_null(x)).collect(),
        TensorData::I64(v) => json!(v),
    }
}

fn finite_or_null(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}
