//! Updates from the source onto the updates stream, one at a time and in order; the source's
//! position is committed only after Redis acknowledged the append.

use crate::metrics::GatewayMetrics;
use crate::source::{Received, SourceError, UpdateSource};
use consumer::Backoff;
use redis::aio::ConnectionManager;
use shared::event::{EventKind, InboundEvent};
use shared::streams::PAYLOAD_FIELD;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub struct Relay {
    pub conn: ConnectionManager,
    pub stream: String,
    pub metrics: GatewayMetrics,
}

/// Why relaying ended.
#[derive(Debug)]
pub enum RelayEnd {
    /// `stop` fired; everything received was appended and committed, or is left uncommitted
    /// to be replayed.
    Stopped,
    /// The source's connection is gone.
    Lost(SourceError),
}

impl Relay {
    pub async fn run<S: UpdateSource>(&self, source: &mut S, stop: &CancellationToken) -> RelayEnd {
        loop {
            let received = tokio::select! {
                biased;
                _ = stop.cancelled() => return RelayEnd::Stopped,
                r = source.next() => r,
            };
            match received {
                Ok(Received::Event(event)) => {
                    let span = tracing::info_span!(
                        "update",
                        update_id = %event.update_id,
                        chat_id = event.chat_id(),
                    );
                    let appended = self.append(&event, stop).instrument(span.clone()).await;
                    if !appended {
                        // Stopped before Redis took it: not committed, so it is replayed.
                        return RelayEnd::Stopped;
                    }
                    self.metrics.update(kind_label(&event));
                    self.commit(source).instrument(span).await;
                }
                Ok(Received::Ignored(kind)) => {
                    self.metrics.update_ignored(kind);
                    self.commit(source).await;
                }
                Err(SourceError::Gap(reason)) => {
                    self.metrics.source_error("gap");
                    tracing::warn!(%reason, "Updates may have been skipped (gap not filled).");
                }
                Err(e @ SourceError::Connection(_)) => {
                    self.metrics.source_error("connection");
                    return RelayEnd::Lost(e);
                }
            }
        }
    }

    /// A failed commit only means a replay after a crash, which the workers dedupe.
    async fn commit<S: UpdateSource>(&self, source: &mut S) {
        if let Err(e) = source.commit().await {
            self.metrics.source_error("commit");
            tracing::warn!(error.message = %e, "Could not save the update position.");
        }
    }

    /// Retries until Redis acknowledges; false when `stop` came first.
    async fn append(&self, event: &InboundEvent, stop: &CancellationToken) -> bool {
        let payload = match serde_json::to_string(event) {
            Ok(p) => p,
            Err(e) => {
                // Our own type always serializes; keep going rather than wedge the stream.
                tracing::error!(error.message = %e, "Event did not serialize; dropped.");
                return true;
            }
        };
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
        loop {
            let mut conn = self.conn.clone();
            let added: redis::RedisResult<String> = redis::cmd("XADD")
                .arg(&self.stream)
                .arg("*")
                .arg(PAYLOAD_FIELD)
                .arg(&payload)
                .query_async(&mut conn)
                .await;
            match added {
                Ok(_) => return true,
                Err(e) => {
                    self.metrics.append_retry();
                    tracing::warn!(error.message = %e, "Append to the updates stream failed; retrying.");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff.next_delay()) => {}
                        _ = stop.cancelled() => return false,
                    }
                }
            }
        }
    }
}

fn kind_label(event: &InboundEvent) -> &'static str {
    match event.kind {
        EventKind::Command { .. } => "command",
        EventKind::Text { .. } => "text",
        EventKind::Callback { .. } => "callback",
        EventKind::MemberChange { .. } => "member_change",
    }
}
