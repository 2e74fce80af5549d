//! The `sender` role's durable record of blocked chats: the user's row in PostgreSQL.

use crate::db::PgPool;
use crate::repo;

pub struct PgBlockedRecorder {
    pub pool: PgPool,
}

impl sender::BlockedRecorder for PgBlockedRecorder {
    async fn record_blocked(&self, chat_id: i64) -> Result<(), String> {
        let db = self.pool.get().await.map_err(|e| e.to_string())?;
        repo::users::set_blocked(&*db, chat_id, true)
            .await
            .map_err(|e| e.to_string())
    }
}
