//! The gRPC transport (tonic): the Open Inference Protocol's `GRPCInferenceService` and
//! our `fti.v1.PredictionService`, served on their own port by the same process and the
//! same core as HTTP. Handlers decode, call [`crate::predict::Predictor`], encode.

mod error;
pub mod inference;
pub mod prediction;

use std::future::Future;

use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

use crate::predict::Predictor;

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

/// Serves both gRPC services on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    predictor: Predictor,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let inference = pb::inference::grpc_inference_service_server::GrpcInferenceServiceServer::new(
        inference::Inference::new(predictor.clone()),
    );
    let prediction = pb::fti::prediction_service_server::PredictionServiceServer::new(
        prediction::Prediction::new(predictor),
    );
    tonic::transport::Server::builder()
        .add_service(inference)
        .add_service(prediction)
        .serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), shutdown)
        .await
}
