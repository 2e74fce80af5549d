//! HTTP transport: accepts connections, decodes Bot API requests the ways Telegram accepts
//! them (query string, form, JSON) and routes `/_sim/` to the control API.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::control;
use crate::methods::{ApiError, Params};
use crate::state::{Reply, State};

/// Telegram refuses large non-upload requests too; this only keeps a bad client from
/// making the simulator buffer without bound.
const MAX_BODY: usize = 10 * 1024 * 1024;

/// How long open keep-alive connections get to finish when the simulator stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// In forms and query strings every value is text; these fields carry JSON inside.
const JSON_FIELDS: &[&str] = &[
    "reply_markup",
    "entities",
    "link_preview_options",
    "reply_parameters",
    "allowed_updates",
];

const BAD_GATEWAY_HTML: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n</body>\r\n</html>\r\n";

pub(crate) type HttpResponse = Response<Full<Bytes>>;

/// Serves until `stop` flips to true or its sender is dropped.
pub(crate) async fn run(listener: TcpListener, state: Arc<State>, mut stop: watch::Receiver<bool>) {
    let stopped = async move {
        while !*stop.borrow_and_update() {
            if stop.changed().await.is_err() {
                break;
            }
        }
    };
    serve(listener, stopped, move |req| handle(state.clone(), req)).await;
}

/// The accept loop both simulators share: one task per connection, hyper's header-read
/// timeout armed, and a short graceful drain once `stop` completes.
pub(crate) async fn serve<H, F>(listener: TcpListener, stop: impl Future<Output = ()>, handler: H)
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + 'static,
    F: Future<Output = Result<HttpResponse, Infallible>> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let service = service_fn(handler.clone());
                    // The timer arms hyper's 30 s header-read timeout, so idle half-open
                    // connections from killed load generators do not pile up.
                    let conn = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .serve_connection(TokioIo::new(stream), service);
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        if let Err(error) = conn.await {
                            tracing::debug!(%error, "Connection ended with an error.");
                        }
                    });
                }
                Err(error) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    tracing::warn!(%error, "Accept failed.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = &mut stop => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!("Connections still open after the shutdown grace period.");
    }
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<HttpResponse, Infallible> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    let query = parts.uri.query();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            let e = ApiError::new(413, "Request Entity Too Large");
            return Ok(json_response(e.code, &e.body()));
        }
        Err(_) => {
            let e = ApiError::bad_request("can't read request body");
            return Ok(json_response(e.code, &e.body()));
        }
    };

    if let Some(endpoint) = path.strip_prefix("/_sim/") {
        let (status, body) = control::handle(&state, &parts.method, endpoint, query, &body);
        return Ok(json_response(status, &body));
    }
    let Some((token, method)) = bot_path(path) else {
        return Ok(json_response(
            404,
            &json!({"ok": false, "error_code": 404, "description": "Not Found"}),
        ));
    };

    let content_type = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let params = decode_params(query, content_type, &body);
    let latency = state.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let reply = state.bot_call(token, method, params);
    tracing::info!(method, status = reply.status(), "Bot API call.");
    Ok(match reply {
        Reply::Json { status, body } => json_response(status, &body),
        Reply::BadGateway => response(
            502,
            "text/html",
            Bytes::from_static(BAD_GATEWAY_HTML.as_bytes()),
        ),
    })
}

/// `/bot{token}/{method}`; anything else is not part of the Bot API.
fn bot_path(path: &str) -> Option<(&str, &str)> {
    let (token, method) = path.strip_prefix("/bot")?.split_once('/')?;
    (!token.is_empty() && !method.is_empty() && !method.contains('/')).then_some((token, method))
}

fn decode_params(
    query: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Params, ApiError> {
    let mut params = Params::new();
    if let Some(query) = query {
        add_form(&mut params, query.as_bytes());
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(params);
    }
    let media_type = content_type
        .and_then(|ct| ct.split(';').next())
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match media_type.as_str() {
        "application/x-www-form-urlencoded" => add_form(&mut params, body),
        "multipart/form-data" => {
            return Err(ApiError::bad_request(
                "multipart/form-data is not supported by the simulator",
            ))
        }
        // Telegram wants application/json, but tolerating a missing header costs nothing.
        _ => match serde_json::from_slice(body) {
            Ok(Value::Object(object)) => params.extend(object),
            _ => return Err(ApiError::bad_request("can't parse JSON object")),
        },
    }
    Ok(params)
}

fn add_form(params: &mut Params, form: &[u8]) {
    for (key, value) in form_urlencoded::parse(form) {
        let value = if JSON_FIELDS.contains(&key.as_ref()) {
            serde_json::from_str(&value).unwrap_or(Value::String(value.into_owned()))
        } else {
            Value::String(value.into_owned())
        };
        params.insert(key.into_owned(), value);
    }
}

pub(crate) fn json_response(status: u16, body: &Value) -> HttpResponse {
    response(status, "application/json", Bytes::from(body.to_string()))
}

pub(crate) fn response(status: u16, content_type: &'static str, body: Bytes) -> HttpResponse {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bot_paths() {
        assert_eq!(bot_path("/bot1:abc/getMe"), Some(("1:abc", "getMe")));
        assert_eq!(bot_path("/bot/getMe"), None);
        assert_eq!(bot_path("/bot1:abc/"), None);
        assert_eq!(bot_path("/bot1:abc/a/b"), None);
        assert_eq!(bot_path("/other"), None);
    }

    #[test]
    fn form_fields_keep_text_and_parse_json_fields() {
        let p = decode_params(
            Some("chat_id=5"),
            Some("application/x-www-form-urlencoded; charset=utf-8"),
            b"text=%5Bhi%5D&reply_markup=%7B%22inline_keyboard%22%3A%5B%5D%7D",
        )
        .unwrap();
        assert_eq!(p["chat_id"], "5");
        assert_eq!(p["text"], "[hi]");
        assert_eq!(p["reply_markup"], json!({"inline_keyboard": []}));
    }

    #[test]
    fn json_body_must_be_an_object() {
        assert!(decode_params(None, Some("application/json"), b"[1]").is_err());
        assert!(decode_params(None, Some("application/json"), b"{").is_err());
        assert!(decode_params(None, None, b"").unwrap().is_empty());
    }
}
