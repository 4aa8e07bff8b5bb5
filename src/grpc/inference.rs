//! `inference.GRPCInferenceService`: the Open Inference Protocol over gRPC. Inputs may
//! come typed (`contents`) or raw (`raw_input_contents`); outputs always go back in
//! `raw_output_contents`, which is what Triton's clients read.

use tonic::{Request, Response, Status};

use super::error::to_status;
use super::pb::inference as pb;
use super::pb::inference::grpc_inference_service_server::GrpcInferenceService;
use crate::oip;
use crate::predict::describe::{SERVER_NAME, SERVER_VERSION};
use crate::predict::{InferResponse, Predictor, Target, TensorInput, TensorMeta};

pub struct Inference {
    predictor: Predictor,
}

impl Inference {
    pub fn new(predictor: Predictor) -> Inference {
        Inference { predictor }
    }
}

fn target(field: &str, version: &str) -> Result<Target, Status> {
    Target::from_version_text(field, version).map_err(|e| to_status(&e))
}

/// The input tensor of `request`, from `raw_input_contents` or typed `contents`.
pub fn decode(request: &pb::ModelInferRequest) -> Result<TensorInput, Status> {
    let [input] = request.inputs.as_slice() else {
        return Err(Status::invalid_argument(format!(
            "this model takes exactly one input tensor, got {}",
            request.inputs.len()
        )));
    };
    let shape = input
        .shape
        .iter()
        .map(|&d| {
            usize::try_from(d)
                .map_err(|_| Status::invalid_argument("inputs[0].shape: dimensions must be non-negative"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    oip::input_width(&input.datatype)
        .map_err(|m| Status::invalid_argument(format!("inputs[0].datatype: {m}")))?;
    let data = match (request.raw_input_contents.first(), &input.contents) {
        (Some(raw), _) => oip::decode_raw(&input.datatype, raw)
            .map_err(|m| Status::invalid_argument(format!("inputs[0]: {m}")))?,
        (None, Some(c)) => match input.datatype.as_str() {
            "FP32" => c.fp32_contents.clone(),
            "FP64" => c.fp64_contents.iter().map(|&v| v as f32).collect(),
            "INT64" => c.int64_contents.iter().map(|&v| v as f32).collect(),
            _ => c.int_contents.iter().map(|&v| v as f32).collect(),
        },
        (None, None) => {
            return Err(Status::invalid_argument("inputs[0] has neither contents nor raw_input_contents"));
        }
    };
    let count =
        oip::element_count(&shape).map_err(|m| Status::invalid_argument(format!("inputs[0].shape: {m}")))?;
    if data.len() != count {
        return Err(Status::invalid_argument(format!(
            "inputs[0]: shape {shape:?} needs {count} values, got {}",
            data.len()
        )));
    }
    Ok(TensorInput { name: input.name.clone(), shape, data, timeout: None })
}

/// The answer to `request`: the outputs it asked for (all by default), as raw contents
/// the way Triton's clients read them.
pub fn encode(
    request: &pb::ModelInferRequest,
    response: &InferResponse,
) -> Result<pb::ModelInferResponse, Status> {
    let all = &response.outputs;
    let selected: Vec<usize> = if request.outputs.is_empty() {
        (0..all.len()).collect()
    } else {
        request
            .outputs
            .iter()
            .map(|o| {
                all.iter().position(|t| t.name == o.name).ok_or_else(|| {
                    let names: Vec<&str> = all.iter().map(|t| t.name.as_str()).collect();
                    Status::invalid_argument(format!(
                        "unknown output `{}` (the model has: {})",
                        o.name,
                        names.join(", ")
                    ))
                })
            })
            .collect::<Result<_, _>>()?
    };
    let mut outputs = Vec::with_capacity(selected.len());
    let mut raw = Vec::with_capacity(selected.len());
    for i in selected {
        let t = &all[i].tensor;
        outputs.push(pb::model_infer_response::InferOutputTensor {
            name: all[i].name.clone(),
            datatype: t.datatype().to_string(),
            shape: t.shape.iter().map(|&d| d as i64).collect(),
            parameters: Default::default(),
            contents: None,
        });
        let mut bytes = Vec::new();
        oip::append_raw(t, &mut bytes);
        raw.push(bytes);
    }
    Ok(pb::ModelInferResponse {
        model_name: request.model_name.clone(),
        model_version: response.version.to_string(),
        id: request.id.clone(),
        parameters: Default::default(),
        outputs,
        raw_output_contents: raw,
    })
}

#[tonic::async_trait]
impl GrpcInferenceService for Inference {
    async fn server_live(
        &self,
        _: Request<pb::ServerLiveRequest>,
    ) -> Result<Response<pb::ServerLiveResponse>, Status> {
        Ok(Response::new(pb::ServerLiveResponse { live: true }))
    }

    async fn server_ready(
        &self,
        _: Request<pb::ServerReadyRequest>,
    ) -> Result<Response<pb::ServerReadyResponse>, Status> {
        Ok(Response::new(pb::ServerReadyResponse { ready: self.predictor.is_ready() }))
    }

    async fn model_ready(
        &self,
        request: Request<pb::ModelReadyRequest>,
    ) -> Result<Response<pb::ModelReadyResponse>, Status> {
        let r = request.into_inner();
        let ready = self.predictor.model_ready(&r.name, &target("version", &r.version)?);
        Ok(Response::new(pb::ModelReadyResponse { ready }))
    }

    async fn server_metadata(
        &self,
        _: Request<pb::ServerMetadataRequest>,
    ) -> Result<Response<pb::ServerMetadataResponse>, Status> {
        Ok(Response::new(pb::ServerMetadataResponse {
            name: SERVER_NAME.into(),
            version: SERVER_VERSION.into(),
            extensions: Vec::new(),
        }))
    }

    async fn model_metadata(
        &self,
        request: Request<pb::ModelMetadataRequest>,
    ) -> Result<Response<pb::ModelMetadataResponse>, Status> {
        let r = request.into_inner();
        let m = self
            .predictor
            .model_metadata(&r.name, &target("version", &r.version)?)
            .map_err(|e| to_status(&e))?;
        let tensor = |t: &TensorMeta| pb::model_metadata_response::TensorMetadata {
            name: t.name.clone(),
            datatype: t.datatype.to_string(),
            shape: t.shape.clone(),
        };
        Ok(Response::new(pb::ModelMetadataResponse {
            name: m.name,
            versions: m.versions.iter().map(u64::to_string).collect(),
            platform: m.platform.into(),
            inputs: m.inputs.iter().map(tensor).collect(),
            outputs: m.outputs.iter().map(tensor).collect(),
        }))
    }

    async fn model_infer(
        &self,
        request: Request<pb::ModelInferRequest>,
    ) -> Result<Response<pb::ModelInferResponse>, Status> {
        let timeout = super::deadline::budget(&request)?;
        let _admission = self.predictor.try_admit().map_err(|e| to_status(&e))?;
        let request = request.into_inner();
        let mut input = decode(&request)?;
        input.timeout = timeout;
        let response = self
            .predictor
            .infer(&request.model_name, &target("model_version", &request.model_version)?, input)
            .await
            .map_err(|e| to_status(&e))?;
        let answer = encode(&request, &response)?;
        Ok(super::with_version(Response::new(answer), response.version))
    }
}
