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
    /// The user's Telegram language, for the notification.
    pub language: Option<String>,
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
        language: row.try_get("language_code").ok().flatten(),
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

/// A payment event and what became of it.
pub struct NewEvent<'a> {
    pub invoice_uuid: Uuid,
    pub order_id: &'a str,
    pub status: &'a str,
    pub source: &'a str,
    pub outcome: &'a str,
    pub reason: Option<&'a str>,
    pub payload: &'a serde_json::Value,
}

/// Records an event with its outcome; `false` when this (invoice, status) was seen before:
/// a replay, which must change nothing.
pub async fn record_event(db: &impl GenericClient, e: &NewEvent<'_>) -> Result<bool, RepoError> {
    let inserted = db
        .execute(
            "INSERT INTO payment_events
                 (invoice_uuid, order_id, status, source, outcome, reason, payload)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (invoice_uuid, status) DO NOTHING",
            &[
                &e.invoice_uuid,
                &e.order_id,
                &e.status,
                &e.source,
                &e.outcome,
                &e.reason,
                e.payload,
            ],
        )
        .await?;
    Ok(inserted == 1)
}

/// The invoice with its user's language, locked until the transaction ends, so events for
/// one invoice apply one at a time.
pub async fn lock_by_order(
    db: &impl GenericClient,
    order_id: &str,
) -> Result<Option<Payment>, RepoError> {
    let row = db
        .query_opt(
            "SELECT p.order_id, p.user_id, p.invoice_uuid, p.amount, p.currency, p.status, p.url,
                    u.language_code
             FROM payments p LEFT JOIN users u ON u.id = p.user_id
             WHERE p.order_id = $1 FOR UPDATE OF p",
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

/// Credits a top-up in one statement: the invoice's final status and credited amount, the
/// balance, and one ledger line (unique per invoice, the last guard against a second
/// credit). Returns the new balance.
pub async fn credit_topup(
    db: &impl GenericClient,
    payment: &Payment,
    invoice_uuid: Uuid,
    status: &str,
    amount: Decimal,
) -> Result<Decimal, RepoError> {
    let reference = invoice_uuid.to_string();
    let row = db
        .query_one(
            "WITH invoice AS (
                 UPDATE payments SET status = $2, invoice_uuid = COALESCE(invoice_uuid, $3),
                     credited = $4, updated_at = now()
                 WHERE order_id = $1
                 RETURNING user_id, currency
             ), balance AS (
                 INSERT INTO balances (user_id, balance) SELECT user_id, $4 FROM invoice
                 ON CONFLICT (user_id) DO UPDATE
                     SET balance = balances.balance + EXCLUDED.balance, updated_at = now()
                 RETURNING user_id, balance
             ), line AS (
                 INSERT INTO ledger
                     (user_id, kind, amount, balance_after, currency, reference, description)
                 SELECT balance.user_id, 'topup', $4, balance.balance, invoice.currency, $5,
                        'Top-up'
                 FROM balance, invoice
                 RETURNING balance_after
             )
             SELECT balance_after FROM line",
            &[
                &payment.order_id,
                &status,
                &invoice_uuid,
                &amount,
                &reference,
            ],
        )
        .await?;
    Ok(row.get(0))
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
