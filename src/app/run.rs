//! `fti-serve serve`: bind both ports, serve until Ctrl-C or SIGTERM, then shut down the
//! way an orchestrator expects: readiness turns 503 at once, the listeners keep serving
//! for `server.drain_grace_ms` (load balancers stop sending meanwhile; a second signal
//! skips the wait), then stop accepting while in-flight requests finish within
//! `server.drain_timeout_ms`. If either server fails, the process stops with the error:
//! it never keeps serving half of its API.

use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use super::{App, AppError};
use crate::config::Config;

pub async fn run(config: Config) -> Result<(), AppError> {
    let app = App::build(&config).await?;
    let (http_addr, grpc_addr) = (config.server.http_addr, config.server.grpc_addr);
    let http =
        TcpListener::bind(http_addr).await.map_err(|source| AppError::Bind { addr: http_addr, source })?;
    let grpc =
        TcpListener::bind(grpc_addr).await.map_err(|source| AppError::Bind { addr: grpc_addr, source })?;
    // The bound addresses: with port 0 in the config, these say which ports were taken.
    let (http_addr, grpc_addr) = (local(&http, http_addr), local(&grpc, grpc_addr));
    tracing::info!(%http_addr, %grpc_addr, ready = app.predictor.is_ready(), "serving HTTP and gRPC");

    let (stop, stopped) = watch::channel(false);
    let on_stop = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let app = std::sync::Arc::new(app);
    let mut http_task = app.spawn_http(http, on_stop(stopped.clone()));
    let mut grpc_task = app.spawn_grpc(grpc, on_stop(stopped));

    let failed = |which: &str, why: String| AppError::Serve(format!("the {which} server stopped: {why}"));
    tokio::select! {
        () = shutdown_signal() => {}
        ended = &mut http_task => {
            let _ = stop.send(true);
            return Err(failed("HTTP", ended.err().map_or_else(|| "unexpectedly".into(), |e| e.to_string())));
        }
        ended = &mut grpc_task => {
            let _ = stop.send(true);
            let why = match ended {
                Ok(Ok(())) => "unexpectedly".to_string(),
                Ok(Err(e)) => e.to_string(),
                Err(e) => e.to_string(),
            };
            return Err(failed("gRPC", why));
        }
    }

    app.predictor.start_draining();
    let grace = Duration::from_millis(config.server.drain_grace_ms);
    tracing::info!(
        grace_ms = grace.as_millis() as u64,
        "draining: readiness answers 503; listeners close after the grace period"
    );
    tokio::select! {
        () = tokio::time::sleep(grace) => {}
        () = shutdown_signal() => tracing::info!("second signal: closing the listeners now"),
    }
    let _ = stop.send(true);
    let (http, grpc) = tokio::join!(http_task, grpc_task);
    http.map_err(|e| failed("HTTP", e.to_string()))?;
    grpc.map_err(|e| failed("gRPC", e.to_string()))??;
    app.predictor.finish_observing(Duration::from_millis(config.server.drain_timeout_ms));
    tracing::info!("drained; exiting");
    Ok(())
}

fn local(listener: &TcpListener, configured: std::net::SocketAddr) -> std::net::SocketAddr {
    listener.local_addr().unwrap_or(configured)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
