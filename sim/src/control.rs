//! `/_sim/…`: the Rust API's inspection and fault injection for other processes (the sandbox
//! and the load generator talk to a simulator they did not start in-process).

use hyper::Method;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::faults::Fault;
use crate::state::State;

pub(crate) fn handle(
    state: &State,
    method: &Method,
    endpoint: &str,
    query: Option<&str>,
    body: &[u8],
) -> (u16, Value) {
    match (method, endpoint) {
        (&Method::GET, "health") => ok(),
        (&Method::GET, "calls") => match calls_query(query) {
            Ok((since, chat_id)) => (200, json!(state.calls_since(since, chat_id))),
            Err(reason) => (400, json!({"ok": false, "description": reason})),
        },
        (&Method::GET, "violations") => (200, json!(state.violations())),
        (&Method::POST, "faults") => apply_faults(body, |f: Fault| state.apply(f)),
        (&Method::POST, "reset") => {
            state.reset();
            ok()
        }
        _ => unknown_endpoint(),
    }
}

/// The answer of a control call that has nothing more to say.
pub(crate) fn ok() -> (u16, Value) {
    (200, json!({"ok": true}))
}

pub(crate) fn unknown_endpoint() -> (u16, Value) {
    (
        404,
        json!({"ok": false, "description": "unknown control endpoint"}),
    )
}

/// `since` is exclusive (the last `seq` already seen); `chat_id` narrows to one chat.
fn calls_query(query: Option<&str>) -> Result<(u64, Option<i64>), String> {
    let mut since = 0;
    let mut chat_id = None;
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "since" => since = value.parse().map_err(|_| format!("bad since: {value}"))?,
            "chat_id" => {
                chat_id = Some(value.parse().map_err(|_| format!("bad chat_id: {value}"))?)
            }
            _ => {}
        }
    }
    Ok((since, chat_id))
}

/// `POST /_sim/faults` of either simulator: one fault or a list of them, so a scenario can
/// be set up in one request; all are applied, or none when the body does not decode.
pub(crate) fn apply_faults<F: DeserializeOwned>(body: &[u8], apply: impl Fn(F)) -> (u16, Value) {
    match parse_faults(body) {
        Ok(faults) => {
            faults.into_iter().for_each(apply);
            ok()
        }
        Err(e) => (
            400,
            json!({"ok": false, "description": format!("invalid fault: {e}")}),
        ),
    }
}

/// Decoding the two shapes separately keeps serde's precise error (an untagged enum would
/// hide it).
fn parse_faults<F: DeserializeOwned>(body: &[u8]) -> serde_json::Result<Vec<F>> {
    let value: Value = serde_json::from_slice(body)?;
    if value.is_array() {
        serde_json::from_value(value)
    } else {
        serde_json::from_value(value).map(|f| vec![f])
    }
}
