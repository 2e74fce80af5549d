//! What the bot answers to each event.

use super::{transient, Callback};
use crate::db::PgPool;
use crate::metrics::Metrics;
use crate::ratelimit::{Decision, LimitClass, UserLimiter};
use crate::repo;
use crate::stream::Failure;
use crate::texts::{self, Lang};
use redis::aio::ConnectionManager;
use rust_decimal::Decimal;
use shared::callback::CallbackSigner;
use shared::event::{EventKind, InboundEvent, MemberStatus};
use shared::money::Money;
use shared::outbound::{Button, Keyboard, OutboundAction};
use shared::streams::Keys;
use std::str::FromStr;
use std::time::Duration;

const BALANCE_CACHE_SECS: u64 = 300;
const HISTORY_LINES: i64 = 10;

pub struct Conversation {
    pub pool: PgPool,
    pub conn: ConnectionManager,
    pub keys: Keys,
    pub signer: CallbackSigner,
    pub limiter: UserLimiter,
    pub metrics: Metrics,
}

/// The key `sender` checks before writing to a chat.
pub fn blocked_key(keys: &Keys, chat_id: i64) -> String {
    keys.key(format_args!("blocked:{chat_id}"))
}

pub fn balance_cache_key(keys: &Keys, user_id: i64) -> String {
    keys.key(format_args!("balance:{user_id}"))
}

fn send(text: String) -> OutboundAction {
    OutboundAction::SendMessage {
        text,
        keyboard: None,
    }
}

impl Conversation {
    pub async fn respond(&self, event: &InboundEvent) -> Result<Vec<OutboundAction>, Failure> {
        let lang = Lang::from_code(event.from.language_code.as_deref());
        if let EventKind::MemberChange { status, .. } = &event.kind {
            self.set_blocked(event.from.id, *status == MemberStatus::Blocked)
                .await?;
            return Ok(Vec::new());
        }
        let decision = self
            .limiter
            .check(event.from.id, LimitClass::Messages)
            .await
            .map_err(transient)?;
        if let Decision::Limited { notify, retry_in } = decision {
            return Ok(self.refuse_for_rate(event, lang, notify, retry_in));
        }
        match &event.kind {
            EventKind::Command { name, .. } => match name.as_str() {
                "start" => self.start(event, lang).await,
                "balance" => Ok(vec![send(self.balance_text(event.from.id, lang).await?)]),
                "history" => Ok(vec![send(self.history_text(event.from.id, lang).await?)]),
                "topup" => Ok(vec![send(texts::top_up_unavailable(lang))]),
                "shop" => Ok(vec![send(texts::shop_empty(lang))]),
                _ => Ok(vec![send(texts::help(lang))]),
            },
            EventKind::Text { .. } => Ok(vec![send(texts::help(lang))]),
            EventKind::Callback { query_id, data, .. } => {
                self.callback(event, lang, query_id, data).await
            }
            EventKind::MemberChange { .. } => Ok(Vec::new()),
        }
    }

    /// A limited user gets one short notice per window; a pressed button is still answered,
    /// so it stops spinning. Nothing else is done.
    fn refuse_for_rate(
        &self,
        event: &InboundEvent,
        lang: Lang,
        notify: bool,
        retry_in: Duration,
    ) -> Vec<OutboundAction> {
        self.metrics.rate_limited(LimitClass::Messages.label());
        tracing::info!(
            user_id = event.from.id,
            retry_in_ms = retry_in.as_millis() as u64,
            "Rate limited."
        );
        match (&event.kind, notify) {
            (EventKind::Callback { query_id, .. }, _) => vec![OutboundAction::AnswerCallback {
                query_id: query_id.clone(),
                text: Some(texts::slow_down(lang)),
            }],
            (_, true) => vec![send(texts::slow_down(lang))],
            (_, false) => Vec::new(),
        }
    }

    async fn start(
        &self,
        event: &InboundEvent,
        lang: Lang,
    ) -> Result<Vec<OutboundAction>, Failure> {
        let db = self.pool.get().await.map_err(transient)?;
        repo::users::upsert_started(&*db, &event.from)
            .await
            .map_err(transient)?;
        self.clear_blocked_flag(event.from.id).await?;
        Ok(vec![OutboundAction::SendMessage {
            text: texts::welcome(lang, &event.from.first_name),
            keyboard: Some(self.main_menu(lang)),
        }])
    }

    fn main_menu(&self, lang: Lang) -> Keyboard {
        let labels = texts::menu_labels(lang);
        let button = |text: &str, c: Callback| Button::Callback {
            text: text.to_owned(),
            data: self.signer.sign(c.encode()),
        };
        Keyboard {
            rows: vec![
                vec![
                    button(labels.balance, Callback::Balance),
                    button(labels.top_up, Callback::TopUp),
                ],
                vec![
                    button(labels.shop, Callback::Shop),
                    button(labels.history, Callback::History),
                ],
                vec![button(labels.help, Callback::Help)],
            ],
        }
    }

    async fn callback(
        &self,
        event: &InboundEvent,
        lang: Lang,
        query_id: &str,
        data: &str,
    ) -> Result<Vec<OutboundAction>, Failure> {
        let answer = |text: Option<String>| OutboundAction::AnswerCallback {
            query_id: query_id.to_owned(),
            text,
        };
        let Some(callback) = self.signer.verify(data).ok().and_then(Callback::decode) else {
            tracing::warn!(
                user_id = event.from.id,
                "Callback data failed verification; answered without effect."
            );
            return Ok(vec![answer(Some(texts::button_expired(lang)))]);
        };
        let user_id = event.from.id;
        let reply = match callback {
            Callback::Balance => self.balance_text(user_id, lang).await?,
            Callback::History => self.history_text(user_id, lang).await?,
            Callback::TopUp => texts::top_up_unavailable(lang),
            Callback::Shop => texts::shop_empty(lang),
            Callback::Help => texts::help(lang),
        };
        Ok(vec![answer(None), send(reply)])
    }

    /// Read through a Redis cache that every balance change invalidates.
    async fn balance_text(&self, user_id: i64, lang: Lang) -> Result<String, Failure> {
        let key = balance_cache_key(&self.keys, user_id);
        let mut conn = self.conn.clone();
        let cached: Option<String> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .map_err(transient)?;
        let amount = match cached.and_then(|c| Decimal::from_str(&c).ok()) {
            Some(amount) => amount,
            None => {
                let db = self.pool.get().await.map_err(transient)?;
                let amount = repo::users::balance(&*db, user_id)
                    .await
                    .map_err(transient)?;
                let _: redis::RedisResult<()> = redis::cmd("SET")
                    .arg(&key)
                    .arg(amount.to_string())
                    .arg("EX")
                    .arg(BALANCE_CACHE_SECS)
                    .query_async(&mut conn)
                    .await;
                amount
            }
        };
        Ok(texts::balance(lang, Money::new(amount)))
    }

    async fn history_text(&self, user_id: i64, lang: Lang) -> Result<String, Failure> {
        let db = self.pool.get().await.map_err(transient)?;
        let lines = repo::users::history(&*db, user_id, HISTORY_LINES)
            .await
            .map_err(transient)?;
        Ok(texts::history(lang, &lines))
    }

    async fn set_blocked(&self, user_id: i64, blocked: bool) -> Result<(), Failure> {
        let db = self.pool.get().await.map_err(transient)?;
        repo::users::set_blocked(&*db, user_id, blocked)
            .await
            .map_err(transient)?;
        if blocked {
            let mut conn = self.conn.clone();
            redis::cmd("SET")
                .arg(blocked_key(&self.keys, user_id))
                .arg(1)
                .query_async::<()>(&mut conn)
                .await
                .map_err(transient)
        } else {
            self.clear_blocked_flag(user_id).await
        }
    }

    async fn clear_blocked_flag(&self, user_id: i64) -> Result<(), Failure> {
        let mut conn = self.conn.clone();
        redis::cmd("DEL")
            .arg(blocked_key(&self.keys, user_id))
            .query_async::<()>(&mut conn)
            .await
            .map_err(transient)
    }
}
