//! The transactional outbox: messages written in the same transaction as the change they
//! announce, published to the outbound stream after commit.

use super::RepoError;
use crate::db::Db;
use shared::outbound::OutboundMessage;

/// Queues messages; one whose dedupe key was queued before is ignored.
pub async fn enqueue(db: &impl Db, messages: &[OutboundMessage]) -> Result<(), RepoError> {
    let keys: Vec<&str> = messages.iter().map(|m| m.dedupe_key.as_str()).collect();
    let chats: Vec<i64> = messages.iter().map(|m| m.chat_id).collect();
    let json = messages
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| RepoError::Pool(e.to_string()))?;
    db.execute(
        "INSERT INTO outbox (dedupe_key, chat_id, message)
         SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::jsonb[])
         ON CONFLICT (dedupe_key) DO NOTHING",
        &[&keys, &chats, &json],
    )
    .await?;
    Ok(())
}

/// Unpublished messages, locked so concurrent publishers take different ones.
pub async fn lock_unpublished(
    db: &impl Db,
    limit: i64,
) -> Result<Vec<(i64, OutboundMessage)>, RepoError> {
    let rows = db
        .query(
            "SELECT id, message FROM outbox WHERE published_at IS NULL
             ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
            &[&limit],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let json: serde_json::Value = r.get(1);
            serde_json::from_value(json).ok().map(|m| (r.get(0), m))
        })
        .collect())
}

pub async fn mark_published(db: &impl Db, ids: &[i64]) -> Result<(), RepoError> {
    db.execute(
        "UPDATE outbox SET published_at = now() WHERE id = ANY($1)",
        &[&ids],
    )
    .await?;
    Ok(())
}
