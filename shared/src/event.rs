//! The normalized inbound event: what the ingress appends to the updates stream and the
//! `updates` workers consume. Small and transport-neutral (Bot API webhook or MTProto).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UpdateId(pub i64);

impl std::fmt::Display for UpdateId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TelegramUser {
    pub id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    pub first_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language_code: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberStatus {
    /// The user stopped or blocked the bot.
    Blocked,
    /// The user (re)started the bot.
    Unblocked,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// `/name args`, with any `@botname` suffix removed and the name lower-cased.
    Command {
        chat_id: i64,
        message_id: i64,
        name: String,
        args: String,
    },
    Text {
        chat_id: i64,
        message_id: i64,
        text: String,
    },
    Callback {
        query_id: String,
        /// Absent for buttons on inline-mode messages.
        chat_id: Option<i64>,
        message_id: Option<i64>,
        data: String,
    },
    MemberChange {
        chat_id: i64,
        status: MemberStatus,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundEvent {
    pub update_id: UpdateId,
    pub from: TelegramUser,
    #[serde(flatten)]
    pub kind: EventKind,
}

impl InboundEvent {
    /// The chat replies go to; a callback on an inline-mode message has none, so the user's
    /// private chat is used.
    pub fn chat_id(&self) -> i64 {
        match &self.kind {
            EventKind::Command { chat_id, .. }
            | EventKind::Text { chat_id, .. }
            | EventKind::MemberChange { chat_id, .. } => *chat_id,
            EventKind::Callback { chat_id, .. } => chat_id.unwrap_or(self.from.id),
        }
    }
}
