//! The `updates` role: turns each normalized Telegram event into replies on the outbound
//! stream. Idempotent per `update_id`: a redelivered or duplicated update produces no second
//! reply (a done marker here, and dedupe keys derived from the update id at the sender).

mod callbacks;
mod conversation;
pub mod topup;

pub use callbacks::Callback;
pub use conversation::{balance_cache_key, blocked_key, Conversation};

use consumer::{EntryContext, EntryHandler, Failure};
use redis::aio::ConnectionManager;
use shared::event::InboundEvent;
use shared::outbound::{OutboundAction, OutboundMessage};
use shared::streams::{partition_for_chat, Keys, PAYLOAD_FIELD};
use tracing::Instrument;

/// How long an update id is remembered as done. Telegram retries a webhook for at most a day.
const DONE_TTL_SECS: u64 = 3 * 24 * 3600;

/// KEYS: done marker, outbound stream. ARGV: marker TTL (s), payload field, then one
/// payload per reply.
/// Returns 1 when published, 0 when the update was already done.
const PUBLISH_ONCE: &str = r"
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return 0
end
for i = 3, #ARGV do
  redis.call('XADD', KEYS[2], '*', ARGV[2], ARGV[i])
end
return 1
";

pub struct UpdatesHandler {
    conversation: Conversation,
    conn: ConnectionManager,
    keys: Keys,
    publish_once: redis::Script,
}

impl UpdatesHandler {
    pub fn new(conversation: Conversation, conn: ConnectionManager, keys: Keys) -> Self {
        Self {
            conversation,
            conn,
            keys,
            publish_once: redis::Script::new(PUBLISH_ONCE),
        }
    }

    fn done_key(&self, event: &InboundEvent) -> String {
        let partition = partition_for_chat(event.chat_id());
        format!(
            "{}:done:{}",
            self.keys.updates_stream(partition),
            event.update_id
        )
    }

    /// Marks the update done and appends its replies in one step, unless it was done
    /// already: two workers handling copies of one update at the same moment both pass
    /// `already_done`, and only the first to get here may publish. A crash leaves either
    /// both the marker and the replies, or neither.
    async fn publish(
        &self,
        event: &InboundEvent,
        replies: Vec<OutboundAction>,
    ) -> redis::RedisResult<bool> {
        let chat_id = event.chat_id();
        let stream = self.keys.outbound_stream(partition_for_chat(chat_id));
        let mut invocation = self.publish_once.prepare_invoke();
        invocation
            .key(self.done_key(event))
            .key(&stream)
            .arg(DONE_TTL_SECS)
            .arg(PAYLOAD_FIELD);
        for (n, action) in replies.into_iter().enumerate() {
            let message = OutboundMessage {
                dedupe_key: format!("u{}:{n}", event.update_id),
                chat_id,
                action,
            };
            let payload = serde_json::to_string(&message).map_err(|e| {
                redis::RedisError::from((
                    redis::ErrorKind::Client,
                    "outbound message not serialisable",
                    e.to_string(),
                ))
            })?;
            invocation.arg(payload);
        }
        let mut conn = self.conn.clone();
        let published: u8 = invocation.invoke_async(&mut conn).await?;
        Ok(published == 1)
    }

    async fn already_done(&self, event: &InboundEvent) -> redis::RedisResult<bool> {
        let mut conn = self.conn.clone();
        redis::cmd("EXISTS")
            .arg(self.done_key(event))
            .query_async::<bool>(&mut conn)
            .await
    }
}

impl EntryHandler for UpdatesHandler {
    type Item = InboundEvent;
    const ROLE: &'static str = "updates";

    fn decode(&self, payload: &str) -> Result<InboundEvent, String> {
        serde_json::from_str(payload).map_err(|e| e.to_string())
    }

    fn order_key(item: &InboundEvent) -> i64 {
        item.chat_id()
    }

    async fn handle(&self, event: InboundEvent, ctx: EntryContext) -> Result<(), Failure> {
        let span = tracing::info_span!(
            "update",
            update_id = %event.update_id,
            chat_id = event.chat_id(),
            entry_id = %ctx.entry_id,
            deliveries = ctx.deliveries,
        );
        async {
            if self.already_done(&event).await.map_err(transient)? {
                tracing::info!("Duplicate update skipped.");
                return Ok(());
            }
            let replies = self.conversation.respond(&event).await?;
            if !self.publish(&event, replies).await.map_err(transient)? {
                tracing::info!("Duplicate update answered by another worker meanwhile.");
            }
            Ok(())
        }
        .instrument(span)
        .await
    }
}

pub(crate) fn transient(e: impl std::fmt::Display) -> Failure {
    Failure::Transient(e.to_string())
}
