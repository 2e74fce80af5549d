//! The `reconciler` role: asks Heleket about invoices still open after a while and feeds any
//! change into the payments stream, the same path a webhook takes, so a lost webhook still
//! credits the user. One pass at a time across every copy (a Redis lease).

use super::PaymentEntry;
use crate::db::PgPool;
use crate::metrics::Metrics;
use crate::repo;
use crate::settings::PaymentSettings;
use redis::aio::ConnectionManager;
use shared::heleket::client::{HeleketClient, HeleketError};
use shared::heleket::types::{Invoice, InvoiceRef};
use shared::heleket::webhook::WebhookEvent;
use shared::streams::{Keys, PAYLOAD_FIELD, SINGLE_PARTITION};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const PER_PASS: i64 = 200;

/// Deletes the lease only if it is still ours.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

pub struct Reconciler {
    pub pool: PgPool,
    pub conn: ConnectionManager,
    pub keys: Keys,
    pub client: HeleketClient,
    pub settings: PaymentSettings,
    pub metrics: Metrics,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassReport {
    pub checked: usize,
    /// Status changes found and fed into the payments stream.
    pub changes: usize,
    /// Invoices Heleket never created, closed as `create_failed`.
    pub never_created: usize,
}

impl Reconciler {
    fn lease_key(&self) -> String {
        self.keys.key(format_args!("reconciler:lease"))
    }

    pub async fn run(self, stop: CancellationToken) {
        loop {
            match self.pass_if_leader().await {
                Ok(Some(report)) if report.checked > 0 => {
                    tracing::info!(?report, "Reconciliation pass done.")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error.message = %e, "Reconciliation pass failed."),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.settings.reconcile_interval) => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    /// Runs one pass if no other copy is running one; `None` when another holds the lease.
    pub async fn pass_if_leader(&self) -> anyhow::Result<Option<PassReport>> {
        let token = uuid::Uuid::new_v4().to_string();
        // Outlives any sane pass; a copy that dies mid-pass frees it by expiry.
        let lease = self
            .settings
            .reconcile_interval
            .max(Duration::from_secs(60))
            * 5;
        let mut conn = self.conn.clone();
        let acquired: Option<String> = redis::cmd("SET")
            .arg(self.lease_key())
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(lease.as_millis() as u64)
            .query_async(&mut conn)
            .await?;
        if acquired.is_none() {
            return Ok(None);
        }
        let report = self.pass().await;
        let _: i64 = redis::Script::new(RELEASE)
            .key(self.lease_key())
            .arg(&token)
            .invoke_async(&mut conn)
            .await?;
        report.map(Some)
    }

    async fn pass(&self) -> anyhow::Result<PassReport> {
        let db = self.pool.get().await?;
        let open =
            repo::payments::open_older_than(&*db, self.settings.reconcile_after, PER_PASS).await?;
        let mut report = PassReport::default();
        for payment in open {
            report.checked += 1;
            let info = self
                .client
                .payment_info(InvoiceRef::OrderId(payment.order_id.clone()))
                .await;
            match info {
                Ok(invoice) => {
                    let status = invoice.status.clone().or(invoice.payment_status.clone());
                    if status.as_deref().is_some_and(|s| s != payment.status) {
                        self.feed(&invoice).await?;
                        report.changes += 1;
                        self.metrics.reconciler_finding("status_changed");
                    }
                }
                Err(HeleketError::Rejected { message }) if message.contains("not found") => {
                    if payment.status == "pending" {
                        repo::payments::mark_create_failed(&*db, &payment.order_id).await?;
                        report.never_created += 1;
                        self.metrics.reconciler_finding("never_created");
                    }
                }
                Err(e) if e.is_unavailable() => {
                    // Heleket is down: the rest waits for the next pass.
                    return Err(e.into());
                }
                Err(e) => {
                    tracing::warn!(order_id = %payment.order_id, error.message = %e, "payment/info refused.");
                }
            }
        }
        Ok(report)
    }

    async fn feed(&self, invoice: &Invoice) -> anyhow::Result<()> {
        feed_invoice(&self.conn, &self.keys, invoice).await
    }
}

/// What `payment/info` reported, as an event on the payments stream marked as the
/// reconciler's: it takes the same path as a webhook. Also used by the admin API.
pub async fn feed_invoice(
    conn: &ConnectionManager,
    keys: &Keys,
    invoice: &Invoice,
) -> anyhow::Result<()> {
    let entry = PaymentEntry {
        event: WebhookEvent {
            kind: "payment".to_owned(),
            uuid: invoice.uuid.clone().unwrap_or_default(),
            order_id: invoice.order_id.clone().unwrap_or_default(),
            status: invoice
                .status
                .clone()
                .or(invoice.payment_status.clone())
                .unwrap_or_default(),
            amount: invoice.amount.clone(),
            currency: invoice.currency.clone(),
            payment_amount: invoice.payment_amount.clone(),
            payment_amount_usd: invoice.payment_amount_usd.clone(),
            merchant_amount: invoice.merchant_amount.clone(),
            payer_currency: invoice.payer_currency.clone(),
            is_final: invoice.is_final,
            txid: invoice.txid.clone(),
            additional_data: invoice.additional_data.clone(),
        },
        source: Some("reconciler".to_owned()),
        raw: serde_json::to_string(invoice).ok(),
    };
    let mut conn = conn.clone();
    let _: String = redis::cmd("XADD")
        .arg(keys.payments_stream(SINGLE_PARTITION))
        .arg("*")
        .arg(PAYLOAD_FIELD)
        .arg(serde_json::to_string(&entry)?)
        .query_async(&mut conn)
        .await?;
    Ok(())
}
