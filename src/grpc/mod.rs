//! The gRPC transport (tonic): the Open Inference Protocol's `GRPCInferenceService` and
//! our `fti.v1.PredictionService`, served on their own port by the same process and the
//! same core as HTTP. Handlers decode, call [`crate::predict::Predictor`], encode.

pub mod deadline;
mod error;
pub mod inference;
pub mod prediction;
pub mod server;

/// Code generated from `proto/` at build time.
#[allow(clippy::all, clippy::pedantic, clippy::nursery, clippy::restriction, missing_docs)]
pub mod pb {
    pub mod inference {
        tonic::include_proto!("inference");
    }
    pub mod fti {
        tonic::include_proto!("fti.v1");
    }
}

pub use error::status_of;

/// Every predict and infer answer names the version that served it (a canary's share
/// included) in the `x-model-version` metadata too, as HTTP does in a header.
fn with_version<T>(mut response: tonic::Response<T>, version: u64) -> tonic::Response<T> {
    response.metadata_mut().insert("x-model-version", tonic::metadata::MetadataValue::from(version));
    response
}

/// A predict answer carries its request id in the `x-request-id` metadata (and its body).
fn with_request_id<T>(mut response: tonic::Response<T>, id: &str) -> tonic::Response<T> {
    // The core checked it: printable ASCII, always valid metadata.
    if let Ok(value) = id.parse() {
        response.metadata_mut().insert(crate::observe::request_id::REQUEST_ID_HEADER, value);
    }
    response
}
pub use server::{GrpcOptions, serve};
