//! Figures for the operators' `/stats`.

use super::RepoError;
use crate::db::Db;
use rust_decimal::Decimal;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub users: i64,
    pub blocked_users: i64,
    /// Invoices created today (UTC), by status.
    pub payments_today: Vec<(String, i64)>,
    pub credited_today: Decimal,
    pub purchases_today: i64,
    pub spent_today: Decimal,
}

pub async fn today(db: &impl Db) -> Result<Stats, RepoError> {
    let row = db
        .query_one(
            "SELECT (SELECT count(*) FROM users),
                    (SELECT count(*) FROM users WHERE blocked_at IS NOT NULL),
                    (SELECT COALESCE(sum(amount), 0) FROM ledger
                     WHERE kind = 'topup' AND created_at >= date_trunc('day', now())),
                    (SELECT count(*) FROM ledger
                     WHERE kind = 'purchase' AND created_at >= date_trunc('day', now())),
                    (SELECT COALESCE(-sum(amount), 0) FROM ledger
                     WHERE kind = 'purchase' AND created_at >= date_trunc('day', now()))",
            &[],
        )
        .await?;
    let by_status = db
        .query(
            "SELECT status, count(*) FROM payments
             WHERE created_at >= date_trunc('day', now()) GROUP BY status ORDER BY status",
            &[],
        )
        .await?;
    Ok(Stats {
        users: row.get(0),
        blocked_users: row.get(1),
        payments_today: by_status.iter().map(|r| (r.get(0), r.get(1))).collect(),
        credited_today: row.get(2),
        purchases_today: row.get(3),
        spent_today: row.get(4),
    })
}
