//! The stream handler every sender copy runs, over any transport.

use crate::turn::{Turn, TurnKeys, TurnScript};
use crate::{BlockedRecorder, SendMetrics, Transport};
use consumer::{Backoff, EntryContext, EntryHandler, Failure};
use redis::aio::ConnectionManager;
use shared::gcra::Rate;
use shared::outbound::{DeliveryOutcome, OutboundAction, OutboundMessage};
use shared::streams::{partition_for_chat, Keys};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

const SENT_TTL_SECS: u64 = 3 * 24 * 3600;
/// In-process attempts on 5xx/timeouts before the entry is left for a later delivery.
const ATTEMPTS_PER_DELIVERY: u32 = 3;
/// Telegram tolerates short bursts to one chat.
pub const CHAT_BURST: u32 = 3;

pub struct SenderHandler<T, B> {
    pub transport: T,
    pub turn: TurnScript,
    pub blocked: B,
    pub conn: ConnectionManager,
    pub keys: Keys,
    pub global_rate: Rate,
    pub chat_rate: Rate,
    pub metrics: SendMetrics,
    pub shutdown: CancellationToken,
}

impl<T: Transport, B: BlockedRecorder> SenderHandler<T, B> {
    fn sent_key(&self, message: &OutboundMessage) -> String {
        let stream = self
            .keys
            .outbound_stream(partition_for_chat(message.chat_id));
        format!("{stream}:sent:{}", message.dedupe_key)
    }

    fn flood_key(&self) -> String {
        self.keys.key(format_args!("tg:flood"))
    }

    /// Sleeps unless shutdown comes first; false means "stop, leave the entry pending".
    async fn pause(&self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = self.shutdown.cancelled() => false,
        }
    }

    async fn redis<V: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<V, Failure> {
        let mut conn = self.conn.clone();
        cmd.query_async(&mut conn)
            .await
            .map_err(|e| Failure::Transient(e.to_string()))
    }

    /// Waits until the message may go: `Ok(Some(..))` when it must not be sent at all.
    async fn wait_for_turn(
        &self,
        message: &OutboundMessage,
        sent_key: &str,
    ) -> Result<Option<Turn>, Failure> {
        let blocked = self.keys.blocked_chat(message.chat_id);
        let flood = self.flood_key();
        let global_rate = self.keys.key(format_args!("tg:rate:global"));
        let chat_rate = self
            .keys
            .key(format_args!("tg:rate:chat:{}", message.chat_id));
        let keys = TurnKeys {
            sent: sent_key,
            blocked: &blocked,
            flood: &flood,
            global_rate: &global_rate,
            chat_rate: &chat_rate,
        };
        let writes_to_chat = !matches!(message.action, OutboundAction::AnswerCallback { .. });
        loop {
            let mut conn = self.conn.clone();
            let turn = self
                .turn
                .take(
                    &mut conn,
                    &keys,
                    writes_to_chat,
                    self.global_rate,
                    self.chat_rate,
                )
                .await
                .map_err(|e| Failure::Transient(e.to_string()))?;
            match turn {
                Turn::Go => return Ok(None),
                Turn::AlreadySent | Turn::Blocked => return Ok(Some(turn)),
                Turn::Wait(d) => {
                    if !self.pause(d).await {
                        return Err(Failure::Transient("shutting down".into()));
                    }
                }
            }
        }
    }

    async fn deliver(&self, message: &OutboundMessage) -> Result<(), Failure> {
        let sent_key = self.sent_key(message);
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        let mut failures = 0;
        loop {
            match self.wait_for_turn(message, &sent_key).await? {
                None => {}
                Some(Turn::Blocked) => {
                    tracing::info!("Chat blocked the bot; message dropped.");
                    self.metrics.send("skipped_blocked");
                    return Ok(());
                }
                Some(_) => {
                    tracing::info!("Already sent; skipped.");
                    return Ok(());
                }
            }
            match self
                .transport
                .execute(message.chat_id, &message.action)
                .await
            {
                DeliveryOutcome::Delivered => {
                    self.metrics.send("ok");
                    let _: () = self
                        .redis(
                            redis::cmd("SET")
                                .arg(&sent_key)
                                .arg(1)
                                .arg("EX")
                                .arg(SENT_TTL_SECS),
                        )
                        .await?;
                    return Ok(());
                }
                DeliveryOutcome::RetryAfter(wait) => {
                    self.metrics.send("429");
                    self.metrics.flood_wait(T::NAME);
                    tracing::warn!(
                        retry_after_s = wait.as_secs(),
                        "Telegram flood control; waiting."
                    );
                    let _: () = self
                        .redis(
                            redis::cmd("SET")
                                .arg(self.flood_key())
                                .arg(1)
                                .arg("PX")
                                .arg(wait.as_millis() as u64),
                        )
                        .await?;
                }
                DeliveryOutcome::Forbidden(reason) => {
                    self.metrics.send("403");
                    tracing::info!(%reason, "User cannot be written to; marked as blocked.");
                    self.mark_blocked(message.chat_id).await?;
                    return Ok(());
                }
                DeliveryOutcome::Rejected(reason) => {
                    self.metrics.send("error");
                    if let OutboundAction::AnswerCallback { .. } = message.action {
                        // Expired queries cannot be answered any more; nothing to keep.
                        tracing::warn!(%reason, "Callback answer refused; dropped.");
                        return Ok(());
                    }
                    return Err(Failure::Permanent(reason));
                }
                DeliveryOutcome::Unavailable(reason) => {
                    self.metrics.send("error");
                    failures += 1;
                    if failures >= ATTEMPTS_PER_DELIVERY {
                        return Err(Failure::Transient(reason));
                    }
                    tracing::warn!(%reason, attempt = failures, "Telegram unavailable; retrying.");
                    if !self.pause(backoff.next_delay()).await {
                        return Err(Failure::Transient(reason));
                    }
                }
            }
        }
    }

    /// The Redis marker goes last: while it is missing, a redelivery records again.
    async fn mark_blocked(&self, chat_id: i64) -> Result<(), Failure> {
        self.blocked
            .record_blocked(chat_id)
            .await
            .map_err(Failure::Transient)?;
        self.redis(
            redis::cmd("SET")
                .arg(self.keys.blocked_chat(chat_id))
                .arg(1),
        )
        .await
    }
}

impl<T: Transport, B: BlockedRecorder> EntryHandler for SenderHandler<T, B> {
    type Item = OutboundMessage;
    const ROLE: &'static str = "sender";

    fn decode(&self, payload: &str) -> Result<OutboundMessage, String> {
        serde_json::from_str(payload).map_err(|e| e.to_string())
    }

    fn order_key(item: &OutboundMessage) -> i64 {
        item.chat_id
    }

    async fn handle(&self, message: OutboundMessage, ctx: EntryContext) -> Result<(), Failure> {
        let span = tracing::info_span!(
            "outbound",
            dedupe_key = %message.dedupe_key,
            chat_id = message.chat_id,
            entry_id = %ctx.entry_id,
        );
        self.deliver(&message).instrument(span).await
    }
}
