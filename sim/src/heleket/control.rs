//! `/_sim/…`: the Rust API for processes that did not start the simulator themselves (the
//! sandbox, the load generator). Answers `{"ok": false, "description": …}` on errors, like the
//! Telegram simulator's control API.

use std::sync::Arc;
use std::time::Duration;

use hyper::Method;
use serde_json::{json, Value};

use super::faults::ApiFault;
use super::pay::{self, PayOptions};
use super::state::State;
use super::validate::Lookup;
use crate::control::{apply_faults, ok, unknown_endpoint};

pub(crate) async fn handle(
    state: &Arc<State>,
    method: &Method,
    endpoint: &str,
    query: Option<&str>,
    body: &[u8],
) -> (u16, Value) {
    let q = Query::parse(query);
    match (method, endpoint) {
        (&Method::GET, "health") => ok(),
        (&Method::GET, "invoices") => {
            let mut invoices = state.invoices();
            if let Some(order_id) = q.order_id.as_deref() {
                invoices.retain(|i| i.order_id == order_id);
            }
            (200, json!(invoices))
        }
        (&Method::GET, "calls") => match q.since() {
            Ok(since) => (200, json!(state.calls_since(since))),
            Err(e) => bad(e),
        },
        (&Method::GET, "deliveries") => match q.since() {
            Ok(since) => {
                let mut deliveries = state.deliveries_since(since);
                if let Some(uuid) = q.uuid.as_deref() {
                    deliveries.retain(|d| d.uuid == uuid);
                }
                (200, json!(deliveries))
            }
            Err(e) => bad(e),
        },
        (&Method::POST, "pay") => pay(state, body).await,
        (&Method::POST, "expire") => match invoice_of(state, body) {
            Ok(uuid) => (200, json!({"ok": true, "invoice": state.expire(&uuid)})),
            Err(e) => e,
        },
        (&Method::POST, "faults") => apply_faults(body, |f: ApiFault| state.apply(f)),
        (&Method::POST, "clock") => {
            let secs = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v.get("advance_secs").and_then(Value::as_u64));
            match secs {
                Some(secs) => {
                    state.clock.advance(Duration::from_secs(secs));
                    (200, json!({"ok": true, "now": state.clock.now()}))
                }
                None => bad("want {\"advance_secs\": N}".to_owned()),
            }
        }
        (&Method::POST, "reset") => {
            state.reset();
            ok()
        }
        _ => unknown_endpoint(),
    }
}

/// `{"uuid"|"order_id": …, …PayOptions}`; answers with the delivery attempts (none when
/// `delay_ms` put the payment in the background).
async fn pay(state: &Arc<State>, body: &[u8]) -> (u16, Value) {
    let uuid = match invoice_of(state, body) {
        Ok(uuid) => uuid,
        Err(e) => return e,
    };
    // Decoded from the object minus the selector keys. Not `#[serde(flatten)]`: with
    // serde_json's `arbitrary_precision` a flattened struct cannot read numbers.
    let Ok(Value::Object(mut fields)) = serde_json::from_slice::<Value>(body) else {
        return bad("body must be a JSON object".to_owned());
    };
    fields.remove("uuid");
    fields.remove("order_id");
    let options: PayOptions = match serde_json::from_value(Value::Object(fields)) {
        Ok(options) => options,
        Err(e) => return bad(format!("invalid pay options: {e}")),
    };
    let background = !options.delay.is_zero();
    match pay::pay(state, &uuid, options).await {
        Ok(deliveries) => (
            200,
            json!({"ok": true, "background": background, "deliveries": deliveries}),
        ),
        Err(e) => bad(format!("{e:#}")),
    }
}

/// The uuid of the invoice a control body names by `uuid` or `order_id`.
fn invoice_of(state: &State, body: &[u8]) -> Result<String, (u16, Value)> {
    let value: Value = serde_json::from_slice(body).map_err(|e| bad(format!("bad JSON: {e}")))?;
    let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
    let lookup = match (text("uuid"), text("order_id")) {
        (Some(uuid), _) => Lookup::Uuid(uuid),
        (None, Some(order_id)) => Lookup::OrderId(order_id),
        (None, None) => return Err(bad("name the invoice by uuid or order_id".to_owned())),
    };
    state.find(&lookup).map(|i| i.uuid).ok_or_else(|| {
        (
            404,
            json!({"ok": false, "description": format!("no such invoice: {lookup:?}")}),
        )
    })
}

fn bad(description: String) -> (u16, Value) {
    (400, json!({"ok": false, "description": description}))
}

#[derive(Default)]
struct Query {
    since: Option<String>,
    order_id: Option<String>,
    uuid: Option<String>,
}

impl Query {
    fn parse(query: Option<&str>) -> Query {
        let mut q = Query::default();
        for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            let value = Some(value.into_owned());
            match key.as_ref() {
                "since" => q.since = value,
                "order_id" => q.order_id = value,
                "uuid" => q.uuid = value,
                _ => {}
            }
        }
        q
    }

    /// Exclusive: the last `seq` already seen.
    fn since(&self) -> Result<u64, String> {
        self.since
            .as_deref()
            .map_or(Ok(0), |s| s.parse().map_err(|_| format!("bad since: {s}")))
    }
}
