//! Invoices, their events, and crediting a top-up.

use super::RepoError;
use rust_decimal::Decimal;
use tokio_postgres::GenericClient;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub order_id: String,
    pub user_id: i64,
    pub invoice_uuid: Option<Uuid>,
    pub amount: Decimal,
    pub currency: String,
    pub status: String,
    pub url: Option<String>,
}

fn payment(row: &tokio_postgres::Row) -> Payment {
    Payment {
        order_id: row.get("order_id"),
        user_id: row.get("user_id"),
        invoice_uuid: row.get("invoice_uuid"),
        amount: row.get("amount"),
        currency: row.get("currency"),
        status: row.get("status"),
        url: row.get("url"),
    }
}

const COLUMNS: &str = "order_id, user_id, invoice_uuid, amount, currency, status, url";

/// Writes the invoice row before Heleket is asked, so no invoice exists that we do not know
/// about. Idempotent: a redelivered request finds the row it wrote before.
#[tracing::instrument(skip_all, fields(order_id))]
pub async fn insert_pending(
    db: &impl GenericClient,
    order_id: &str,
    user_id: i64,
    amount: Decimal,
    currency: &str,
) -> Result<Payment, RepoError> {
    db.execute(
        "INSERT INTO users (id) VALUES ($1) ON CONFLICT (id) DO NOTHING",
        &[&user_id],
    )
    .await?;
    db.execute(
        "INSERT INTO payments (order_id, user_id, amount, currency) VALUES ($1, $2, $3, $4)
         ON CONFLICT (order_id) DO NOTHING",
        &[&order_id, &user_id, &amount, &currency],
    )
    .await?;
    let row = db
        .query_one(
            &format!("SELECT {COLUMNS} FROM payments WHERE order_id = $1"),
            &[&order_id],
        )
        .await?;
    Ok(payment(&row))
}

/// Records what Heleket answered. A webhook may already have moved the status on, so only
/// `pending` becomes `check`.
pub async fn attach_invoice(
    db: &impl GenericClient,
    order_id: &str,
    invoice_uuid: Uuid,
    url: &str,
    expires_at: Option<std::time::SystemTime>,
) -> Result<(), RepoError> {
    db.execute(
        "UPDATE payments SET invoice_uuid = $2, url = $3, expires_at = $4,
             status = CASE WHEN status = 'pending' THEN 'check' ELSE status END,
             updated_at = now()
         WHERE order_id = $1",
        &[&order_id, &invoice_uuid, &url, &expires_at],
    )
    .await?;
    Ok(())
}

/// Heleket refused the invoice, or never heard of it: final, nothing to pay.
pub async fn mark_create_failed(db: &impl GenericClient, order_id: &str) -> Result<(), RepoError> {
    db.execute(
        "UPDATE payments SET status = 'create_failed', updated_at = now()
         WHERE order_id = $1 AND status = 'pending'",
        &[&order_id],
    )
    .await?;
    Ok(())
}

/// Records an event; `false` when this (invoice, status) was seen before: a replay.
pub async fn record_event(
    db: &impl GenericClient,
    invoice_uuid: Uuid,
    order_id: &str,
    status: &str,
    source: &str,
    payload: &serde_json::Value,
) -> Result<bool, RepoError> {
    let inserted = db
        .execute(
            "INSERT INTO payment_events (invoice_uuid, order_id, status, source, outcome, payload)
             VALUES ($1, $2, $3, $4, 'applied', $5)
             ON CONFLICT (invoice_uuid, status) DO NOTHING",
            &[&invoice_uuid, &order_id, &status, &source, &payload],
        )
        .await?;
    Ok(inserted == 1)
}

pub async fn set_event_outcome(
    db: &impl GenericClient,
    invoice_uuid: Uuid,
    status: &str,
    outcome: &str,
    reason: Option<&str>,
) -> Result<(), RepoError> {
    db.execute(
        "UPDATE payment_events SET outcome = $3, reason = $4
         WHERE invoice_uuid = $1 AND status = $2",
        &[&invoice_uuid, &status, &outcome, &reason],
    )
    .await?;
    Ok(())
}

/// The invoice, locked until the transaction ends, so events for one invoice apply one at
/// a time.
pub async fn lock_by_order(
    db: &impl GenericClient,
    order_id: &str,
) -> Result<Option<Payment>, RepoError> {
    let row = db
        .query_opt(
            &format!("SELECT {COLUMNS} FROM payments WHERE order_id = $1 FOR UPDATE"),
            &[&order_id],
        )
        .await?;
    Ok(row.as_ref().map(payment))
}

pub async fn set_status(
    db: &impl GenericClient,
    order_id: &str,
    invoice_uuid: Uuid,
    status: &str,
) -> Result<(), RepoError> {
    db.execute(
        "UPDATE payments SET status = $2, invoice_uuid = COALESCE(invoice_uuid, $3),
             updated_at = now()
         WHERE order_id = $1",
        &[&order_id, &status, &invoice_uuid],
    )
    .await?;
    Ok(())
}

/// Credits a top-up: one ledger line (unique per invoice) and the balance, in the caller's
/// transaction. Returns the new balance.
pub async fn credit_topup(
    db: &impl GenericClient,
    payment: &Payment,
    invoice_uuid: Uuid,
    amount: Decimal,
) -> Result<Decimal, RepoError> {
    let balance: Decimal = db
        .query_one(
            "INSERT INTO balances (user_id, balance) VALUES ($1, $2)
             ON CONFLICT (user_id) DO UPDATE
                 SET balance = balances.balance + EXCLUDED.balance, updated_at = now()
             RETURNING balance",
            &[&payment.user_id, &amount],
        )
        .await?
        .get(0);
    let reference = invoice_uuid.to_string();
    db.execute(
        "INSERT INTO ledger (user_id, kind, amount, balance_after, currency, reference, description)
         VALUES ($1, 'topup', $2, $3, $4, $5, 'Top-up')",
        &[&payment.user_id, &amount, &balance, &payment.currency, &reference],
    )
    .await?;
    db.execute(
        "UPDATE payments SET credited = $2, updated_at = now() WHERE order_id = $1",
        &[&payment.order_id, &amount],
    )
    .await?;
    Ok(balance)
}

/// Invoices still open after `min_age`, oldest first: what the reconciler asks Heleket about.
pub async fn open_older_than(
    db: &impl GenericClient,
    min_age: std::time::Duration,
    limit: i64,
) -> Result<Vec<Payment>, RepoError> {
    let seconds = min_age.as_secs_f64();
    let rows = db
        .query(
            &format!(
                "SELECT {COLUMNS} FROM payments
                 WHERE status IN ('pending', 'check', 'process', 'confirm_check', 'wrong_amount_waiting')
                   AND created_at < now() - make_interval(secs => $1)
                 ORDER BY created_at LIMIT $2"
            ),
            &[&seconds, &limit],
        )
        .await?;
    Ok(rows.iter().map(payment).collect())
}
