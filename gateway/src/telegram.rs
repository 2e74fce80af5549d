//! The production connector: MTProto sessions from the `mtproto` crate, adapted to the
//! gateway's two boundaries.

use crate::metrics::GatewayMetrics;
use crate::source::{Received, SourceError, UpdateSource};
use crate::Connector;
use mtproto::{
    Converted, MtprotoError, MtprotoSender, MtprotoSettings, MtprotoUpdates, StreamIncidents,
};
use shared::outbound::{DeliveryOutcome, OutboundAction};

pub struct MtprotoConnector {
    pub settings: MtprotoSettings,
    pub metrics: GatewayMetrics,
}

impl Connector for MtprotoConnector {
    type Source = MtprotoSource;
    type Transport = MtprotoTransport;

    async fn connect(&self) -> anyhow::Result<(MtprotoSource, MtprotoTransport)> {
        let (sender, updates) = mtproto::connect(&self.settings).await?;
        Ok((
            MtprotoSource {
                updates,
                metrics: self.metrics.clone(),
                seen: StreamIncidents::default(),
            },
            MtprotoTransport(sender),
        ))
    }
}

pub struct MtprotoTransport(MtprotoSender);

impl sender::Transport for MtprotoTransport {
    const NAME: &'static str = "mtproto";

    async fn execute(&self, chat_id: i64, action: &OutboundAction) -> DeliveryOutcome {
        self.0.execute(chat_id, action).await
    }
}

pub struct MtprotoSource {
    updates: MtprotoUpdates,
    metrics: GatewayMetrics,
    /// Incidents already counted, so each is counted once.
    seen: StreamIncidents,
}

impl MtprotoSource {
    /// grammers repairs connection resets and malformed pushes by itself; they still count.
    fn count_incidents(&mut self) {
        let now = self.updates.incidents();
        for _ in self.seen.connection_resets..now.connection_resets {
            self.metrics.source_error("connection_reset");
            tracing::warn!("MTProto connection reset; missed updates are fetched again.");
        }
        for _ in self.seen.malformed_updates..now.malformed_updates {
            self.metrics.source_error("malformed");
            tracing::warn!("Telegram pushed updates that did not parse; fetched again.");
        }
        self.seen = now;
    }
}

impl UpdateSource for MtprotoSource {
    async fn next(&mut self) -> Result<Received, SourceError> {
        let next = self.updates.next().await;
        self.count_incidents();
        match next {
            Ok(Converted::Event(event)) => Ok(Received::Event(event)),
            Ok(Converted::Ignored(kind)) => Ok(Received::Ignored(kind)),
            // The stream retries a failed fetch by itself, after a pause.
            Err(e @ MtprotoError::Updates { .. }) => Err(SourceError::Gap(chain(&e))),
            Err(e) => Err(SourceError::Connection(chain(&e))),
        }
    }

    async fn commit(&mut self) -> Result<(), SourceError> {
        self.updates
            .commit()
            .await
            .map_err(|e| SourceError::Connection(chain(&e)))
    }

    async fn close(self) {
        self.updates.disconnect().await;
    }
}

/// The error with its causes, for the log: grammers' reasons sit in the sources.
fn chain(e: &MtprotoError) -> String {
    let mut out = e.to_string();
    let mut next = std::error::Error::source(e);
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}
