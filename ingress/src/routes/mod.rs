//! Request dispatch: the contract's routes, one refusal path, one metrics call per request.

mod health;
mod heleket;
mod telegram;

pub(crate) use heleket::HeleketRoute;
pub(crate) use telegram::Webhook;

use crate::error::{status_for, IngressError};
use crate::metrics::Metrics;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body as _, Incoming};
use hyper::header::{HeaderMap, HeaderName, HeaderValue, ALLOW, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Request, Response, StatusCode};
use redis::aio::ConnectionManager;
use shared::streams::PAYLOAD_FIELD;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) type Body = Full<Bytes>;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// What every request needs; shared by all connections behind one `Arc`, nothing in it locks.
pub(crate) struct State {
    /// Cloned per request: a handle onto one multiplexed, self-reconnecting connection.
    pub redis: ConnectionManager,
    /// Bounds a whole Redis call, including waiting for a reconnect during an outage.
    pub redis_timeout: Duration,
    /// `None` in MTProto mode, where the webhook route does not exist.
    pub webhook: Option<Webhook>,
    /// `None` without `HELEKET_API_KEY`: the route answers 404, payments are not configured.
    pub heleket: Option<HeleketRoute>,
    pub metrics: Metrics,
    pub max_body_bytes: usize,
}

/// The route a request matched; also its metrics label, so label values stay bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    TelegramWebhook,
    HeleketWebhook,
    Healthz,
    Readyz,
    Metrics,
    Unmatched,
}

impl Route {
    pub const ALL: [Route; 6] = [
        Route::TelegramWebhook,
        Route::HeleketWebhook,
        Route::Healthz,
        Route::Readyz,
        Route::Metrics,
        Route::Unmatched,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Route::TelegramWebhook => "/telegram/webhook",
            Route::HeleketWebhook => "/heleket/webhook",
            Route::Healthz => "/healthz",
            Route::Readyz => "/readyz",
            Route::Metrics => "/metrics",
            Route::Unmatched => "unmatched",
        }
    }

    fn of(path: &str, webhook_enabled: bool) -> Route {
        match path {
            "/telegram/webhook" if webhook_enabled => Route::TelegramWebhook,
            "/heleket/webhook" => Route::HeleketWebhook,
            "/healthz" => Route::Healthz,
            "/readyz" => Route::Readyz,
            "/metrics" => Route::Metrics,
            _ => Route::Unmatched,
        }
    }

    /// The one method each route serves.
    fn method(self) -> Option<&'static str> {
        match self {
            Route::TelegramWebhook | Route::HeleketWebhook => Some("POST"),
            Route::Healthz | Route::Readyz | Route::Metrics => Some("GET"),
            Route::Unmatched => None,
        }
    }
}

pub(crate) async fn handle(
    state: Arc<State>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let route = Route::of(req.uri().path(), state.webhook.is_some());
    let response = respond(&state, route, peer, req).await;
    state.metrics.request(route, response.status());
    Ok(response)
}

#[tracing::instrument(
    name = "request",
    skip_all,
    fields(
        route = route.label(),
        update_id = tracing::field::Empty,
        payment_uuid = tracing::field::Empty
    )
)]
async fn respond(
    state: &State,
    route: Route,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<Body> {
    // Only the payment webhook looks at the header: for its sender check and refusal log.
    let forwarded_for = match route {
        Route::HeleketWebhook => forwarded_for(req.headers()),
        _ => None,
    };
    let result = match route.method() {
        None => Err(IngressError::NotFound),
        Some(allow) if req.method().as_str() != allow => {
            Err(IngressError::MethodNotAllowed { allow })
        }
        Some(_) => match route {
            Route::TelegramWebhook => match &state.webhook {
                Some(hook) => telegram::webhook(state, hook, req).await.map(|()| ok()),
                None => Err(IngressError::NotFound),
            },
            Route::HeleketWebhook => match &state.heleket {
                Some(hook) => heleket::webhook(state, hook, peer, forwarded_for.as_deref(), req)
                    .await
                    .map(|()| ok()),
                None => Err(IngressError::PaymentsNotConfigured),
            },
            Route::Healthz => Ok(health::healthz()),
            Route::Readyz => Ok(health::readyz(state).await),
            Route::Metrics => health::metrics(state),
            Route::Unmatched => Err(IngressError::NotFound),
        },
    };
    result.unwrap_or_else(|e| refuse(state, &e, route, peer, forwarded_for.as_deref()))
}

/// The one place a refusal is logged; `status_for` only maps.
fn refuse(
    state: &State,
    error: &IngressError,
    route: Route,
    peer: SocketAddr,
    forwarded_for: Option<&str>,
) -> Response<Body> {
    let status = status_for(error);
    if route == Route::HeleketWebhook {
        state.metrics.webhook_refused(error.reason());
    }
    if route == Route::HeleketWebhook && status.is_client_error() {
        // Someone other than Heleket, or something tampered with, is talking to the payment
        // route: a security event. The body is never logged, nor the key or the sign.
        tracing::warn!(
            security_event = true,
            reason = error.reason(),
            route = route.label(),
            peer = %peer,
            forwarded_for = forwarded_for.map(for_log),
            status = status.as_u16(),
            error.message = %error,
            "Payment webhook refused."
        );
    } else if status.is_server_error() {
        tracing::warn!(
            reason = error.reason(),
            route = route.label(),
            peer = %peer,
            status = status.as_u16(),
            error.message = %error,
            error.cause_chain = ?error,
            "Request refused."
        );
    } else {
        tracing::info!(
            reason = error.reason(),
            route = route.label(),
            peer = %peer,
            status = status.as_u16(),
            error.message = %error,
            "Request refused."
        );
    }
    let mut response = text(status, error.reason());
    let headers = response.headers_mut();
    match error {
        IngressError::MethodNotAllowed { allow } => {
            headers.insert(ALLOW, HeaderValue::from_static(allow));
        }
        // Telegram retries on its own schedule; other clients get a hint.
        _ if status == StatusCode::SERVICE_UNAVAILABLE => {
            headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        _ => {}
    }
    response
}

/// `X-Forwarded-For` as one comma list (several header lines are one list, in order).
fn forwarded_for(headers: &HeaderMap) -> Option<String> {
    let mut lines = headers.get_all(&X_FORWARDED_FOR).iter();
    let first = lines.next()?;
    let mut list = String::from_utf8_lossy(first.as_bytes()).into_owned();
    for line in lines {
        list.push(',');
        list.push_str(&String::from_utf8_lossy(line.as_bytes()));
    }
    Some(list)
}

/// Client-written text: bounded before it reaches a log line.
fn for_log(value: &str) -> &str {
    const MAX: usize = 256;
    match value.char_indices().nth(MAX) {
        Some((end, _)) => &value[..end],
        None => value,
    }
}

/// Reads the whole body, refusing one over `limit` bytes.
async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, IngressError> {
    // With a Content-Length the hint is exact: refuse before reading a byte. Chunked bodies
    // have no useful hint, so `Limited` stops them once they pass the cap.
    if body.size_hint().lower() > limit as u64 {
        return Err(IngressError::BodyTooLarge { limit });
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(IngressError::BodyTooLarge { limit }),
        Err(e) => Err(IngressError::BodyRead(e)),
    }
}

/// `XADD stream * d payload`; `Ok` once Redis has acknowledged the entry.
async fn append(state: &State, stream: &str, payload: &[u8]) -> Result<(), IngressError> {
    let mut conn = state.redis.clone();
    let mut xadd = redis::cmd("XADD");
    xadd.arg(stream).arg("*").arg(PAYLOAD_FIELD).arg(payload);
    let started = Instant::now();
    let reply = tokio::time::timeout(state.redis_timeout, xadd.query_async::<()>(&mut conn)).await;
    state.metrics.stream_append(started.elapsed());
    match reply {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(IngressError::StreamAppend(e)),
        Err(_elapsed) => Err(IngressError::StreamTimeout(state.redis_timeout)),
    }
}

/// Empty 200: no header map to allocate on the hot path.
fn ok() -> Response<Body> {
    Response::new(Full::new(Bytes::new()))
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
