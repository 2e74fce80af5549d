//! The accept loop: bounded connections, HTTP/1.1 keep-alive, graceful drain with a deadline.

use crate::routes::{self, State};
use anyhow::Context;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

pub(crate) struct Limits {
    pub max_connections: usize,
    pub shutdown_grace: Duration,
}

pub(crate) async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    limits: Limits,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    // Cancelled when the grace period runs out: drops whatever connections are still open.
    let hard_stop = CancellationToken::new();
    let mut http = http1::Builder::new();
    // The timer enables hyper's header read timeout, so a client trickling headers cannot
    // hold a connection slot forever.
    http.keep_alive(true).timer(TokioTimer::new());
    let mut accept_backoff = ACCEPT_BACKOFF_MIN;

    loop {
        // Take a slot before accepting: over the cap, clients wait in the kernel backlog
        // instead of holding a socket nobody serves.
        let permit = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            permit = slots.clone().acquire_owned() => permit.context("Connection limiter closed")?,
        };
        let accepted = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                accept_backoff = ACCEPT_BACKOFF_MIN;
                accepted
            }
            Err(e) => {
                // Usually out of file descriptors: retrying at once would spin.
                tracing::warn!(error.message = %e, backoff = ?accept_backoff, "Failed to accept a connection.");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(accept_backoff) => {}
                }
                accept_backoff = (accept_backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(peer = %peer, error.message = %e, "Failed to set TCP_NODELAY.");
        }
        let state = state.clone();
        let service = service_fn(move |req| routes::handle(state.clone(), peer, req));
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        let hard_stop = hard_stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                result = conn => {
                    if let Err(e) = result {
                        tracing::debug!(peer = %peer, error.message = %e, "Connection closed with an error.");
                    }
                }
                () = hard_stop.cancelled() => {}
            }
            drop(permit);
        });
    }

    drop(listener);
    let open = graceful.count();
    tracing::info!(
        open_connections = open,
        "Stopped accepting connections, draining."
    );
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("Drained all connections."),
        () = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!(grace = ?limits.shutdown_grace, "Grace period over, closing the remaining connections.");
            hard_stop.cancel();
        }
    }
    Ok(())
}
