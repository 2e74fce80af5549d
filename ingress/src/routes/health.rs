use super::{text, Body, State};
use crate::error::IngressError;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};

pub(super) fn healthz() -> Response<Body> {
    text(StatusCode::OK, "ok")
}

pub(super) async fn readyz(state: &State) -> Response<Body> {
    let mut conn = state.redis.clone();
    let ping = tokio::time::timeout(state.redis_timeout, shared::redis_conn::ping(&mut conn));
    if matches!(ping.await, Ok(true)) {
        text(StatusCode::OK, "ready")
    } else {
        tracing::debug!("Redis did not answer PING; not ready.");
        text(StatusCode::SERVICE_UNAVAILABLE, "redis unreachable")
    }
}

pub(super) fn metrics(state: &State) -> Result<Response<Body>, IngressError> {
    let body = state.metrics.encode().map_err(IngressError::Metrics)?;
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    Ok(response)
}
