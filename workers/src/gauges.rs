//! Gauges sampled periodically rather than counted: per stream and consumer group, the
//! pending entries and the lag (Redis 7's `XINFO GROUPS`), the dead-letter stream's length,
//! and the Heleket circuit breaker's state.

use crate::metrics::Metrics;
use redis::aio::ConnectionManager;
use redis::streams::StreamInfoGroupsReply;
use shared::heleket::client::HeleketClient;
use shared::streams::{Keys, PAYMENTS_GROUP, SENDER_GROUP, SINGLE_PARTITION, UPDATES_GROUP};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the gauges are refreshed.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(5);

pub struct GaugeSampler {
    pub conn: ConnectionManager,
    pub keys: Keys,
    pub metrics: Metrics,
    pub heleket: Option<HeleketClient>,
    pub interval: Duration,
}

impl GaugeSampler {
    /// Samples at once, then every `interval`, until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = self.sample() => {}
                _ = stop.cancelled() => return,
            }
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    /// One refresh. A stream or group that does not exist yet (no worker of that role has
    /// started) leaves its gauges unset; other Redis errors are logged and retried next time.
    pub async fn sample(&self) {
        if let Some(client) = &self.heleket {
            self.metrics.set_heleket_circuit(client.breaker_state());
        }
        let p = SINGLE_PARTITION;
        let streams = [
            ("updates", self.keys.updates_stream(p), UPDATES_GROUP),
            ("payments", self.keys.payments_stream(p), PAYMENTS_GROUP),
            ("outbound", self.keys.outbound_stream(p), SENDER_GROUP),
        ];
        let mut conn = self.conn.clone();
        for (role, stream, group) in streams {
            if let Err(e) = self.sample_stream(&mut conn, role, &stream, group).await {
                tracing::debug!(stream_role = role, error.message = %e, "Stream gauges not sampled.");
            }
        }
    }

    async fn sample_stream(
        &self,
        conn: &mut ConnectionManager,
        role: &'static str,
        stream: &str,
        group: &str,
    ) -> redis::RedisResult<()> {
        let groups: redis::RedisResult<StreamInfoGroupsReply> = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(stream)
            .query_async(conn)
            .await;
        match groups {
            Ok(groups) => {
                if let Some(g) = groups.groups.iter().find(|g| g.name == group) {
                    self.metrics.set_group_pending(role, g.pending as u64);
                    // Redis reports no lag when it cannot compute it (entries deleted in
                    // the group's unread range); the last known value then stays.
                    if let Some(lag) = g.lag {
                        self.metrics.set_group_lag(role, lag as u64);
                    }
                }
            }
            Err(e) if e.to_string().contains("no such key") => {}
            Err(e) => return Err(e),
        }
        let dead: u64 = redis::cmd("XLEN")
            .arg(self.keys.dead_letter_stream(stream))
            .query_async(conn)
            .await?;
        self.metrics.set_dead_letter_entries(role, dead);
        Ok(())
    }
}
