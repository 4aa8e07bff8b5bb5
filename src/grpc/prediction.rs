//! `fti.v1.PredictionService`: entity IDs and request-time values in, named outputs out:
//! the gRPC face of `POST /v1/models/{model}/predict`, on the same core.

use std::pin::Pin;
use std::time::Duration;

use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use super::error::to_status;
use super::pb::fti as pb;
use super::pb::fti::prediction_service_server::PredictionService;
use crate::observe::request_id::REQUEST_ID_HEADER;
use crate::predict::{
    OutputValue, PredictRequest, PredictResponse, PredictRow, Predictor, RequestValue, RowPrediction, Target,
};

pub struct Prediction {
    predictor: Predictor,
}

impl Prediction {
    pub fn new(predictor: Predictor) -> Prediction {
        Prediction { predictor }
    }
}

fn target(t: Option<&pb::Target>) -> Result<(String, Target), Status> {
    let t = t.ok_or_else(|| Status::invalid_argument("target: required"))?;
    if t.model.is_empty() {
        return Err(Status::invalid_argument("target.model: required"));
    }
    let which = match (t.version, t.alias.as_str()) {
        (0, "") => Target::production(),
        (0, alias) => Target::Alias(alias.to_string()),
        (v, "") => Target::Version(v),
        _ => return Err(Status::invalid_argument("target: set `version` or `alias`, not both")),
    };
    Ok((t.model.clone(), which))
}

/// A request row in the core's terms.
pub fn row(r: pb::Row) -> PredictRow {
    let mut entities: Vec<(String, String)> = r.entities.into_iter().collect();
    entities.sort();
    let features = r
        .features
        .into_iter()
        .map(|(name, v)| {
            let value = match v.kind {
                None => RequestValue::Null,
                Some(pb::value::Kind::Number(n)) => RequestValue::Num(n),
                Some(pb::value::Kind::Text(s)) => RequestValue::Str(s),
                Some(pb::value::Kind::Flag(b)) => RequestValue::Bool(b),
            };
            (name, value)
        })
        .collect();
    PredictRow { entities, features }
}

/// One row's answer in the wire's terms.
pub fn prediction(r: RowPrediction) -> pb::Prediction {
    use pb::output::Value;
    pb::Prediction {
        outputs: r
            .outputs
            .into_iter()
            .map(|(name, v)| pb::Output {
                name,
                value: Some(match v {
                    OutputValue::Int(i) => Value::Integer(i),
                    OutputValue::Num(n) => Value::Number(n),
                    OutputValue::Str(s) => Value::Label(s),
                    OutputValue::List(values) => Value::Vector(pb::Vector { values }),
                    OutputValue::Map(entries) => Value::Scores(pb::Scores {
                        entries: entries
                            .into_iter()
                            .map(|(name, value)| pb::Feature { name, value })
                            .collect(),
                    }),
                }),
            })
            .collect(),
        missing_features: r.missing_features.iter().map(|s| s.to_string()).collect(),
        features: r
            .features
            .unwrap_or_default()
            .into_iter()
            .map(|(name, value)| pb::Feature { name, value })
            .collect(),
    }
}

impl Prediction {
    async fn one(
        &self,
        request: pb::PredictRequest,
        timeout: Option<Duration>,
        metadata_id: Option<String>,
    ) -> Result<pb::PredictResponse, Status> {
        let _admission = self.predictor.try_admit().map_err(|e| to_status(&e))?;
        let (model, which) = target(request.target.as_ref())?;
        let row = row(request.row.unwrap_or_default());
        let request = PredictRequest {
            rows: vec![row],
            batch: false,
            return_features: request.return_features,
            timeout,
            request_id: request_id(request.request_id, metadata_id),
        };
        let PredictResponse { model, version, request_id, rows } =
            self.predictor.predict(&model, &which, request).await.map_err(|e| to_status(&e))?;
        Ok(pb::PredictResponse {
            model,
            version,
            prediction: rows.into_iter().next().map(prediction),
            request_id,
        })
    }
}

/// The caller's id: the message's field, else the `x-request-id` metadata.
fn request_id(field: String, metadata: Option<String>) -> Option<String> {
    if field.is_empty() { metadata } else { Some(field) }
}

/// The `x-request-id` metadata of a call; one that is not text is refused naming it.
fn metadata_id<T>(request: &Request<T>) -> Result<Option<String>, Status> {
    match request.metadata().get(REQUEST_ID_HEADER) {
        Some(value) => value.to_str().map(|v| Some(v.to_string())).map_err(|_| {
            Status::invalid_argument(format!("metadata {REQUEST_ID_HEADER}: must be printable ASCII"))
        }),
        None => Ok(None),
    }
}

type PredictStream = Pin<Box<dyn Stream<Item = Result<pb::PredictResponse, Status>> + Send>>;

#[tonic::async_trait]
impl PredictionService for Prediction {
    async fn predict(
        &self,
        request: Request<pb::PredictRequest>,
    ) -> Result<Response<pb::PredictResponse>, Status> {
        let timeout = super::deadline::budget(&request)?;
        let id = metadata_id(&request)?;
        let answer = self.one(request.into_inner(), timeout, id).await?;
        let version = answer.version;
        let id = answer.request_id.clone();
        Ok(super::with_request_id(super::with_version(Response::new(answer), version), &id))
    }

    async fn predict_batch(
        &self,
        request: Request<pb::PredictBatchRequest>,
    ) -> Result<Response<pb::PredictBatchResponse>, Status> {
        let timeout = super::deadline::budget(&request)?;
        let id = metadata_id(&request)?;
        let _admission = self.predictor.try_admit().map_err(|e| to_status(&e))?;
        let request = request.into_inner();
        let (model, which) = target(request.target.as_ref())?;
        let rows = request.rows.into_iter().map(row).collect();
        let request = PredictRequest {
            rows,
            batch: true,
            return_features: request.return_features,
            timeout,
            request_id: request_id(request.request_id, id),
        };
        let PredictResponse { model, version, request_id, rows } =
            self.predictor.predict(&model, &which, request).await.map_err(|e| to_status(&e))?;
        let answer = pb::PredictBatchResponse {
            model,
            version,
            predictions: rows.into_iter().map(prediction).collect(),
            request_id: request_id.clone(),
        };
        Ok(super::with_request_id(super::with_version(Response::new(answer), version), &request_id))
    }

    type PredictStreamStream = PredictStream;

    async fn predict_stream(
        &self,
        request: Request<Streaming<pb::PredictRequest>>,
    ) -> Result<Response<Self::PredictStreamStream>, Status> {
        let mut inbound = request.into_inner();
        let service = Prediction { predictor: self.predictor.clone() };
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            while let Some(next) = inbound.message().await.transpose() {
                let answer = match next {
                    // Each message is its own request, under the server's deadline.
                    Ok(request) => service.one(request, None, None).await,
                    Err(status) => Err(status),
                };
                if tx.send(answer).await.is_err() {
                    break;
                }
            }
        });
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
        Ok(Response::new(Box::pin(stream)))
    }
}
