//! `/healthz`, `/readyz`, `/metrics` and the admin API on `WORKER_METRICS_ADDR`.

use crate::db::{self, PgPool};
use crate::metrics::Metrics;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use redis::aio::ConnectionManager;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct HealthState {
    pub pool: PgPool,
    pub conn: ConnectionManager,
    pub metrics: Metrics,
    /// Present when `ADMIN_TOKEN` is set.
    pub admin: Option<crate::admin::Admin>,
}

async fn admin(state: &HealthState, req: &Request<Incoming>) -> (StatusCode, String) {
    let Some(admin) = &state.admin else {
        return (StatusCode::NOT_FOUND, "not found".to_owned());
    };
    let header = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    if !admin.authorised(header) {
        tracing::warn!(
            security_event = true,
            path = %req.uri().path(),
            "Admin API request refused: missing or wrong token."
        );
        return (
            StatusCode::UNAUTHORIZED,
            "{\"error\":\"bearer token required\"}".to_owned(),
        );
    }
    let (status, body) = admin.handle(req.method(), req.uri().path()).await;
    (status, body.to_string())
}

async fn route(state: HealthState, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, body) = match req.uri().path() {
        p if p.starts_with("/admin/") => admin(&state, &req).await,
        "/healthz" => (StatusCode::OK, "ok".to_owned()),
        "/readyz" => {
            let mut conn = state.conn.clone();
            let redis_ok = shared::redis_conn::ping(&mut conn).await;
            let pg_ok = db::ping(&state.pool).await;
            if redis_ok && pg_ok {
                (StatusCode::OK, "ready".to_owned())
            } else {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready: redis={redis_ok} postgres={pg_ok}"),
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

pub async fn serve(listener: TcpListener, state: HealthState, token: CancellationToken) {
    shared::http_serve::serve(listener, state, route, token).await;
}
