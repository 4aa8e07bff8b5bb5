//! Serving both gRPC services on one listener with the listener's limits: open
//! connections capped, the HTTP/2 preface bounded by the header read timeout, streams per
//! connection and message sizes bounded, dead peers found by keep-alive pings, panics
//! answered INTERNAL instead of a reset stream, and a drain deadline at shutdown.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::service::interceptor::InterceptedService;

use super::pb::fti::prediction_service_server::PredictionServiceServer;
use super::pb::inference::grpc_inference_service_server::GrpcInferenceServiceServer;
use super::{deadline, inference, prediction};
use crate::connections::{CappedIncoming, ConnectionLimits, Refused};
use crate::predict::Predictor;

/// What the gRPC listener needs beside the core.
#[derive(Debug, Clone, Copy)]
pub struct GrpcOptions {
    pub connections: ConnectionLimits,
    /// Largest accepted message (tonic's default is 4 MiB; ours follows
    /// `server.max_body_bytes`, so both transports take the same sizes).
    pub max_message_bytes: usize,
    /// Concurrent streams (calls) per connection.
    pub max_concurrent_streams: u32,
    /// How often an idle connection's peer is pinged, and how long a ping may go
    /// unanswered before the connection is closed.
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
}

/// A panic inside a handler becomes INTERNAL, as gRPC clients expect, instead of a reset
/// stream they would read as CANCELLED.
fn internal_error(_: Box<dyn std::any::Any + Send + 'static>) -> axum::http::Response<tonic::body::Body> {
    tonic::Status::internal("internal error").into_http()
}

/// Serves both gRPC services on `listener` until `shutdown` resolves, then drains within
/// the drain deadline.
pub async fn serve(
    listener: TcpListener,
    predictor: Predictor,
    options: GrpcOptions,
    refused: Refused,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let max = options.max_message_bytes;
    let inference = GrpcInferenceServiceServer::new(inference::Inference::new(predictor.clone()))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let prediction = PredictionServiceServer::new(prediction::Prediction::new(predictor))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    // Each request's arrival, for budgets counted from the moment tonic starts its timer.
    let inference = InterceptedService::new(inference, deadline::stamp);
    let prediction = InterceptedService::new(prediction, deadline::stamp);
    let incoming = CappedIncoming::new(listener, &options.connections, refused).expect_http2_preface();
    let (draining, drain_started) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        let _ = draining.send(());
    };
    let serve = tonic::transport::Server::builder()
        .max_concurrent_streams(options.max_concurrent_streams)
        .http2_keepalive_interval(Some(options.keepalive_interval))
        .http2_keepalive_timeout(Some(options.keepalive_timeout))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(internal_error))
        .add_service(inference)
        .add_service(prediction)
        .serve_with_incoming_shutdown(incoming, signal);
    let mut serve = std::pin::pin!(serve);
    let drain = options.connections.drain_timeout;
    tokio::select! {
        result = &mut serve => result,
        () = async {
            if drain_started.await.is_err() {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(drain).await;
        } => {
            tracing::warn!("gRPC drain deadline passed; closing the remaining connections");
            Ok(())
        }
    }
}
