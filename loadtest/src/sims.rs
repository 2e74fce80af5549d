//! The Telegram and Heleket simulators, embedded: the workers call them over real HTTP (as
//! they would call api.telegram.org and Heleket), and every Bot API call the Telegram
//! simulator answers is handed, with the instant it was answered, to the simulated user it
//! is about. No polling: the reply's timestamp is taken where it arrives.
//!
//! Routing: a `sendMessage` names its chat, which is the user. An `answerCallbackQuery`
//! names only the query, so the generator builds query ids as `{user id}{8-digit counter}`
//! and the router reads the user back from them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;
use shared::secret::SecretString;
use sim::heleket::{HeleketSim, HeleketSimConfig};
use sim::{RateLimits, RecordedCall, SimConfig, TelegramSim};
use tokio::sync::mpsc;

/// Digits after the user id in a callback query id.
const QUERY_COUNTER_DIGITS: u32 = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Button {
    Callback { text: String, data: String },
    Url { text: String, url: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    /// `sendMessage` (or an edit): something the user reads.
    Message,
    /// `answerCallbackQuery`: the button stops spinning.
    CallbackAnswer,
}

/// A successful Bot API call about one simulated user.
#[derive(Debug, Clone)]
pub struct Reply {
    pub kind: ReplyKind,
    pub text: String,
    pub buttons: Vec<Button>,
    pub at: Instant,
}

/// The query id of the `n`th button press of `user_id`.
pub fn query_id(user_id: i64, n: u64) -> String {
    format!(
        "{user_id}{:0width$}",
        n % 10u64.pow(QUERY_COUNTER_DIGITS),
        width = QUERY_COUNTER_DIGITS as usize
    )
}

fn user_of_query(query_id: &str) -> Option<i64> {
    let cut = query_id.len().checked_sub(QUERY_COUNTER_DIGITS as usize)?;
    query_id.get(..cut)?.parse().ok()
}

/// What the Telegram simulator saw besides replies.
#[derive(Debug, Default)]
pub struct TelegramCounters {
    /// Every answered Bot API call by HTTP status.
    pub by_status: Mutex<BTreeMap<u16, u64>>,
    /// Successful calls about no simulated user (a bug, or someone else's bot).
    pub stray: AtomicU64,
}

impl TelegramCounters {
    pub fn statuses(&self) -> BTreeMap<u16, u64> {
        self.by_status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Users are `base .. base + n`; each has a channel its replies arrive on.
struct Router {
    base: i64,
    users: Vec<mpsc::UnboundedSender<Reply>>,
    counters: Arc<TelegramCounters>,
}

impl Router {
    fn route(&self, call: &RecordedCall, at: Instant) {
        *self
            .counters
            .by_status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(call.status)
            .or_default() += 1;
        if call.status != 200 {
            return;
        }
        let (kind, user) = match call.method.as_str() {
            "sendMessage" | "editMessageText" | "editMessageReplyMarkup" => {
                (ReplyKind::Message, call.chat_id)
            }
            "answerCallbackQuery" => (
                ReplyKind::CallbackAnswer,
                call.params["callback_query_id"]
                    .as_str()
                    .and_then(user_of_query),
            ),
            _ => (ReplyKind::Message, None),
        };
        let channel = user
            .and_then(|u| usize::try_from(u.checked_sub(self.base)?).ok())
            .and_then(|i| self.users.get(i));
        let Some(channel) = channel else {
            self.counters.stray.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let reply = Reply {
            kind,
            text: call.params["text"].as_str().unwrap_or_default().to_owned(),
            buttons: buttons(&call.params["reply_markup"]),
            at,
        };
        // A user task that ended no longer listens; its late replies are counted at the end.
        let _ = channel.send(reply);
    }
}

fn buttons(markup: &Value) -> Vec<Button> {
    let rows = markup["inline_keyboard"].as_array().into_iter().flatten();
    rows.flat_map(|row| row.as_array().into_iter().flatten())
        .filter_map(|b| {
            let text = b["text"].as_str().unwrap_or_default().to_owned();
            if let Some(data) = b["callback_data"].as_str() {
                Some(Button::Callback {
                    text,
                    data: data.to_owned(),
                })
            } else {
                b["url"].as_str().map(|url| Button::Url {
                    text,
                    url: url.to_owned(),
                })
            }
        })
        .collect()
}

#[derive(Debug, Clone)]
pub struct SimSettings {
    pub telegram_addr: SocketAddr,
    pub heleket_addr: SocketAddr,
    pub merchant_id: String,
    pub heleket_key: String,
    /// The limits the simulator counts violations of: the sender's promise.
    pub chat_rate: f64,
    pub global_rate: f64,
}

pub struct Sims {
    pub telegram: TelegramSim,
    pub heleket: HeleketSim,
    pub counters: Arc<TelegramCounters>,
}

impl Sims {
    /// Starts both simulators; returns them and one reply channel per user.
    pub async fn start(
        settings: &SimSettings,
        base: i64,
        users: usize,
    ) -> anyhow::Result<(Sims, Vec<mpsc::UnboundedReceiver<Reply>>)> {
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..users).map(|_| mpsc::unbounded_channel()).unzip();
        let counters = Arc::new(TelegramCounters::default());
        let router = Router {
            base,
            users: senders,
            counters: Arc::clone(&counters),
        };
        let config = SimConfig {
            limits: RateLimits {
                chat_rate: settings.chat_rate,
                // The sender's per-chat burst (`sender::CHAT_BURST`).
                chat_burst: 3.0,
                global_rate: settings.global_rate,
                global_burst: settings.global_rate.max(1.0),
                enforce: false,
            },
            // The router has what it needs; recordings would only grow.
            max_recorded_calls: 1_000,
            kept_messages_per_chat: 4,
        };
        let telegram = TelegramSim::start_with(settings.telegram_addr, config).await?;
        telegram.on_call(move |call, at| router.route(call, at));
        let mut heleket_config = HeleketSimConfig::new(
            settings.merchant_id.clone(),
            SecretString::new(settings.heleket_key.clone()),
        );
        // Retries span about 30 s, so a Redis restart does not lose a payment's webhook.
        heleket_config.webhook_attempts = 8;
        heleket_config.webhook_backoff = Duration::from_millis(250);
        heleket_config.max_recorded = 1_000;
        let heleket = HeleketSim::start(settings.heleket_addr, heleket_config).await?;
        Ok((
            Sims {
                telegram,
                heleket,
                counters,
            },
            receivers,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_ids_carry_the_user() {
        let id = query_id(7_000_000_000_123, 42);
        assert_eq!(id, "700000000012300000042");
        assert_eq!(user_of_query(&id), Some(7_000_000_000_123));
        assert_eq!(user_of_query("123"), None);
    }

    #[test]
    fn buttons_of_an_inline_keyboard() {
        let markup = serde_json::json!({"inline_keyboard": [
            [{"text": "A", "callback_data": "a"}, {"text": "B", "url": "http://x/pay/1"}],
            [{"text": "C", "callback_data": "c"}]
        ]});
        let b = buttons(&markup);
        assert_eq!(b.len(), 3);
        assert_eq!(
            b[1],
            Button::Url {
                text: "B".into(),
                url: "http://x/pay/1".into()
            }
        );
        assert!(buttons(&Value::Null).is_empty());
    }
}
