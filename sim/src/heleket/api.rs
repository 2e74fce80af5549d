//! The Heleket API itself: `/v1/payment`, `/v1/payment/info`, `/v1/payment/resend`, with
//! injected faults first, then the merchant/sign check, then validation — the order in which
//! a client meets them from the real service.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use hyper::{HeaderMap, Method};
use md5::{Digest, Md5};
use serde_json::{json, Map, Value};

use super::faults::Injected;
use super::state::State;
use super::validate::{self, Lookup};
use super::webhook;
use crate::server::{json_response, response, HttpResponse};

const UNAVAILABLE_HTML: &str = "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";

/// Answers one `/v1/...` request and records it.
pub(crate) async fn handle(
    state: &Arc<State>,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> HttpResponse {
    let recorded = recorded_body(body);
    let (status, reply) = match state.take_fault() {
        Some(Injected::Hang(hold)) => {
            // Recorded on arrival: a client that gives up first drops the connection, and
            // hyper then drops this future before it could record anything.
            state.record_call(method.as_str(), path, recorded, 503);
            tokio::select! {
                () = state.stop.cancelled() => {}
                () = tokio::time::sleep(hold) => {}
            }
            return unavailable();
        }
        Some(Injected::Unavailable) => {
            state.record_call(method.as_str(), path, recorded, 503);
            return unavailable();
        }
        Some(Injected::ServerError) => (500, json!({"message": "Server Error"})),
        None => answer(state, method, path, headers, body),
    };
    tracing::info!(path, status, "Heleket API call.");
    state.record_call(method.as_str(), path, recorded, status);
    let latency = state.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    json_response(status, &reply)
}

fn answer(
    state: &Arc<State>,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    raw: &[u8],
) -> (u16, Value) {
    let path = path.trim_end_matches('/');
    if !matches!(
        path,
        "/v1/payment" | "/v1/payment/info" | "/v1/payment/resend"
    ) {
        return (404, json!({"state": 1, "message": "Not found"}));
    }
    if method != Method::POST {
        let message = format!("The {method} method is not supported for route {path}.");
        return (405, json!({"message": message}));
    }
    if !authentic(state, headers, raw) {
        return (401, json!({"message": "Unauthenticated."}));
    }
    // Laravel reads a body that is not a JSON object as no input at all, so validation then
    // reports every required field.
    let body = match serde_json::from_slice(raw) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    let result = match path {
        "/v1/payment" => create(state, &body),
        "/v1/payment/info" => info(state, &body),
        _ => resend(state, &body),
    };
    match result {
        Ok(result) => (200, json!({"state": 0, "result": result})),
        Err(e) => e,
    }
}

/// `merchant` must name our merchant and `sign` must be md5(base64(raw body) + key) in
/// lowercase hex, computed over the bytes as received (reference §1.3).
fn authentic(state: &State, headers: &HeaderMap, raw: &[u8]) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let expected = request_sign(raw, state.config.api_key.expose_secret());
    header("merchant") == Some(state.config.merchant_id.as_str())
        && header("sign") == Some(expected.as_str())
}

/// Written here rather than taken from `shared`, so a mistake in the client's signer cannot
/// hide behind the same mistake in its checker.
fn request_sign(body: &[u8], api_key: &str) -> String {
    let mut md5 = Md5::new();
    md5.update(STANDARD.encode(body).as_bytes());
    md5.update(api_key.as_bytes());
    md5.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

type Outcome = Result<Value, (u16, Value)>;

fn create(state: &State, body: &Map<String, Value>) -> Outcome {
    let request = validate::create(body).map_err(invalid)?;
    let (invoice, created) = state.create_invoice(request);
    if created {
        tracing::info!(uuid = %invoice.uuid, order_id = %invoice.order_id, "Invoice created.");
    }
    Ok(invoice.api_object())
}

fn info(state: &State, body: &Map<String, Value>) -> Outcome {
    let lookup = validate::lookup(body).map_err(invalid)?;
    find(state, &lookup).map(|i| i.api_object())
}

/// Heleket resends only for final invoices that received money, and only when a callback
/// URL was given at creation (reference §3.3).
fn resend(state: &Arc<State>, body: &Map<String, Value>) -> Outcome {
    let lookup = validate::lookup(body).map_err(invalid)?;
    let invoice = find(state, &lookup)?;
    if !matches!(
        invoice.status.as_str(),
        "paid" | "paid_over" | "wrong_amount"
    ) {
        return Err(message(422, "Payment is not final"));
    }
    if invoice.url_callback.is_none() {
        return Err(message(422, "Payment has no url_callback"));
    }
    webhook::spawn_deliver(state, invoice);
    Ok(json!([]))
}

fn find(state: &State, lookup: &Lookup) -> Result<super::Invoice, (u16, Value)> {
    state
        .find(lookup)
        .ok_or_else(|| message(404, "Payment not found"))
}

fn invalid(errors: validate::Errors) -> (u16, Value) {
    (422, json!({"state": 1, "errors": errors}))
}

fn message(status: u16, text: &str) -> (u16, Value) {
    (status, json!({"state": 1, "message": text}))
}

fn unavailable() -> HttpResponse {
    response(
        503,
        "text/html",
        Bytes::from_static(UNAVAILABLE_HTML.as_bytes()),
    )
}

/// Parsed JSON when possible, so assertions can look inside; else the text as sent.
fn recorded_body(body: &[u8]) -> Value {
    if body.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_sign_matches_reference_formula() {
        // md5("" + key) for an empty body, as the reference says for parameter-less calls.
        assert_eq!(
            request_sign(b"", "key"),
            format!("{:x}", Md5::digest(b"key"))
        );
        // base64("{}") is "e30=".
        assert_eq!(
            request_sign(b"{}", "key"),
            format!("{:x}", Md5::digest(b"e30=key"))
        );
    }
}
