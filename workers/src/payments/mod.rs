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

/// Records why an event was not applied (kept for a person to look at), and commits.
async fn park(
    tx: tokio_postgres::Transaction<'_>,
    invoice_uuid: Uuid,
    status: &str,
    outcome: &'static str,
    reason: String,
) -> Result<Applied, Failure> {
    tracing::warn!(%reason, outcome, "Payment event parked for inspection.");
    repo::payments::set_event_outcome(&tx, invoice_uuid, status, outcome, Some(&reason))
        .await
        .map_err(transient)?;
    tx.commit().await.map_err(transient)?;
    Ok(Applied {
        outcome,
        credited: None,
    })
}

fn transient(e: impl std::fmt::Display) -> Failure {
    Failure::Transient(e.to_string())
}

impl PaymentsHandler {
    async fn apply(&self, entry: &PaymentEntry, invoice_uuid: Uuid) -> Result<Applied, Failure> {
        let event = &entry.event;
        let source = entry.source.as_deref().unwrap_or("webhook");
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
        let status = event.status.as_str();
        let fresh = repo::payments::record_event(
            &tx,
            invoice_uuid,
            &event.order_id,
            status,
            source,
            &payload,
        )
        .await
        .map_err(transient)?;
        if !fresh {
            tx.commit().await.map_err(transient)?;
            return Ok(Applied {
                outcome: "replay",
                credited: None,
            });
        }
        let Some(payment) = repo::payments::lock_by_order(&tx, &event.order_id)
            .await
            .map_err(transient)?
        else {
            let reason = format!("no invoice with order_id {:?}", event.order_id);
            return park(tx, invoice_uuid, status, "unknown_invoice", reason).await;
        };
        if payment
            .invoice_uuid
            .is_some_and(|known| known != invoice_uuid)
        {
            let reason = "invoice uuid differs from the one Heleket gave us".to_owned();
            return park(tx, invoice_uuid, status, "mismatch", reason).await;
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
        let mut applied = Applied {
            outcome: "applied",
            credited: None,
        };
        match decide(&stored, status, &reported, self.policy) {
            Step::Ignore { reason } => {
                tracing::info!(%reason, "Payment event changes nothing.");
                repo::payments::set_event_outcome(
                    &tx,
                    invoice_uuid,
                    status,
                    "ignored_final",
                    Some(&reason),
                )
                .await
                .map_err(transient)?;
                applied.outcome = "ignored";
            }
            Step::Park { reason, new_status } => {
                if let Some(s) = new_status {
                    repo::payments::set_status(&tx, &payment.order_id, invoice_uuid, &s)
                        .await
                        .map_err(transient)?;
                }
                return park(tx, invoice_uuid, status, "mismatch", reason).await;
            }
            Step::Move { credit } => {
                repo::payments::set_status(&tx, &payment.order_id, invoice_uuid, status)
                    .await
                    .map_err(transient)?;
                if let Some(amount) = credit {
                    let balance = repo::payments::credit_topup(&tx, &payment, invoice_uuid, amount)
                        .await
                        .map_err(transient)?;
                    repo::payments::set_event_outcome(&tx, invoice_uuid, status, "credited", None)
                        .await
                        .map_err(transient)?;
                    let lang = Lang::from_code(
                        repo::users::language(&tx, payment.user_id)
                            .await
                            .map_err(transient)?
                            .as_deref(),
                    );
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
                    applied.outcome = "credited";
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
