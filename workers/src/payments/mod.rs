//! The `payments` role: applies each verified Heleket event (webhook or reconciler) in one
//! PostgreSQL transaction: audit record (unique per invoice and status), state machine,
//! ledger and balance, and the user's notification through the outbox.

mod outbox;
pub mod policy;
mod reconciler;

pub use outbox::OutboxPublisher;
pub use policy::CreditPolicy;
pub use reconciler::{PassReport, Reconciler};

use crate::db::PgPool;
use crate::metrics::Metrics;
use crate::repo;
use crate::stream::{EntryContext, EntryHandler, Failure};
use crate::texts::{self, Lang};
use crate::updates::balance_cache_key;
use policy::{decide, Reported, Step, Stored};
use redis::aio::ConnectionManager;
use shared::money::Money;
use shared::outbound::{OutboundAction, OutboundMessage};
use shared::streams::Keys;
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

/// What applying an event did, for the caches and the log.
struct Applied {
    outcome: &'static str,
    /// The user credited and the invoice amount: whose caches went stale.
    credited: Option<(i64, Money)>,
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

    /// One transaction: lock the invoice, decide, record the event with its outcome (a
    /// replay stops here, having changed nothing), then move the status and credit.
    async fn apply(&self, entry: &PaymentEntry, invoice_uuid: Uuid) -> Result<Applied, Failure> {
        let event = &entry.event;
        // The body as Heleket sent it when we have it; what payment/info said otherwise.
        let payload = match entry
            .raw
            .as_deref()
            .map(serde_json::from_str::<serde_json::Value>)
        {
            Some(Ok(raw)) => raw,
            _ => serde_json::to_value(event).map_err(|e| Failure::Permanent(e.to_string()))?,
        };
        let mut client = self.pool.get().await.map_err(transient)?;
        let tx = client.transaction().await.map_err(transient)?;
        let payment = repo::payments::lock_by_order(&tx, &event.order_id)
            .await
            .map_err(transient)?;
        let verdict = self.judge(payment.as_ref(), invoice_uuid, event);
        let recorded = repo::payments::NewEvent {
            invoice_uuid,
            order_id: &event.order_id,
            status: &event.status,
            source: entry.source.as_deref().unwrap_or("webhook"),
            outcome: verdict.outcome,
            reason: verdict.reason.as_deref(),
            payload: &payload,
        };
        if !repo::payments::record_event(&tx, &recorded)
            .await
            .map_err(transient)?
        {
            tx.rollback().await.map_err(transient)?;
            return Ok(Applied {
                outcome: "replay",
                credited: None,
            });
        }
        match (verdict.outcome, &verdict.reason) {
            ("ignored_final", Some(reason)) => {
                tracing::info!(%reason, "Payment event changes nothing.")
            }
            (outcome, Some(reason)) => {
                tracing::warn!(%reason, outcome, "Payment event parked for inspection.")
            }
            _ => {}
        }
        let mut applied = Applied {
            outcome: verdict.outcome,
            credited: None,
        };
        if let (Some(payment), Some(new_status)) = (&payment, &verdict.new_status) {
            match verdict.credit {
                None => {
                    repo::payments::set_status(&tx, &payment.order_id, invoice_uuid, new_status)
                        .await
                        .map_err(transient)?
                }
                Some(amount) => {
                    let balance = repo::payments::credit_topup(
                        &tx,
                        payment,
                        invoice_uuid,
                        new_status,
                        amount,
                    )
                    .await
                    .map_err(transient)?;
                    let lang = Lang::from_code(payment.language.as_deref());
                    let notice = OutboundMessage {
                        dedupe_key: format!("paid:{invoice_uuid}"),
                        chat_id: payment.user_id,
                        action: OutboundAction::SendMessage {
                            text: texts::payment_received(
                                lang,
                                Money::new(amount),
                                Money::new(balance),
                            ),
                            keyboard: None,
                        },
                    };
                    repo::outbox::enqueue(&tx, &notice)
                        .await
                        .map_err(transient)?;
                    applied.credited = Some((payment.user_id, Money::new(payment.amount)));
                    self.metrics.payment_credited(amount);
                }
            }
        }
        tx.commit().await.map_err(transient)?;
        Ok(applied)
    }

    /// After commit: the balance cache and the cached invoice link are stale now.
    async fn after_credit(&self, user_id: i64, invoice_amount: Money) {
        let mut conn = self.conn.clone();
        let result: redis::RedisResult<()> = redis::cmd("DEL")
            .arg(balance_cache_key(&self.keys, user_id))
            .arg(invoice_cache_key(&self.keys, user_id, &invoice_amount))
            .query_async(&mut conn)
            .await;
        if let Err(e) = result {
            // The balance cache expires on its own; the invoice link is final and harmless.
            tracing::warn!(error.message = %e, "Failed to drop caches after a credit.");
        }
        self.outbox.wake();
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

    async fn handle(&self, entry: PaymentEntry, ctx: EntryContext) -> Result<(), Failure> {
        let span = tracing::info_span!(
            "payment_event",
            payment_uuid = %entry.event.uuid,
            order_id = %entry.event.order_id,
            status = %entry.event.status,
            entry_id = %ctx.entry_id,
        );
        async {
            let invoice_uuid = Uuid::parse_str(&entry.event.uuid)
                .map_err(|_| Failure::Permanent("invoice uuid is not a UUID".into()))?;
            let applied = self.apply(&entry, invoice_uuid).await?;
            self.metrics
                .payment_event(&entry.event.status, applied.outcome);
            tracing::info!(outcome = applied.outcome, "Payment event handled.");
            if let Some((user_id, amount)) = applied.credited {
                if self.crash_after_credit_commit {
                    tracing::error!("Failpoint crash_after_credit_commit: aborting.");
                    std::process::abort();
                }
                self.after_credit(user_id, amount).await;
            }
            Ok(())
        }
        .instrument(span)
        .await
    }
}
