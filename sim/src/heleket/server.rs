//! HTTP routing for the Heleket simulator: `/_sim/` control, `/pay/<uuid>` hosted page, and
//! everything else to the API (which answers unknown paths the way Heleket does).

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, LOCATION};
use hyper::{Method, Request};

use super::pay::{self, PayOptions};
use super::state::State;
use super::validate::Lookup;
use super::{api, control};
use crate::server::{json_response, response, HttpResponse};

/// Heleket's requests are small; this only stops a bad client from growing memory.
const MAX_BODY: usize = 1024 * 1024;

pub(crate) async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<HttpResponse, Infallible> {
    let (parts, body) = req.into_parts();
    let Ok(body) = Limited::new(body, MAX_BODY).collect().await else {
        return Ok(json_response(
            413,
            &serde_json::json!({"message": "Payload Too Large"}),
        ));
    };
    let body = body.to_bytes();
    let path = parts.uri.path();
    if let Some(endpoint) = path.strip_prefix("/_sim/") {
        let (status, reply) =
            control::handle(&state, &parts.method, endpoint, parts.uri.query(), &body).await;
        return Ok(json_response(status, &reply));
    }
    if let Some(uuid) = path.strip_prefix("/pay/") {
        return Ok(pay_page(&state, &parts.method, uuid));
    }
    Ok(api::handle(&state, &parts.method, path, &parts.headers, &body).await)
}

/// The invoice page the bot's URL button opens. `POST` is the simulator's "the payer paid
/// exactly" button: it pays in the background and shows the page again.
fn pay_page(state: &Arc<State>, method: &Method, uuid: &str) -> HttpResponse {
    let Some(invoice) = state.find(&Lookup::Uuid(uuid.to_owned())) else {
        return html(404, "<h1>Invoice not found</h1>".to_owned());
    };
    if method == Method::POST {
        if !invoice.is_final {
            let (state, uuid) = (state.clone(), invoice.uuid.clone());
            tokio::spawn(async move {
                if let Err(error) = pay::pay(&state, &uuid, PayOptions::default()).await {
                    tracing::warn!(%error, "Pay button failed.");
                }
            });
        }
        let mut redirect = response(303, "text/plain", Bytes::new());
        if let Ok(location) = HeaderValue::from_str(&format!("/pay/{}", invoice.uuid)) {
            redirect.headers_mut().insert(LOCATION, location);
        }
        return redirect;
    }
    let amount = format!("{} {}", escape(&invoice.amount), escape(&invoice.currency));
    let button = if invoice.is_final {
        String::new()
    } else {
        "<form method=\"post\"><button>Pay (simulated)</button></form>".to_owned()
    };
    html(
        200,
        format!(
            "<title>Pay {amount}</title>\n<h1>Pay {amount}</h1>\n\
             <p>Order {order}, invoice {uuid}: <b>{status}</b>. Expires at {expires} (unix).</p>\n\
             {button}\n<p><small>Heleket simulator</small></p>",
            order = escape(&invoice.order_id),
            uuid = escape(&invoice.uuid),
            status = escape(&invoice.status),
            expires = invoice.expired_at,
        ),
    )
}

fn html(status: u16, body: String) -> HttpResponse {
    let page = format!("<!doctype html>\n<html><head><meta charset=\"utf-8\"></head><body>\n{body}\n</body></html>\n");
    response(status, "text/html; charset=utf-8", Bytes::from(page))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
