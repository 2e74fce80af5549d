//! Request dispatch: the contract's routes, one refusal path, one metrics call per request.

mod health;
mod telegram;

pub(crate) use telegram::Webhook;

use crate::error::{status_for, IngressError};
use crate::metrics::Metrics;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Request, Response, StatusCode};
use redis::aio::ConnectionManager;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub(crate) type Body = Full<Bytes>;

/// What every request needs; shared by all connections behind one `Arc`, nothing in it locks.
pub(crate) struct State {
    /// Cloned per request: a handle onto one multiplexed, self-reconnecting connection.
    pub redis: ConnectionManager,
    /// Bounds a whole Redis call, including waiting for a reconnect during an outage.
    pub redis_timeout: Duration,
    /// `None` in MTProto mode, where the webhook route does not exist.
    pub webhook: Option<Webhook>,
    pub metrics: Metrics,
    pub max_body_bytes: usize,
}

/// The route a request matched; also its metrics label, so label values stay bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    TelegramWebhook,
    Healthz,
    Readyz,
    Metrics,
    Unmatched,
}

impl Route {
    pub const ALL: [Route; 5] = [
        Route::TelegramWebhook,
        Route::Healthz,
        Route::Readyz,
        Route::Metrics,
        Route::Unmatched,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Route::TelegramWebhook => "/telegram/webhook",
            Route::Healthz => "/healthz",
            Route::Readyz => "/readyz",
            Route::Metrics => "/metrics",
            Route::Unmatched => "unmatched",
        }
    }

    fn of(path: &str, webhook_enabled: bool) -> Route {
        match path {
            "/telegram/webhook" if webhook_enabled => Route::TelegramWebhook,
            "/healthz" => Route::Healthz,
            "/readyz" => Route::Readyz,
            "/metrics" => Route::Metrics,
            _ => Route::Unmatched,
        }
    }

    /// The one method each route serves.
    fn method(self) -> Option<&'static str> {
        match self {
            Route::TelegramWebhook => Some("POST"),
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
    fields(route = route.label(), update_id = tracing::field::Empty)
)]
async fn respond(
    state: &State,
    route: Route,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<Body> {
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
            Route::Healthz => Ok(health::healthz()),
            Route::Readyz => Ok(health::readyz(state).await),
            Route::Metrics => health::metrics(state),
            Route::Unmatched => Err(IngressError::NotFound),
        },
    };
    result.unwrap_or_else(|e| refuse(&e, route, peer))
}

/// The one place a refusal is logged; `status_for` only maps.
fn refuse(error: &IngressError, route: Route, peer: SocketAddr) -> Response<Body> {
    let status = status_for(error);
    if status.is_server_error() {
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
