//! What the workers ask the sender to do in Telegram. Each message carries a dedupe key,
//! derived from what caused it, so a redelivered cause never produces a second message.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Button {
    Callback { text: String, data: String },
    Url { text: String, url: String },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keyboard {
    pub rows: Vec<Vec<Button>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum OutboundAction {
    SendMessage {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        keyboard: Option<Keyboard>,
    },
    EditMessage {
        message_id: i64,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        keyboard: Option<Keyboard>,
    },
    AnswerCallback {
        query_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundMessage {
    /// Unique per intended message, e.g. `u811:0` for the first reply to update 811.
    pub dedupe_key: String,
    pub chat_id: i64,
    #[serde(flatten)]
    pub action: OutboundAction,
}

/// What a Telegram transport (Bot API or MTProto) made of one outbound action. The sender's
/// flood policy, dedupe and blocking act on this alone, whichever transport delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Delivered,
    /// Telegram's flood control (Bot API 429, MTProto FLOOD_WAIT): wait exactly this long,
    /// then retry.
    RetryAfter(std::time::Duration),
    /// The user blocked the bot or cannot be written to (Bot API 403, MTProto
    /// USER_IS_BLOCKED and the like).
    Forbidden(String),
    /// A refusal that retrying cannot fix.
    Rejected(String),
    /// Timeouts, connection errors, server errors: worth retrying.
    Unavailable(String),
}
