//! `/healthz`, `/readyz` and `/metrics` on `INGRESS_ADDR`. A standby is healthy and ready:
//! it is doing its job, which is to wait.

use crate::metrics::GatewayMetrics;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use redis::aio::ConnectionManager;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct HttpState {
    pub conn: ConnectionManager,
    pub metrics: GatewayMetrics,
}

async fn route(state: HttpState, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, body) = match req.uri().path() {
        "/healthz" => (StatusCode::OK, "ok".to_owned()),
        "/readyz" => {
            let mut conn = state.conn.clone();
            if shared::redis_conn::ping(&mut conn).await {
                (StatusCode::OK, "ready".to_owned())
            } else {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not ready: redis=false".to_owned(),
                )
            }
        }
        "/metrics" => (StatusCode::OK, state.metrics.render()),
        _ => (StatusCode::NOT_FOUND, "not found".to_owned()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}

pub async fn serve(listener: TcpListener, state: HttpState, token: CancellationToken) {
    shared::http_serve::serve(listener, state, route, token).await;
}
