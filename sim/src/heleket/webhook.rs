//! Webhook delivery: the body signed the way Heleket signs it, POSTed to `url_callback`,
//! retried on anything but 2xx (Heleket keeps retrying until it gets one; the simulator gives
//! up after `webhook_attempts` so a dead receiver cannot keep it busy forever). Every attempt
//! is recorded.

use std::sync::Arc;

use hyper::header::CONTENT_TYPE;
use shared::heleket::sign::signed_webhook_body;
use tokio::task::JoinSet;

use super::invoice::Invoice;
use super::state::{Attempt, DeliveryRecord, State};

/// The exact bytes Heleket would post for this invoice state: §5.2 fields in order, `sign`
/// last.
pub(crate) fn body(state: &State, invoice: &Invoice) -> Vec<u8> {
    signed_webhook_body(
        &invoice.webhook_fields(),
        &state.config.api_key,
        state.config.escape_unicode,
    )
}

/// Delivers one webhook (with retries) and returns its attempts.
pub(crate) async fn deliver(
    state: Arc<State>,
    url: String,
    invoice: Invoice,
) -> Vec<DeliveryRecord> {
    let body = body(&state, &invoice);
    let text = String::from_utf8_lossy(&body).into_owned();
    let delivery = state.next_delivery_id();
    let attempts = state.config.webhook_attempts.max(1);
    let mut backoff = state.config.webhook_backoff;
    let mut records = Vec::new();
    for attempt in 1..=attempts {
        let sent = state
            .http
            .post(&url)
            .header(CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send()
            .await;
        let (http_status, error) = match sent {
            Ok(response) => (Some(response.status().as_u16()), None),
            Err(e) => (None, Some(describe(&e))),
        };
        let record = state.record_delivery(Attempt {
            delivery,
            attempt,
            invoice: invoice.clone(),
            url: url.clone(),
            http_status,
            error,
            body: text.clone(),
        });
        tracing::info!(
            uuid = %record.uuid,
            status = %record.status,
            attempt,
            http_status = ?record.http_status,
            "Heleket webhook delivered."
        );
        let done = record.succeeded();
        records.push(record);
        if done || attempt == attempts {
            break;
        }
        tokio::select! {
            () = state.stop.cancelled() => break,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = backoff.saturating_mul(2);
    }
    records
}

/// Delivers `copies` identical webhooks at the same time, as Heleket's duplicate deliveries
/// arrive; attempts come back in recording order.
pub(crate) async fn deliver_copies(
    state: &Arc<State>,
    url: &str,
    invoice: &Invoice,
    copies: usize,
) -> Vec<DeliveryRecord> {
    let mut tasks = JoinSet::new();
    for _ in 0..copies {
        tasks.spawn(deliver(state.clone(), url.to_owned(), invoice.clone()));
    }
    let mut records = Vec::new();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(attempts) => records.extend(attempts),
            Err(error) => tracing::warn!(%error, "Webhook delivery task failed."),
        }
    }
    records.sort_by_key(|r| r.seq);
    records
}

/// Fire and forget, for webhooks nobody waits on (expiry, resend, the pay page).
pub(crate) fn spawn_deliver(state: &Arc<State>, invoice: Invoice) {
    let Some(url) = invoice.url_callback.clone() else {
        return;
    };
    tokio::spawn(deliver(state.clone(), url, invoice));
}

/// reqwest's top-level message hides the cause ("error sending request"); the chain tells
/// refused from timed out.
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
