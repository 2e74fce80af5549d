//! Top-ups: amount validation, the invoice row before Heleket is asked, one cached invoice
//! per user and amount, and a reply with the invoice page as a URL button.

use super::transient;
use crate::db::PgPool;
use crate::payments::invoice_cache_key;
use crate::ratelimit::{Decision, LimitClass, UserLimiter};
use crate::repo;
use crate::settings::PaymentSettings;
use crate::texts::{self, AmountProblem, Lang};
use consumer::Failure;
use redis::aio::ConnectionManager;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use shared::event::{InboundEvent, UpdateId};
use shared::heleket::client::HeleketClient;
use shared::heleket::types::CreateInvoice;
use shared::money::{Money, CURRENCY};
use shared::outbound::{Button, Keyboard, OutboundAction};
use shared::streams::Keys;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `12`, `12.5`, `12.50` or `12,50`; positive, at most two decimals, within the limits.
pub fn parse_amount(raw: &str, min: Decimal, max: Decimal) -> Result<Decimal, AmountProblem> {
    let raw = raw.trim().replace(',', ".");
    let negative = raw.starts_with('-');
    let digits = raw.trim_start_matches(['-', '+']);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let well_formed = !whole.is_empty()
        && whole.chars().all(|c| c.is_ascii_digit())
        && fraction.chars().all(|c| c.is_ascii_digit())
        && whole.len() <= 12
        && !(digits.contains('.') && fraction.is_empty());
    if !well_formed {
        return Err(AmountProblem::NotANumber);
    }
    if fraction.len() > 2 {
        return Err(AmountProblem::TooManyDecimals);
    }
    let amount = Decimal::from_str(digits).map_err(|_| AmountProblem::NotANumber)?;
    if negative || amount <= Decimal::ZERO {
        return Err(AmountProblem::NotPositive);
    }
    if amount < min {
        return Err(AmountProblem::BelowMinimum(Money::new(min)));
    }
    if amount > max {
        return Err(AmountProblem::AboveMaximum(Money::new(max)));
    }
    Ok(amount.round_dp(2))
}

/// An unpaid invoice, cached until it expires.
#[derive(Debug, Serialize, Deserialize)]
struct CachedInvoice {
    order_id: String,
    url: String,
}

pub struct TopUp {
    pub pool: PgPool,
    pub conn: ConnectionManager,
    pub keys: Keys,
    pub client: Option<HeleketClient>,
    pub settings: PaymentSettings,
    pub limiter: UserLimiter,
    pub metrics: crate::metrics::Metrics,
}

fn send(text: String, keyboard: Option<Keyboard>) -> OutboundAction {
    OutboundAction::SendMessage { text, keyboard }
}

impl TopUp {
    /// The key that makes the next text message of this user an amount.
    pub fn awaiting_key(&self, user_id: i64) -> String {
        self.keys.key(format_args!("await:topup:{user_id}"))
    }

    /// `/topup AMOUNT`, a preset button, or the answer to "Other amount".
    pub async fn request(
        &self,
        event: &InboundEvent,
        lang: Lang,
        raw_amount: &str,
    ) -> Result<Vec<OutboundAction>, Failure> {
        let s = &self.settings;
        let amount = match parse_amount(raw_amount, s.min_topup, s.max_topup) {
            Ok(a) => Money::new(a),
            Err(problem) => return Ok(vec![send(texts::amount_refused(lang, &problem), None)]),
        };
        let user_id = event.from.id;
        if let Some(cached) = self.cached(user_id, &amount).await? {
            return Ok(vec![self.invoice_reply(lang, amount, cached.url)]);
        }
        let Some(client) = &self.client else {
            return Ok(vec![send(texts::payments_unavailable(lang), None)]);
        };
        // Checked before anything is written: with the circuit open no row is created.
        if !client.admits_calls() {
            return Ok(vec![send(texts::payments_unavailable(lang), None)]);
        }
        if let Decision::Limited { .. } = self
            .limiter
            .check(user_id, LimitClass::Expensive)
            .await
            .map_err(transient)?
        {
            self.metrics.rate_limited(LimitClass::Expensive.label());
            return Ok(vec![send(texts::too_many_invoices(lang), None)]);
        }
        let order_id = order_id_for(user_id, event.update_id);
        let db = self.pool.get().await.map_err(transient)?;
        let payment =
            repo::payments::insert_pending(&*db, &order_id, user_id, amount.amount(), CURRENCY)
                .await
                .map_err(transient)?;
        if let Some(url) = payment.url.filter(|_| payment.status != "pending") {
            // A redelivered request: the invoice exists already.
            return Ok(vec![self.invoice_reply(lang, amount, url)]);
        }
        let mut request = CreateInvoice::new(amount.amount(), CURRENCY, order_id.clone());
        request.url_callback = s
            .public_url
            .as_ref()
            .map(|u| format!("{u}/heleket/webhook"));
        request.lifetime = Some(s.invoice_lifetime.as_secs() as u32);
        request.is_payment_multiple = Some(false);
        match client.create_invoice(&request).await {
            Ok(invoice) => {
                let (Some(uuid), Some(url)) = (invoice.uuid_parsed(), invoice.url.clone()) else {
                    tracing::error!(%order_id, "Heleket answered without uuid or url.");
                    repo::payments::mark_create_failed(&*db, &order_id)
                        .await
                        .map_err(transient)?;
                    return Ok(vec![send(texts::invoice_failed(lang), None)]);
                };
                if !invoice.matches(&request) {
                    tracing::error!(%order_id, "Heleket returned an invoice for other figures.");
                    repo::payments::mark_create_failed(&*db, &order_id)
                        .await
                        .map_err(transient)?;
                    return Ok(vec![send(texts::invoice_failed(lang), None)]);
                }
                let expires_at = invoice
                    .expired_at
                    .and_then(|t| u64::try_from(t).ok())
                    .map(|t| UNIX_EPOCH + Duration::from_secs(t));
                repo::payments::attach_invoice(&*db, &order_id, uuid, &url, expires_at)
                    .await
                    .map_err(transient)?;
                self.cache(user_id, &amount, &order_id, &url, expires_at)
                    .await;
                tracing::info!(%order_id, payment_uuid = %uuid, "Invoice created.");
                Ok(vec![self.invoice_reply(lang, amount, url)])
            }
            // Maybe created, maybe not: the row stays pending and the reconciler asks
            // Heleket about it by order_id.
            Err(e) if e.is_unavailable() => {
                tracing::warn!(%order_id, error.message = %e, "Heleket unavailable; invoice left pending.");
                Ok(vec![send(texts::payments_unavailable(lang), None)])
            }
            Err(e) => {
                tracing::error!(%order_id, error.message = %e, "Heleket refused the invoice.");
                repo::payments::mark_create_failed(&*db, &order_id)
                    .await
                    .map_err(transient)?;
                Ok(vec![send(texts::invoice_failed(lang), None)])
            }
        }
    }

    fn invoice_reply(&self, lang: Lang, amount: Money, url: String) -> OutboundAction {
        send(
            texts::invoice_ready(lang, amount),
            Some(Keyboard {
                rows: vec![vec![Button::Url {
                    text: texts::pay_button(lang, amount),
                    url,
                }]],
            }),
        )
    }

    async fn cached(&self, user_id: i64, amount: &Money) -> Result<Option<CachedInvoice>, Failure> {
        let mut conn = self.conn.clone();
        let raw: Option<String> = redis::cmd("GET")
            .arg(invoice_cache_key(&self.keys, user_id, amount))
            .query_async(&mut conn)
            .await
            .map_err(transient)?;
        Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
    }

    /// Cached until shortly before the invoice expires, so a cached link is always payable.
    async fn cache(
        &self,
        user_id: i64,
        amount: &Money,
        order_id: &str,
        url: &str,
        expires_at: Option<SystemTime>,
    ) {
        let ttl = expires_at
            .and_then(|t| t.duration_since(SystemTime::now()).ok())
            .unwrap_or(self.settings.invoice_lifetime)
            .saturating_sub(Duration::from_secs(120));
        if ttl.is_zero() {
            return;
        }
        let value = serde_json::json!({"order_id": order_id, "url": url}).to_string();
        let mut conn = self.conn.clone();
        let result: redis::RedisResult<()> = redis::cmd("SET")
            .arg(invoice_cache_key(&self.keys, user_id, amount))
            .arg(value)
            .arg("EX")
            .arg(ttl.as_secs().max(1))
            .query_async(&mut conn)
            .await;
        if let Err(e) = result {
            tracing::warn!(error.message = %e, "Failed to cache the invoice link.");
        }
    }

    /// The amounts keyboard under "Top up".
    pub fn amounts_keyboard(
        &self,
        lang: Lang,
        sign: impl Fn(super::Callback) -> String,
    ) -> Keyboard {
        let mut rows: Vec<Vec<Button>> = self
            .settings
            .presets
            .chunks(2)
            .map(|pair| {
                pair.iter()
                    .map(|a| Button::Callback {
                        text: Money::new(*a).to_string(),
                        data: sign(super::Callback::TopUpAmount(*a)),
                    })
                    .collect()
            })
            .collect();
        rows.push(vec![Button::Callback {
            text: texts::other_amount_label(lang).to_owned(),
            data: sign(super::Callback::TopUpOther),
        }]);
        Keyboard { rows }
    }
}

/// Derived from the update that asked, so a redelivered request reuses its invoice row and
/// Heleket (same order_id) returns the same invoice.
pub fn order_id_for(user_id: i64, update_id: UpdateId) -> String {
    format!("tu{user_id}_{update_id}").replace('-', "m")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Decimal, AmountProblem> {
        parse_amount(s, Decimal::new(100, 2), Decimal::new(100_000, 2))
    }

    #[test]
    fn amounts_are_validated() {
        assert_eq!(parse("10").ok(), Some(Decimal::new(1000, 2)));
        assert_eq!(parse("12,5").ok(), Some(Decimal::new(1250, 2)));
        assert_eq!(parse(" 1.00 ").ok(), Some(Decimal::new(100, 2)));
        assert!(matches!(parse("-5"), Err(AmountProblem::NotPositive)));
        assert!(matches!(parse("0"), Err(AmountProblem::NotPositive)));
        assert!(matches!(parse("abc"), Err(AmountProblem::NotANumber)));
        assert!(matches!(parse("1e3"), Err(AmountProblem::NotANumber)));
        assert!(matches!(parse("10."), Err(AmountProblem::NotANumber)));
        assert!(matches!(parse(""), Err(AmountProblem::NotANumber)));
        assert!(matches!(
            parse("10.001"),
            Err(AmountProblem::TooManyDecimals)
        ));
        assert!(matches!(parse("0.5"), Err(AmountProblem::BelowMinimum(_))));
        assert!(matches!(
            parse("1000.01"),
            Err(AmountProblem::AboveMaximum(_))
        ));
    }

    #[test]
    fn order_ids_are_alpha_dash() {
        let id = order_id_for(42, UpdateId(811));
        assert_eq!(id, "tu42_811");
        assert!(id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
    }
}
