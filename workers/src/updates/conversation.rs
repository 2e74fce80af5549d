//! What the bot answers to each event.

use super::topup::TopUp;
use super::{transient, Callback};
use crate::db::PgPool;
use crate::metrics::Metrics;
use crate::ratelimit::{Decision, LimitClass, UserLimiter};
use crate::repo;
use crate::texts::{self, Lang};
use consumer::Failure;
use redis::aio::ConnectionManager;
use rust_decimal::Decimal;
use shared::callback::CallbackSigner;
use shared::event::{EventKind, InboundEvent, MemberStatus};
use shared::money::Money;
use shared::outbound::{Button, Keyboard, OutboundAction};
use shared::streams::Keys;
use std::str::FromStr;
use std::time::Duration;

// Short, because a read racing a credit can put back the old figure until it expires.
const BALANCE_CACHE_SECS: u64 = 30;
const HISTORY_LINES: i64 = 10;

pub struct Conversation {
    pub topup: TopUp,
    pub pool: PgPool,
    pub conn: ConnectionManager,
    pub keys: Keys,
    pub signer: CallbackSigner,
    pub limiter: UserLimiter,
    pub metrics: Metrics,
    /// Telegram user ids allowed to use `/stats` (`ADMIN_IDS`).
    pub admin_ids: std::collections::HashSet<i64>,
}

/// The key `sender` checks before writing to a chat.
pub fn blocked_key(keys: &Keys, chat_id: i64) -> String {
    keys.blocked_chat(chat_id)
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
            EventKind::Command { name, args, .. } => match name.as_str() {
                "start" => self.start(event, lang).await,
                "balance" => Ok(vec![send(self.balance_text(event.from.id, lang).await?)]),
                "history" => Ok(vec![send(self.history_text(event.from.id, lang).await?)]),
                "topup" if args.trim().is_empty() => Ok(vec![self.amounts(lang)]),
                "topup" => self.topup.request(event, lang, args).await,
                "shop" => Ok(vec![self.catalogue(lang).await?]),
                "stats" if self.admin_ids.contains(&event.from.id) => {
                    Ok(vec![send(self.stats().await?)])
                }
                "buy" => match args.trim().parse::<i64>() {
                    Ok(product) => Ok(vec![self.buy(event, lang, product).await?]),
                    Err(_) => Ok(vec![send(texts::buy_usage(lang))]),
                },
                _ => Ok(vec![send(texts::help(lang))]),
            },
            EventKind::Text { text, .. } => {
                if self.take_awaiting_amount(event.from.id).await? {
                    self.topup.request(event, lang, text).await
                } else {
                    Ok(vec![send(texts::help(lang))])
                }
            }
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
            data: self.signer.sign(&c.encode()),
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
        let mut replies = vec![answer(None)];
        match callback {
            Callback::Balance => replies.push(send(self.balance_text(user_id, lang).await?)),
            Callback::History => replies.push(send(self.history_text(user_id, lang).await?)),
            Callback::Help => replies.push(send(texts::help(lang))),
            Callback::TopUp => replies.push(self.amounts(lang)),
            Callback::TopUpAmount(amount) => {
                replies.extend(self.topup.request(event, lang, &amount.to_string()).await?)
            }
            Callback::TopUpOther => {
                self.await_amount(user_id).await?;
                let s = &self.topup.settings;
                replies.push(send(texts::ask_amount(
                    lang,
                    Money::new(s.min_topup),
                    Money::new(s.max_topup),
                )));
            }
            Callback::Shop => replies.push(self.catalogue(lang).await?),
            Callback::Buy(product) => replies.push(self.buy(event, lang, product).await?),
        }
        Ok(replies)
    }

    fn amounts(&self, lang: Lang) -> OutboundAction {
        OutboundAction::SendMessage {
            text: texts::choose_amount(lang),
            keyboard: Some(
                self.topup
                    .amounts_keyboard(lang, |c| self.signer.sign(&c.encode())),
            ),
        }
    }

    async fn await_amount(&self, user_id: i64) -> Result<(), Failure> {
        let mut conn = self.conn.clone();
        redis::cmd("SET")
            .arg(self.topup.awaiting_key(user_id))
            .arg(1)
            .arg("EX")
            .arg(600)
            .query_async::<()>(&mut conn)
            .await
            .map_err(transient)
    }

    /// True once after "Other amount" was pressed: the message is the amount.
    async fn take_awaiting_amount(&self, user_id: i64) -> Result<bool, Failure> {
        let mut conn = self.conn.clone();
        let taken: Option<String> = redis::cmd("GETDEL")
            .arg(self.topup.awaiting_key(user_id))
            .query_async(&mut conn)
            .await
            .map_err(transient)?;
        Ok(taken.is_some())
    }

    /// Users, today's money, and the health of every stream.
    async fn stats(&self) -> Result<String, Failure> {
        let db = self.pool.get().await.map_err(transient)?;
        let figures = repo::stats::today(&*db).await.map_err(transient)?;
        let p = shared::streams::SINGLE_PARTITION;
        let streams = [
            ("updates", self.keys.updates_stream(p)),
            ("payments", self.keys.payments_stream(p)),
            ("outbound", self.keys.outbound_stream(p)),
        ];
        let mut conn = self.conn.clone();
        let mut health = Vec::with_capacity(streams.len());
        for (name, stream) in streams {
            let groups: Option<redis::streams::StreamInfoGroupsReply> = redis::cmd("XINFO")
                .arg("GROUPS")
                .arg(&stream)
                .query_async(&mut conn)
                .await
                .ok();
            let (pending, lag) = groups
                .map(|g| {
                    g.groups.iter().fold((0u64, 0u64), |(p, l), group| {
                        (p + group.pending as u64, l + group.lag.unwrap_or(0) as u64)
                    })
                })
                .unwrap_or_default();
            let dead: u64 = redis::cmd("XLEN")
                .arg(self.keys.dead_letter_stream(&stream))
                .query_async(&mut conn)
                .await
                .map_err(transient)?;
            health.push((name, pending, lag, dead));
        }
        Ok(texts::stats(&figures, &health))
    }

    async fn catalogue(&self, lang: Lang) -> Result<OutboundAction, Failure> {
        let db = self.pool.get().await.map_err(transient)?;
        let products = repo::shop::list_products(&*db).await.map_err(transient)?;
        if products.is_empty() {
            return Ok(send(texts::shop_empty(lang)));
        }
        let rows = products
            .iter()
            .filter(|p| p.stock != Some(0))
            .map(|p| {
                vec![Button::Callback {
                    text: texts::buy_button(&p.title, Money::new(p.price)),
                    data: self.signer.sign(&Callback::Buy(p.id).encode()),
                }]
            })
            .collect();
        Ok(OutboundAction::SendMessage {
            text: texts::catalogue(lang, &products),
            keyboard: Some(Keyboard { rows }),
        })
    }

    /// One transaction: debit, take a stock item, record the order and the ledger line.
    async fn buy(
        &self,
        event: &InboundEvent,
        lang: Lang,
        product: i64,
    ) -> Result<OutboundAction, Failure> {
        let mut db = self.pool.get().await.map_err(transient)?;
        let tx = db.transaction().await.map_err(transient)?;
        let request_key = format!("u{}", event.update_id);
        let outcome = repo::shop::buy(&tx, &request_key, event.from.id, product)
            .await
            .map_err(transient)?;
        if matches!(outcome, repo::shop::Purchase::Bought { .. }) {
            tx.commit().await.map_err(transient)?;
            self.forget_balance(event.from.id).await;
        } else {
            tx.rollback().await.map_err(transient)?;
        }
        Ok(send(texts::purchase(lang, &outcome)))
    }

    async fn forget_balance(&self, user_id: i64) {
        let mut conn = self.conn.clone();
        let result: redis::RedisResult<()> = redis::cmd("DEL")
            .arg(balance_cache_key(&self.keys, user_id))
            .query_async(&mut conn)
            .await;
        if let Err(e) = result {
            tracing::warn!(error.message = %e, "Failed to drop the balance cache.");
        }
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
