//! The HTTP/1.1 accept loop: hyper serving the router with the listener's limits (open
//! connections capped, headers and idle keep-alive bounded by the header read timeout),
//! and a drain at shutdown that lets in-flight requests finish within the drain deadline.
//! (`axum::serve` sets no timer, so hyper's header timeout would be off, and its drain
//! has no deadline.)

use std::future::Future;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::connections::{CappedIncoming, ConnectionLimits, Refused, drain_within};

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting and
/// drains: in-flight requests finish (their connections close after the answer), idle
/// connections close at once, and whatever is left at the drain deadline is closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    refused: Refused,
    shutdown: impl Future<Output = ()> + Send,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    let mut incoming = CappedIncoming::new(listener, &limits, refused);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        let stream = tokio::select! {
            () = &mut shutdown => break,
            stream = incoming.accept() => stream,
        };
        let peer = stream.peer();
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(router.clone()));
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            // Header and idle timeouts end connections here too: not worth more than debug.
            if let Err(e) = connection.await {
                tracing::debug!(?peer, "http connection ended: {e}");
            }
        });
    }
    drop(incoming);
    if !drain_within(limits.drain_timeout, graceful.shutdown()).await {
        tracing::warn!(
            open = connections.len(),
            "HTTP drain deadline passed; closing the remaining connections"
        );
    }
    connections.shutdown().await;
}
