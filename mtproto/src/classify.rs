//! grammers' `InvocationError` into the transport-neutral [`DeliveryOutcome`], the one place
//! where MTProto error names meet the sender's policy (the Bot API twin is `sender::botapi`).

use grammers_client::InvocationError;
use grammers_mtsender::RpcError;
use shared::outbound::DeliveryOutcome;
use std::time::Duration;

/// Errors that say this chat cannot be written to, whatever we retry.
///
/// `PEER_ID_INVALID` is here although the Bot API reports its twin ("chat not found") as a
/// 400: over MTProto it means we hold no access hash Telegram accepts for the user (none
/// cached in the session and the ambient one refused), so the user is unreachable until they
/// write to the bot again. Forbidden marks the chat blocked, and their next `/start` (which
/// also caches a fresh access hash) clears the mark; Rejected would instead dead-letter every
/// later message to them one by one.
const FORBIDDEN: &[&str] = &[
    "USER_IS_BLOCKED",
    "INPUT_USER_DEACTIVATED",
    "USER_DEACTIVATED*",
    "PEER_ID_INVALID",
    "USER_IS_BOT",
    "CHAT_WRITE_FORBIDDEN",
];

/// Errors that mean the wanted state already holds.
///
/// `MESSAGE_NOT_MODIFIED`: an edit into what the message already says (Bot API "message is
/// not modified"). `RANDOM_ID_DUPLICATE`: grammers re-sent the same `sendMessage` (same
/// `random_id`) after an I/O error and the first copy had arrived.
const ALREADY_DONE: &[&str] = &["MESSAGE_NOT_MODIFIED", "RANDOM_ID_DUPLICATE"];

pub(crate) fn classify(error: &InvocationError) -> DeliveryOutcome {
    match error {
        InvocationError::Rpc(rpc) => classify_rpc(rpc),
        // The connection broke or never came up: nothing says the request was refused.
        InvocationError::Io(_)
        | InvocationError::Transport(_)
        | InvocationError::Dropped(_)
        | InvocationError::Deserialize(_)
        | InvocationError::Authentication(_)
        | InvocationError::InvalidDc
        | InvocationError::Session(_) => DeliveryOutcome::Unavailable(error.to_string()),
    }
}

fn classify_rpc(rpc: &RpcError) -> DeliveryOutcome {
    let is_any = |names: &[&str]| names.iter().any(|name| rpc.is(name));
    match rpc.code {
        // FLOOD_WAIT_X, SLOWMODE_WAIT_X, FLOOD_PREMIUM_WAIT_X: grammers splits X into `value`.
        // A zero still means "not now", so the sender must not spin; a flood without a
        // duration is left to the sender's own capped backoff.
        420 => match rpc.value {
            Some(seconds) => {
                DeliveryOutcome::RetryAfter(Duration::from_secs(u64::from(seconds).max(1)))
            }
            None => DeliveryOutcome::Unavailable(rpc.to_string()),
        },
        _ if is_any(ALREADY_DONE) => DeliveryOutcome::Delivered,
        _ if is_any(FORBIDDEN) => DeliveryOutcome::Forbidden(rpc.to_string()),
        403 => DeliveryOutcome::Forbidden(rpc.to_string()),
        // 401 (AUTH_KEY_UNREGISTERED, SESSION_REVOKED) is about our session, not this
        // message: dead-lettering every message while the bot signs in again would lose them.
        401 => DeliveryOutcome::Unavailable(rpc.to_string()),
        400..=499 => DeliveryOutcome::Rejected(rpc.to_string()),
        // 5xx and Telegram's negative codes (-503 timeout, -500 internal) are server trouble.
        _ => DeliveryOutcome::Unavailable(rpc.to_string()),
    }
}

#[cfg(test)]
mod tests;
