//! The `payments` role: applies verified Heleket events (webhooks and reconciler findings)
//! a stream read at a time, in one PostgreSQL transaction: audit record (unique per invoice
//! and status), state machine, ledger and balance, and the user's notification through the
//! outbox. Set-based statements keep the cost per event low; the semantics are those of
//! applying each event on its own, in stream order.

mod outbox;
pub mod policy;
mod reconciler;

pub use outbox::OutboxPublisher;
pub use policy::CreditPolicy;
pub use reconciler::{feed_invoice, PassReport, Reconciler};

use crate::db::{PgPool, PgTransaction};
use crate::metrics::Metrics;
use crate::repo;
use crate::texts::{self, Lang};
use crate::updates::balance_cache_key;
use consumer::{EntryContext, EntryHandler, Failure};
use policy::{decide, Reported, Step, Stored};
use redis::aio::ConnectionManager;
use rust_decimal::Decimal;
use shared::money::Money;
use shared::outbound::{OutboundAction, OutboundMessage};
use shared::streams::Keys;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use tracing::Instrument;
use uuid::Uuid;

pub use shared::heleket::webhook::PaymentStreamEntry as PaymentEntry;

/// The key of a user's cached unpaid invoice for one amount.
pub fn invoice_cache_key(keys: &Keys, user_id: i64, amount: &Money) -> String {
    // Two decimals always: 10, 10.0 and 10.00 are one amount and must be one key.
    keys.key(format_args!("invoice:{user_id}:{:.2}", amount.amount()))
}

pub struct PaymentsHandler {
    pub pool: PgPool,
    pub conn: ConnectionManager,
    pub keys: Keys,
    pub policy: CreditPolicy,
    pub metrics: Metrics,
    pub outbox: Arc<OutboxPublisher>,
    /// Dies right after a credit commits, as a crash would: proves the outbox.
    pub crash_after_credit_commit: bool,
}

/// What an event does to its invoice, decided before anything is written.
struct Verdict {
    outcome: &'static str,
    reason: Option<String>,
    /// The status the invoice moves to, if any.
    new_status: Option<String>,
    credit: Option<rust_decimal::Decimal>,
}

impl Verdict {
    fn parked(outcome: &'static str, reason: String, new_status: Option<String>) -> Self {
        Verdict {
            outcome,
            reason: Some(reason),
            new_status,
            credit: None,
        }
    }
}

fn transient(e: impl std::fmt::Display) -> Failure {
    Failure::Transient(e.to_string())
}

impl PaymentsHandler {
    fn judge(
        &self,
        payment: Option<&repo::payments::Payment>,
        invoice_uuid: Uuid,
        event: &shared::heleket::webhook::WebhookEvent,
    ) -> Verdict {
        let Some(payment) = payment else {
            let reason = format!("no invoice with order_id {:?}", event.order_id);
            return Verdict::parked("unknown_invoice", reason, None);
        };
        if payment
            .invoice_uuid
            .is_some_and(|known| known != invoice_uuid)
        {
            let reason = "invoice uuid differs from the one Heleket gave us".to_owned();
            return Verdict::parked("mismatch", reason, None);
        }
        let stored = Stored {
            status: &payment.status,
            amount: payment.amount,
            currency: &payment.currency,
        };
        let reported = Reported {
            amount: event.amount.as_deref(),
            currency: event.currency.as_deref(),
            payment_amount: event.payment_amount.as_deref(),
            payment_amount_usd: event.payment_amount_usd.as_deref(),
            merchant_amount: event.merchant_amount.as_deref(),
        };
        match decide(&stored, &event.status, &reported, self.policy) {
            Step::Ignore { reason } => Verdict {
                outcome: "ignored_final",
                reason: Some(reason),
                new_status: None,
                credit: None,
            },
            Step::Park { reason, new_status } => Verdict::parked("mismatch", reason, new_status),
            Step::Move { credit } => Verdict {
                outcome: if credit.is_some() {
                    "credited"
                } else {
                    "applied"
                },
                reason: None,
                new_status: Some(event.status.clone()),
                credit,
            },
        }
    }

    /// One transaction for a whole read: lock the invoices, decide each event in stream
    /// order against the state the earlier ones left, record every event with its outcome
    /// (replays are skipped and change nothing), then write statuses, balances, ledger lines
    /// and notifications. Returns each event's outcome, and the credits made.
    async fn apply_batch(
        &self,
        batch: &[(PaymentEntry, Uuid)],
    ) -> Result<(Vec<&'static str>, Vec<Credited>), Failure> {
        let mut client = self.pool.get().await.map_err(transient)?;
        let tx = client.transaction().await.map_err(transient)?;
        let mut order_ids: Vec<&str> = batch
            .iter()
            .map(|(e, _)| e.event.order_id.as_str())
            .collect();
        order_ids.sort_unstable();
        order_ids.dedup();
        let mut invoices: HashMap<String, repo::payments::Payment> =
            repo::payments::lock_many(&tx, &order_ids)
                .await
                .map_err(transient)?
                .into_iter()
                .map(|p| (p.order_id.clone(), p))
                .collect();

        let mut outcomes = Vec::with_capacity(batch.len());
        let mut events = Vec::with_capacity(batch.len());
        // Per recorded event (same index as `events`): the new status and any credit.
        let mut effects = Vec::with_capacity(batch.len());
        let mut seen = HashSet::new();
        for (entry, invoice_uuid) in batch {
            let event = &entry.event;
            if !seen.insert((*invoice_uuid, event.status.as_str())) {
                outcomes.push("replay");
                continue;
            }
            let payment = invoices.get_mut(&event.order_id);
            let verdict = self.judge(payment.as_deref(), *invoice_uuid, event);
            if let (Some(p), Some(status)) = (payment, &verdict.new_status) {
                p.status = status.clone();
                p.invoice_uuid.get_or_insert(*invoice_uuid);
            }
            match (verdict.outcome, &verdict.reason) {
                ("ignored_final", Some(reason)) => tracing::info!(
                    %reason, order_id = %event.order_id, "Payment event changes nothing."
                ),
                (outcome, Some(reason)) => tracing::warn!(
                    %reason, outcome, order_id = %event.order_id, payment_uuid = %invoice_uuid,
                    "Payment event parked for inspection."
                ),
                _ => {}
            }
            outcomes.push(verdict.outcome);
            effects.push((verdict.new_status, verdict.credit));
            events.push(repo::payments::NewEvent {
                invoice_uuid: *invoice_uuid,
                order_id: &event.order_id,
                status: &event.status,
                source: entry.source.as_deref().unwrap_or("webhook"),
                outcome: verdict.outcome,
                reason: verdict.reason,
                payload: audit_payload(entry)?,
            });
        }
        let fresh = repo::payments::record_events(&tx, &events)
            .await
            .map_err(transient)?;

        // The effects of new events only, collapsed to one final state per invoice.
        let mut changes: Vec<repo::payments::StatusChange> = Vec::new();
        let mut credits: Vec<PendingCredit> = Vec::new();
        for (event, (new_status, credit)) in events.iter().zip(effects) {
            let key = (event.invoice_uuid, event.status.to_owned());
            let (Some(status), true) = (new_status, fresh.contains(&key)) else {
                continue;
            };
            let Some(invoice) = invoices.get(event.order_id) else {
                continue;
            };
            changes.retain(|c| c.order_id != event.order_id);
            changes.push(repo::payments::StatusChange {
                order_id: event.order_id.to_owned(),
                status,
                invoice_uuid: event.invoice_uuid,
                credited: credit,
            });
            if let Some(amount) = credit {
                credits.push(PendingCredit {
                    user_id: invoice.user_id,
                    amount,
                    invoice_uuid: event.invoice_uuid,
                    currency: invoice.currency.clone(),
                    invoice_amount: Money::new(invoice.amount),
                    language: invoice.language.clone(),
                });
            }
        }
        // A replayed event must not count as applied.
        for (outcome, (entry, uuid)) in outcomes.iter_mut().zip(batch) {
            if *outcome != "replay" && !fresh.contains(&(*uuid, entry.event.status.clone())) {
                *outcome = "replay";
            }
        }
        if !changes.is_empty() {
            repo::payments::set_statuses(&tx, &changes)
                .await
                .map_err(transient)?;
        }
        let credited = self.credit(&tx, &credits).await?;
        tx.commit().await.map_err(transient)?;
        Ok((outcomes, credited))
    }

    /// Balances (one addition per user), a ledger line per invoice with the balance right
    /// after it, and a notification per credit.
    async fn credit(
        &self,
        tx: &PgTransaction<'_>,
        credits: &[PendingCredit],
    ) -> Result<Vec<Credited>, Failure> {
        if credits.is_empty() {
            return Ok(Vec::new());
        }
        let mut per_user: Vec<(i64, Decimal)> = Vec::new();
        for c in credits {
            match per_user.iter_mut().find(|(u, _)| *u == c.user_id) {
                Some((_, sum)) => *sum += c.amount,
                None => per_user.push((c.user_id, c.amount)),
            }
        }
        let balances = repo::payments::add_to_balances(tx, &per_user)
            .await
            .map_err(transient)?;
        // Walk each user's credits backwards from the final balance.
        let mut after: HashMap<i64, Decimal> = balances;
        let mut lines = Vec::with_capacity(credits.len());
        let mut notices = Vec::with_capacity(credits.len());
        let mut credited = Vec::with_capacity(credits.len());
        for c in credits.iter().rev() {
            let balance = after.get(&c.user_id).copied().unwrap_or(c.amount);
            after.insert(c.user_id, balance - c.amount);
            lines.push(repo::payments::TopupLine {
                user_id: c.user_id,
                amount: c.amount,
                balance_after: balance,
                currency: c.currency.clone(),
                invoice_uuid: c.invoice_uuid,
            });
            let lang = Lang::from_code(c.language.as_deref());
            notices.push(OutboundMessage {
                dedupe_key: format!("paid:{}", c.invoice_uuid),
                chat_id: c.user_id,
                action: OutboundAction::SendMessage {
                    text: texts::payment_received(lang, Money::new(c.amount), Money::new(balance)),
                    keyboard: None,
                },
            });
            credited.push(Credited {
                user_id: c.user_id,
                invoice_amount: c.invoice_amount,
                amount: c.amount,
            });
        }
        repo::payments::insert_topup_lines(tx, &lines)
            .await
            .map_err(transient)?;
        repo::outbox::enqueue(tx, &notices)
            .await
            .map_err(transient)?;
        Ok(credited)
    }

    /// After commit: the balance caches and the cached invoice links are stale now.
    async fn after_credits(&self, credited: &[Credited]) {
        let mut del = redis::cmd("DEL");
        for c in credited {
            del.arg(balance_cache_key(&self.keys, c.user_id))
                .arg(invoice_cache_key(&self.keys, c.user_id, &c.invoice_amount));
        }
        let mut conn = self.conn.clone();
        if let Err(e) = del.query_async::<()>(&mut conn).await {
            // The balance cache expires on its own; the invoice link is final and harmless.
            tracing::warn!(error.message = %e, "Failed to drop caches after a credit.");
        }
        self.outbox.wake();
    }
}

/// A credit decided in this batch, not yet written.
struct PendingCredit {
    user_id: i64,
    amount: Decimal,
    invoice_uuid: Uuid,
    currency: String,
    invoice_amount: Money,
    language: Option<String>,
}

/// A credit that committed.
struct Credited {
    user_id: i64,
    invoice_amount: Money,
    amount: Decimal,
}

/// The body as Heleket sent it when we have it; what payment/info said otherwise.
fn audit_payload(entry: &PaymentEntry) -> Result<serde_json::Value, Failure> {
    match entry
        .raw
        .as_deref()
        .map(serde_json::from_str::<serde_json::Value>)
    {
        Some(Ok(raw)) => Ok(raw),
        _ => serde_json::to_value(&entry.event).map_err(|e| Failure::Permanent(e.to_string())),
    }
}

impl EntryHandler for PaymentsHandler {
    type Item = PaymentEntry;
    const ROLE: &'static str = "payments";

    fn decode(&self, payload: &str) -> Result<PaymentEntry, String> {
        serde_json::from_str(payload).map_err(|e| e.to_string())
    }

    /// Events of one invoice are applied in order.
    fn order_key(item: &PaymentEntry) -> i64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        item.event.order_id.hash(&mut h);
        h.finish() as i64
    }

    const BATCHED: bool = true;

    async fn handle(&self, entry: PaymentEntry, ctx: EntryContext) -> Result<(), Failure> {
        let mut results = self.handle_batch(vec![(entry, ctx)]).await;
        results.pop().map_or(Ok(()), |(_, r)| r)
    }

    async fn handle_batch(
        &self,
        items: Vec<(PaymentEntry, EntryContext)>,
    ) -> Vec<(String, Result<(), Failure>)> {
        let mut results = Vec::with_capacity(items.len());
        let mut batch = Vec::with_capacity(items.len());
        let mut ids = Vec::with_capacity(items.len());
        for (entry, ctx) in items {
            match Uuid::parse_str(&entry.event.uuid) {
                Ok(uuid) => {
                    ids.push(ctx.entry_id);
                    batch.push((entry, uuid));
                }
                Err(_) => results.push((
                    ctx.entry_id,
                    Err(Failure::Permanent("invoice uuid is not a UUID".into())),
                )),
            }
        }
        if batch.is_empty() {
            return results;
        }
        let span = tracing::info_span!("payment_events", events = batch.len());
        match self.apply_batch(&batch).instrument(span).await {
            Ok((outcomes, credited)) => {
                for ((entry, uuid), outcome) in batch.iter().zip(&outcomes) {
                    self.metrics.payment_event(&entry.event.status, outcome);
                    tracing::info!(
                        payment_uuid = %uuid, order_id = %entry.event.order_id,
                        status = %entry.event.status, outcome, "Payment event handled."
                    );
                }
                for c in &credited {
                    self.metrics.payment_credited(c.amount);
                }
                if !credited.is_empty() {
                    if self.crash_after_credit_commit {
                        tracing::error!("Failpoint crash_after_credit_commit: aborting.");
                        std::process::abort();
                    }
                    self.after_credits(&credited).await;
                }
                results.extend(ids.into_iter().map(|id| (id, Ok(()))));
            }
            Err(failure) => {
                tracing::warn!(
                    ?failure,
                    "Applying payment events failed; they will be retried."
                );
                results.extend(ids.into_iter().map(|id| (id, Err(failure.clone()))));
            }
        }
        results
    }
}
