//! Publishes committed outbox rows to the outbound stream. A crash between the `XADD` and
//! marking the row published only publishes it again, and the sender's dedupe key makes
//! that harmless: every committed notification is sent, and sent once.

use crate::db::PgPool;
use crate::repo;
use redis::aio::ConnectionManager;
use shared::streams::{partition_for_chat, Keys, PAYLOAD_FIELD};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const BATCH: i64 = 200;
/// Rows left by a crashed process are found by this sweep.
const SWEEP: Duration = Duration::from_secs(1);

pub struct OutboxPublisher {
    pool: PgPool,
    conn: ConnectionManager,
    keys: Keys,
    wake: Notify,
}

impl OutboxPublisher {
    pub fn new(pool: PgPool, conn: ConnectionManager, keys: Keys) -> Self {
        Self {
            pool,
            conn,
            keys,
            wake: Notify::new(),
        }
    }

    /// Asks the publisher loop to run now (after a commit that queued messages).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Publishes everything pending; returns how many rows it published.
    pub async fn publish_pending(&self) -> anyhow::Result<usize> {
        let mut total = 0;
        loop {
            let mut client = self.pool.get().await?;
            let tx = client.transaction().await?;
            let rows = repo::outbox::lock_unpublished(&tx, BATCH).await?;
            if rows.is_empty() {
                tx.commit().await?;
                return Ok(total);
            }
            let mut pipe = redis::pipe();
            for (_, message) in &rows {
                let stream = self
                    .keys
                    .outbound_stream(partition_for_chat(message.chat_id));
                pipe.cmd("XADD")
                    .arg(stream)
                    .arg("*")
                    .arg(PAYLOAD_FIELD)
                    .arg(serde_json::to_string(message)?)
                    .ignore();
            }
            let mut conn = self.conn.clone();
            pipe.query_async::<()>(&mut conn).await?;
            let ids: Vec<i64> = rows.iter().map(|(id, _)| *id).collect();
            repo::outbox::mark_published(&tx, &ids).await?;
            tx.commit().await?;
            total += rows.len();
        }
    }

    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        loop {
            if let Err(e) = self.publish_pending().await {
                tracing::warn!(error.message = %e, "Publishing the outbox failed; will retry.");
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(SWEEP) => {}
                _ = stop.cancelled() => return,
            }
        }
    }
}
