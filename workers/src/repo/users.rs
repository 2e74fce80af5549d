use super::RepoError;
use crate::db::Db;
use rust_decimal::Decimal;
use shared::event::TelegramUser;

/// Registers the user, or refreshes their profile; starting the bot also means they can be
/// written to again.
#[tracing::instrument(skip_all, fields(user_id = user.id))]
pub async fn upsert_started(db: &impl Db, user: &TelegramUser) -> Result<(), RepoError> {
    db.execute(
        "INSERT INTO users (id, username, first_name, last_name, language_code)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (id) DO UPDATE SET
             username = EXCLUDED.username,
             first_name = EXCLUDED.first_name,
             last_name = EXCLUDED.last_name,
             language_code = EXCLUDED.language_code,
             blocked_at = NULL,
             updated_at = now()",
        &[
            &user.id,
            &user.username,
            &user.first_name,
            &user.last_name,
            &user.language_code,
        ],
    )
    .await?;
    Ok(())
}

/// Marks whether the user blocked the bot. Creates the row when the first thing we hear of a
/// user is that they blocked us.
#[tracing::instrument(skip_all, fields(user_id))]
pub async fn set_blocked(db: &impl Db, user_id: i64, blocked: bool) -> Result<(), RepoError> {
    db.execute(
        "INSERT INTO users (id, blocked_at) VALUES ($1, CASE WHEN $2 THEN now() END)
         ON CONFLICT (id) DO UPDATE SET
             blocked_at = CASE WHEN $2 THEN COALESCE(users.blocked_at, now()) END,
             updated_at = now()",
        &[&user_id, &blocked],
    )
    .await?;
    Ok(())
}

/// The balance; zero for a user who has none yet.
#[tracing::instrument(skip_all, fields(user_id))]
pub async fn balance(db: &impl Db, user_id: i64) -> Result<Decimal, RepoError> {
    let row = db
        .query_opt(
            "SELECT balance FROM balances WHERE user_id = $1",
            &[&user_id],
        )
        .await?;
    Ok(row.map(|r| r.get(0)).unwrap_or(Decimal::ZERO))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerLine {
    pub kind: String,
    pub amount: Decimal,
    pub description: String,
    /// UTC, `YYYY-MM-DD HH:MM`.
    pub when: String,
}

/// The latest balance changes, newest first.
#[tracing::instrument(skip_all, fields(user_id))]
pub async fn history(db: &impl Db, user_id: i64, limit: i64) -> Result<Vec<LedgerLine>, RepoError> {
    let rows = db
        .query(
            "SELECT kind, amount, description,
                    to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')
             FROM ledger
             WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
            &[&user_id, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| LedgerLine {
            kind: r.get(0),
            amount: r.get(1),
            description: r.get(2),
            when: r.get(3),
        })
        .collect())
}
