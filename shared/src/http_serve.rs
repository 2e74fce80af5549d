//! The small HTTP/1 server behind every process's `/healthz`, `/readyz` and `/metrics`
//! (and the workers' admin API): accept until cancelled, one task per connection.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::future::Future;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub async fn serve<S, F, Fut>(listener: TcpListener, state: S, route: F, token: CancellationToken)
where
    S: Clone + Send + Sync + 'static,
    F: Fn(S, Request<Incoming>) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = token.cancelled() => return,
        };
        let Ok((stream, _)) = accepted else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(route(state, req).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
