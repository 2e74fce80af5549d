//! Invoices, their events, and crediting a top-up.

use super::RepoError;
use crate::db::Db;
use rust_decimal::Decimal;
use std::collections::{HashMap, HashSet};
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
    db: &impl Db,
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
    db: &impl Db,
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
pub async fn mark_create_failed(db: &impl Db, order_id: &str) -> Result<(), RepoError> {
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
    pub reason: Option<String>,
    pub payload: serde_json::Value,
}

/// Records events with their outcomes, and returns the ones that were new: an event seen
/// before (same invoice and status) is a replay and must change nothing.
pub async fn record_events(
    db: &impl Db,
    events: &[NewEvent<'_>],
) -> Result<HashSet<(Uuid, String)>, RepoError> {
    let uuids: Vec<Uuid> = events.iter().map(|e| e.invoice_uuid).collect();
    let orders: Vec<&str> = events.iter().map(|e| e.order_id).collect();
    let statuses: Vec<&str> = events.iter().map(|e| e.status).collect();
    let sources: Vec<&str> = events.iter().map(|e| e.source).collect();
    let outcomes: Vec<&str> = events.iter().map(|e| e.outcome).collect();
    let reasons: Vec<Option<&str>> = events.iter().map(|e| e.reason.as_deref()).collect();
    let payloads: Vec<&serde_json::Value> = events.iter().map(|e| &e.payload).collect();
    let rows = db
        .query(
            "INSERT INTO payment_events
                 (invoice_uuid, order_id, status, source, outcome, reason, payload)
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                                  $6::text[], $7::jsonb[])
             ON CONFLICT (invoice_uuid, status) DO NOTHING
             RETURNING invoice_uuid, status",
            &[
                &uuids, &orders, &statuses, &sources, &outcomes, &reasons, &payloads,
            ],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The invoices of a batch with their users' languages, locked until the transaction ends
/// (in order_id order, so two batches never deadlock): events for one invoice apply one at
/// a time.
pub async fn lock_many(db: &impl Db, order_ids: &[&str]) -> Result<Vec<Payment>, RepoError> {
    let rows = db
        .query(
            "SELECT p.order_id, p.user_id, p.invoice_uuid, p.amount, p.currency, p.status, p.url,
                    u.language_code
             FROM payments p LEFT JOIN users u ON u.id = p.user_id
             WHERE p.order_id = ANY($1) ORDER BY p.order_id FOR UPDATE OF p",
            &[&order_ids],
        )
        .await?;
    Ok(rows.iter().map(payment).collect())
}

/// An invoice's new status, and what it credited if it did.
pub struct StatusChange {
    pub order_id: String,
    pub status: String,
    pub invoice_uuid: Uuid,
    pub credited: Option<Decimal>,
}

pub async fn set_statuses(db: &impl Db, changes: &[StatusChange]) -> Result<(), RepoError> {
    let orders: Vec<&str> = changes.iter().map(|c| c.order_id.as_str()).collect();
    let statuses: Vec<&str> = changes.iter().map(|c| c.status.as_str()).collect();
    let uuids: Vec<Uuid> = changes.iter().map(|c| c.invoice_uuid).collect();
    let credited: Vec<Option<Decimal>> = changes.iter().map(|c| c.credited).collect();
    db.execute(
        "UPDATE payments p SET status = u.status,
             invoice_uuid = COALESCE(p.invoice_uuid, u.invoice_uuid),
             credited = COALESCE(u.credited, p.credited), updated_at = now()
         FROM UNNEST($1::text[], $2::text[], $3::uuid[], $4::numeric[])
             AS u(order_id, status, invoice_uuid, credited)
         WHERE p.order_id = u.order_id",
        &[&orders, &statuses, &uuids, &credited],
    )
    .await?;
    Ok(())
}

/// Adds each user's credits to their balance (one row per user); returns the new balances.
pub async fn add_to_balances(
    db: &impl Db,
    credits: &[(i64, Decimal)],
) -> Result<HashMap<i64, Decimal>, RepoError> {
    let users: Vec<i64> = credits.iter().map(|c| c.0).collect();
    let amounts: Vec<Decimal> = credits.iter().map(|c| c.1).collect();
    let rows = db
        .query(
            "INSERT INTO balances (user_id, balance)
             SELECT * FROM UNNEST($1::bigint[], $2::numeric[])
             ON CONFLICT (user_id) DO UPDATE
                 SET balance = balances.balance + EXCLUDED.balance, updated_at = now()
             RETURNING user_id, balance",
            &[&users, &amounts],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// One ledger line per credited invoice; unique per invoice, the last guard against a
/// second credit.
pub struct TopupLine {
    pub user_id: i64,
    pub amount: Decimal,
    pub balance_after: Decimal,
    pub currency: String,
    pub invoice_uuid: Uuid,
}

pub async fn insert_topup_lines(db: &impl Db, lines: &[TopupLine]) -> Result<(), RepoError> {
    let users: Vec<i64> = lines.iter().map(|l| l.user_id).collect();
    let amounts: Vec<Decimal> = lines.iter().map(|l| l.amount).collect();
    let after: Vec<Decimal> = lines.iter().map(|l| l.balance_after).collect();
    let currencies: Vec<&str> = lines.iter().map(|l| l.currency.as_str()).collect();
    let references: Vec<String> = lines.iter().map(|l| l.invoice_uuid.to_string()).collect();
    db.execute(
        "INSERT INTO ledger (user_id, kind, amount, balance_after, currency, reference, description)
         SELECT u, 'topup', a, b, c, r, 'Top-up'
         FROM UNNEST($1::bigint[], $2::numeric[], $3::numeric[], $4::text[], $5::text[])
             AS t(u, a, b, c, r)",
        &[&users, &amounts, &after, &currencies, &references],
    )
    .await?;
    Ok(())
}

/// Invoices still open after `min_age`, oldest first: what the reconciler asks Heleket about.
pub async fn open_older_than(
    db: &impl Db,
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

/// An invoice and every event received for it, oldest first, for the admin API.
pub async fn with_events(
    db: &impl Db,
    order_id: &str,
) -> Result<Option<(Payment, Vec<serde_json::Value>)>, RepoError> {
    let Some(row) = db
        .query_opt(
            &format!("SELECT {COLUMNS} FROM payments WHERE order_id = $1"),
            &[&order_id],
        )
        .await?
    else {
        return Ok(None);
    };
    let events = db
        .query(
            "SELECT json_build_object('status', status, 'source', source, 'outcome', outcome,
                    'reason', reason, 'received_at', received_at, 'payload', payload)
             FROM payment_events WHERE order_id = $1 ORDER BY id",
            &[&order_id],
        )
        .await?;
    Ok(Some((
        payment(&row),
        events.iter().map(|r| r.get(0)).collect(),
    )))
}
