//! Delivering the outbound stream to Telegram within its limits, whichever transport carries
//! it: a global and a per-chat GCRA shared by every sender copy through Redis, a common
//! "flood until" after any flood refusal, a dedupe marker per message, and blocked chats
//! skipped. The transport (Bot API, MTProto) only turns an action into a call and classifies
//! the answer.

mod botapi;
mod handler;
mod metrics;
mod turn;

pub use botapi::{render, BotApi};
pub use handler::{SenderHandler, CHAT_BURST};
pub use metrics::SendMetrics;
pub use turn::TurnScript;

use shared::outbound::{DeliveryOutcome, OutboundAction};
use std::future::Future;

/// The Telegram side of sending: one call per action, its answer classified.
pub trait Transport: Send + Sync + 'static {
    /// Bounded label for metrics: `bot_api`, `mtproto`.
    const NAME: &'static str;

    fn execute(
        &self,
        chat_id: i64,
        action: &OutboundAction,
    ) -> impl Future<Output = DeliveryOutcome> + Send;
}

/// Where a chat that blocked the bot is recorded durably, beyond the Redis marker every
/// sender checks: the workers write PostgreSQL; the gateway, which never touches it, hands
/// the fact to the updates stream.
pub trait BlockedRecorder: Send + Sync + 'static {
    fn record_blocked(&self, chat_id: i64) -> impl Future<Output = Result<(), String>> + Send;
}
