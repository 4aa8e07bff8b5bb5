//! The APIs under load. Requests are encoded once, before the run, into a ring that calls
//! index into, so the client spends its time sending, not serialising.

use std::sync::Mutex;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tonic::transport::{Channel, Endpoint};

use crate::cli::{Plan, TargetKind};
use crate::record::Answer;

#[allow(clippy::all, clippy::pedantic, clippy::nursery, missing_docs)]
pub mod pb {
    pub mod inference {
        tonic::include_proto!("inference");
    }
    pub mod fti {
        tonic::include_proto!("fti.v1");
    }
}

use pb::fti::prediction_service_client::PredictionServiceClient;
use pb::inference::grpc_inference_service_client::GrpcInferenceServiceClient;

pub enum Target {
    Http(HttpTarget),
    Grpc {
        clients: Vec<PredictionServiceClient<Channel>>,
        requests: Vec<pb::fti::PredictRequest>,
    },
    OipGrpc {
        clients: Vec<GrpcInferenceServiceClient<Channel>>,
        requests: Vec<pb::inference::ModelInferRequest>,
    },
}

impl Target {
    /// Encodes `bodies` for the chosen API and connects (gRPC eagerly, HTTP one connection
    /// to check the address), so a wrong `--url` fails before the run starts.
    pub async fn connect(plan: &Plan, bodies: &[Value]) -> Result<Self> {
        let version = plan.version.map(|v| v.to_string());
        match plan.target {
            TargetKind::Post => {
                let path = plan.path.clone().unwrap_or_default();
                let bodies = bodies
                    .iter()
                    .map(|b| serde_json::to_vec(b).map(Bytes::from))
                    .collect::<Result<_, _>>()
                    .context("encoding the corpus")?;
                let target = HttpTarget::new(&plan.url, path, bodies, plan.connections, VersionField::None)?;
                target.check().await?;
                Ok(Self::Http(target))
            }
            TargetKind::Get => {
                let path = plan.path.clone().unwrap_or_default();
                let target =
                    HttpTarget::new(&plan.url, path, Vec::new(), plan.connections, VersionField::None)?;
                target.check().await?;
                Ok(Self::Http(target))
            }
            TargetKind::Http | TargetKind::Oip => {
                let (path, answer_version) = match (plan.target, &version) {
                    (TargetKind::Http, None) => {
                        (format!("/v1/models/{}/predict", plan.model), VersionField::Predict)
                    }
                    (TargetKind::Http, Some(v)) => {
                        (format!("/v1/models/{}/versions/{v}/predict", plan.model), VersionField::Predict)
                    }
                    (_, None) => (format!("/v2/models/{}/infer", plan.model), VersionField::Oip),
                    (_, Some(v)) => {
                        (format!("/v2/models/{}/versions/{v}/infer", plan.model), VersionField::Oip)
                    }
                };
                // JSON has no NaN: OIP REST bodies with missing (null) inputs would be refused.
                let kept: Vec<&Value> =
                    bodies.iter().filter(|b| plan.target == TargetKind::Http || !has_null_data(b)).collect();
                if kept.is_empty() {
                    bail!(
                        "--corpus: every input tensor has missing values, which JSON cannot carry; use --target oip-grpc"
                    );
                }
                if kept.len() < bodies.len() {
                    eprintln!(
                        "fti-loadtest: skipping {} of {} corpus rows whose input has missing values (JSON cannot carry NaN; oip-grpc sends them)",
                        bodies.len() - kept.len(),
                        bodies.len()
                    );
                }
                let bodies = kept
                    .into_iter()
                    .map(|b| serde_json::to_vec(b).map(Bytes::from))
                    .collect::<Result<_, _>>()
                    .context("encoding the corpus")?;
                let target = HttpTarget::new(&plan.url, path, bodies, plan.connections, answer_version)?;
                target.check().await?;
                Ok(Self::Http(target))
            }
            TargetKind::Grpc => {
                let requests = bodies
                    .iter()
                    .enumerate()
                    .map(|(i, b)| {
                        predict_request(b, &plan.model, plan.version).with_context(|| format!("request {i}"))
                    })
                    .collect::<Result<_>>()?;
                let channels = channels(&plan.url, plan.connections).await?;
                Ok(Self::Grpc {
                    clients: channels.into_iter().map(PredictionServiceClient::new).collect(),
                    requests,
                })
            }
            TargetKind::OipGrpc => {
                let requests = bodies
                    .iter()
                    .enumerate()
                    .map(|(i, b)| {
                        infer_request(b, &plan.model, version.as_deref())
                            .with_context(|| format!("request {i}"))
                    })
                    .collect::<Result<_>>()?;
                let channels = channels(&plan.url, plan.connections).await?;
                Ok(Self::OipGrpc {
                    clients: channels.into_iter().map(GrpcInferenceServiceClient::new).collect(),
                    requests,
                })
            }
        }
    }

    /// Sends the `i`-th request of the ring (wrapping) and waits for its answer.
    pub async fn call(&self, i: usize) -> Answer {
        match self {
            Self::Http(target) => target.call(i).await,
            Self::Grpc { clients, requests } => {
                let mut client = clients[i % clients.len()].clone();
                match client.predict(requests[i % requests.len()].clone()).await {
                    Ok(answer) => Answer::Ok { version: Some(answer.into_inner().version.to_string()) },
                    Err(status) => Answer::Error(grpc_kind(&status)),
                }
            }
            Self::OipGrpc { clients, requests } => {
                let mut client = clients[i % clients.len()].clone();
                match client.model_infer(requests[i % requests.len()].clone()).await {
                    Ok(answer) => Answer::Ok { version: Some(answer.into_inner().model_version) },
                    Err(status) => Answer::Error(grpc_kind(&status)),
                }
            }
        }
    }
}

async fn channels(url: &str, count: usize) -> Result<Vec<Channel>> {
    let endpoint =
        Endpoint::from_shared(url.to_owned()).with_context(|| format!("--url {url:?}"))?.tcp_nodelay(true);
    let mut channels = Vec::with_capacity(count);
    for _ in 0..count {
        channels.push(endpoint.connect().await.with_context(|| format!("cannot connect to {url}"))?);
    }
    Ok(channels)
}

/// `grpc_unavailable`, `grpc_not_found`, ...
fn grpc_kind(status: &tonic::Status) -> String {
    let name = format!("{:?}", status.code());
    let mut kind = String::from("grpc");
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            kind.push('_');
        }
        kind.push(c.to_ascii_lowercase());
    }
    kind
}

#[derive(Clone, Copy)]
enum VersionField {
    /// `"version": 2` in a `/v1` predict answer.
    Predict,
    /// `"model_version": "2"` in an OIP infer answer.
    Oip,
    /// Another server's answer: no version to find.
    None,
}

/// HTTP/1.1 over a bounded set of keep-alive connections, opened on demand.
pub struct HttpTarget {
    authority: String,
    host: HeaderValue,
    path: String,
    /// POSTed in turn; none: each request is a GET.
    bodies: Vec<Bytes>,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
    /// One permit per connection: a request waits here when all are busy, and that wait
    /// is part of its latency.
    permits: Semaphore,
    version: VersionField,
}

impl HttpTarget {
    fn new(
        url: &str,
        path: String,
        bodies: Vec<Bytes>,
        connections: usize,
        version: VersionField,
    ) -> Result<Self> {
        let uri: Uri = url.parse().with_context(|| format!("--url {url:?}"))?;
        if uri.scheme_str() != Some("http") {
            bail!("--url {url:?}: HTTP targets speak plain http:// (no TLS)");
        }
        let authority = uri.authority().ok_or_else(|| anyhow!("--url {url:?}: no host:port"))?;
        let authority = if authority.port().is_some() {
            authority.to_string()
        } else {
            format!("{}:80", authority.host())
        };
        let host = HeaderValue::from_str(&authority).with_context(|| format!("--url {url:?}"))?;
        Ok(Self {
            authority,
            host,
            path,
            bodies,
            idle: Mutex::new(Vec::with_capacity(connections)),
            permits: Semaphore::new(connections),
            version,
        })
    }

    /// Opens the first connection, so an unreachable server is reported before the run.
    async fn check(&self) -> Result<()> {
        let connection =
            self.open().await.map_err(|e| anyhow!("cannot connect to {}: {e}", self.authority))?;
        self.idle().push(connection);
        Ok(())
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<SendRequest<Full<Bytes>>>> {
        self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn open(&self) -> std::io::Result<SendRequest<Full<Bytes>>> {
        let stream = TcpStream::connect(&self.authority).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            http1::handshake(TokioIo::new(stream)).await.map_err(std::io::Error::other)?;
        tokio::spawn(connection);
        Ok(sender)
    }

    async fn call(&self, i: usize) -> Answer {
        let Ok(_permit) = self.permits.acquire().await else {
            return Answer::Error("client_closed".into());
        };
        let pooled = self.idle().pop();
        let mut sender = match pooled {
            Some(sender) if !sender.is_closed() => sender,
            _ => match self.open().await {
                Ok(sender) => sender,
                Err(_) => return Answer::Error("connect".into()),
            },
        };
        if sender.ready().await.is_err() {
            sender = match self.open().await {
                Ok(sender) => sender,
                Err(_) => return Answer::Error("connect".into()),
            };
        }
        let request = if self.bodies.is_empty() {
            Request::get(self.path.as_str())
                .header(header::HOST, self.host.clone())
                .body(Full::new(Bytes::new()))
        } else {
            Request::post(self.path.as_str())
                .header(header::HOST, self.host.clone())
                .header(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(Full::new(self.bodies[i % self.bodies.len()].clone()))
        };
        let Ok(request) = request else {
            return Answer::Error("client_request".into());
        };
        let response = match sender.send_request(request).await {
            Ok(response) => response,
            Err(_) => return Answer::Error("io".into()),
        };
        let status = response.status();
        let body = match response.into_body().collect().await {
            Ok(body) => body.to_bytes(),
            Err(_) => return Answer::Error("io".into()),
        };
        self.idle().push(sender);
        if status.is_success() {
            Answer::Ok { version: answer_version(&body, self.version) }
        } else {
            Answer::Error(http_kind(status, &body))
        }
    }
}

/// The version that answered, found without parsing the whole answer: the server writes
/// it near the front (`{"model": .., "version": 2, ..}`).
fn answer_version(body: &[u8], field: VersionField) -> Option<String> {
    let key: &[u8] = match field {
        VersionField::Predict => b"\"version\":",
        VersionField::Oip => b"\"model_version\":",
        VersionField::None => return None,
    };
    let at = body.windows(key.len()).position(|w| w == key)? + key.len();
    let rest = &body[at..];
    let rest = &rest[rest.iter().position(|b| !b.is_ascii_whitespace())?..];
    let rest = rest.strip_prefix(b"\"").unwrap_or(rest);
    let end = rest.iter().position(|b| !b.is_ascii_alphanumeric()).unwrap_or(rest.len());
    (end > 0).then(|| String::from_utf8_lossy(&rest[..end]).into_owned())
}

/// `http_404:model_not_found` from fti-serve's error body, or `http_503` without one.
/// Found by a scan, not a parse: under overload most answers are refusals, and the load
/// tool must stay cheaper per answer than the server.
fn http_kind(status: StatusCode, body: &[u8]) -> String {
    const KEY: &[u8] = b"\"code\":\"";
    let code = body.windows(KEY.len()).position(|w| w == KEY).and_then(|at| {
        let rest = &body[at + KEY.len()..];
        let end = rest.iter().position(|&b| b == b'"')?;
        std::str::from_utf8(&rest[..end]).ok()
    });
    match code {
        Some(code) => format!("http_{}:{code}", status.as_u16()),
        None => format!("http_{}", status.as_u16()),
    }
}

/// A `/v1` predict body as a `fti.v1.PredictRequest`.
fn predict_request(body: &Value, model: &str, version: Option<u64>) -> Result<pb::fti::PredictRequest> {
    use pb::fti::value::Kind;
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let entities = body
        .get("entities")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), text(v))).collect())
        .unwrap_or_default();
    let mut features = std::collections::HashMap::new();
    if let Some(map) = body.get("features").and_then(Value::as_object) {
        for (name, value) in map {
            let kind = match value {
                Value::Null => None,
                Value::Bool(b) => Some(Kind::Flag(*b)),
                Value::Number(n) => Some(Kind::Number(n.as_f64().unwrap_or(f64::NAN))),
                Value::String(s) => Some(Kind::Text(s.clone())),
                Value::Array(_) | Value::Object(_) => {
                    bail!("features.{name}: gRPC values are numbers, text or flags")
                }
            };
            features.insert(name.clone(), pb::fti::Value { kind });
        }
    }
    Ok(pb::fti::PredictRequest {
        target: Some(pb::fti::Target {
            model: model.to_owned(),
            version: version.unwrap_or(0),
            alias: if version.is_some() { String::new() } else { "production".into() },
        }),
        row: Some(pb::fti::Row { entities, features }),
        return_features: body.get("return_features").and_then(Value::as_bool).unwrap_or(false),
        request_id: String::new(),
    })
}

/// An OIP REST infer body as a `ModelInferRequest` with raw (little-endian) tensor contents,
/// the way Triton's clients send them.
fn infer_request(
    body: &Value,
    model: &str,
    version: Option<&str>,
) -> Result<pb::inference::ModelInferRequest> {
    use pb::inference::model_infer_request::InferInputTensor;
    let inputs =
        body.get("inputs").and_then(Value::as_array).ok_or_else(|| anyhow!("expected \"inputs\""))?;
    let mut tensors = Vec::with_capacity(inputs.len());
    let mut raw = Vec::with_capacity(inputs.len());
    for (n, input) in inputs.iter().enumerate() {
        let name = input.get("name").and_then(Value::as_str).ok_or_else(|| anyhow!("inputs[{n}].name"))?;
        let datatype =
            input.get("datatype").and_then(Value::as_str).ok_or_else(|| anyhow!("inputs[{n}].datatype"))?;
        let shape: Vec<i64> = input
            .get("shape")
            .and_then(Value::as_array)
            .ok_or_else(|| anyhow!("inputs[{n}].shape"))?
            .iter()
            .map(|d| d.as_i64().ok_or_else(|| anyhow!("inputs[{n}].shape: expected integers")))
            .collect::<Result<_>>()?;
        let mut values = Vec::new();
        flatten(input.get("data").ok_or_else(|| anyhow!("inputs[{n}].data"))?, &mut values);
        let mut bytes = Vec::with_capacity(values.len() * 8);
        for v in &values {
            let v = match v {
                Value::Null => f64::NAN,
                other => other.as_f64().ok_or_else(|| anyhow!("inputs[{n}].data: expected numbers"))?,
            };
            match datatype {
                "FP32" => bytes.extend_from_slice(&(v as f32).to_le_bytes()),
                "FP64" => bytes.extend_from_slice(&v.to_le_bytes()),
                "INT32" => bytes.extend_from_slice(&(v as i32).to_le_bytes()),
                "INT64" => bytes.extend_from_slice(&(v as i64).to_le_bytes()),
                other => bail!("inputs[{n}].datatype: {other} is not supported by the load tool"),
            }
        }
        tensors.push(InferInputTensor {
            name: name.to_owned(),
            datatype: datatype.to_owned(),
            shape,
            ..Default::default()
        });
        raw.push(bytes);
    }
    Ok(pb::inference::ModelInferRequest {
        model_name: model.to_owned(),
        model_version: version.unwrap_or_default().to_owned(),
        inputs: tensors,
        raw_input_contents: raw,
        ..Default::default()
    })
}

fn has_null_data(body: &Value) -> bool {
    let mut values = Vec::new();
    for input in body.get("inputs").and_then(Value::as_array).into_iter().flatten() {
        if let Some(data) = input.get("data") {
            flatten(data, &mut values);
        }
    }
    values.iter().any(|v| v.is_null())
}

fn flatten<'a>(value: &'a Value, out: &mut Vec<&'a Value>) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| flatten(v, out)),
        other => out.push(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_answering_version_near_the_front() {
        let predict = br#"{"model":"fraud","version":2,"outputs":{"probability":0.1}}"#;
        assert_eq!(answer_version(predict, VersionField::Predict).as_deref(), Some("2"));
        let spaced = br#"{"model": "fraud", "version": 17, "outputs": {}}"#;
        assert_eq!(answer_version(spaced, VersionField::Predict).as_deref(), Some("17"));
        let oip = br#"{"model_name":"fraud","model_version":"1","outputs":[]}"#;
        assert_eq!(answer_version(oip, VersionField::Oip).as_deref(), Some("1"));
        assert_eq!(answer_version(b"{}", VersionField::Predict), None);
    }

    #[test]
    fn error_kinds_carry_the_servers_code() {
        let body = br#"{"error":"model \"x\" not found","code":"model_not_found"}"#;
        assert_eq!(http_kind(StatusCode::NOT_FOUND, body), "http_404:model_not_found");
        assert_eq!(http_kind(StatusCode::BAD_GATEWAY, b"<html>"), "http_502");
        assert_eq!(grpc_kind(&tonic::Status::not_found("x")), "grpc_not_found");
    }

    #[test]
    fn oip_bodies_become_raw_little_endian_tensors() {
        let body = serde_json::json!({"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP32", "data": [[1.5, -2]]}]});
        let request = infer_request(&body, "fraud", Some("2")).unwrap();
        assert_eq!(request.raw_input_contents[0], [1.5f32.to_le_bytes(), (-2f32).to_le_bytes()].concat());
        assert_eq!(
            (request.inputs[0].shape.as_slice(), request.model_version.as_str()),
            (&[1i64, 2][..], "2")
        );
    }

    #[test]
    fn predict_bodies_become_grpc_rows() {
        let body = serde_json::json!({"entities": {"cc_num": "41"}, "features": {"amount": 3.5, "merchant_category": "online", "x": null}});
        let request = predict_request(&body, "fraud", None).unwrap();
        let row = request.row.unwrap();
        assert_eq!(row.entities["cc_num"], "41");
        assert_eq!(row.features["amount"].kind, Some(pb::fti::value::Kind::Number(3.5)));
        assert_eq!(row.features["x"].kind, None);
        assert_eq!(request.target.unwrap().alias, "production");
    }
}
