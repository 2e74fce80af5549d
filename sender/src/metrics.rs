//! The sending families, registered into the process's own registry.

use prometheus::{IntCounterVec, Opts, Registry};

#[derive(Clone)]
pub struct SendMetrics {
    sends: IntCounterVec,
    flood_waits: IntCounterVec,
}

impl SendMetrics {
    pub fn register(registry: &Registry, transport: &str) -> prometheus::Result<Self> {
        let sends = IntCounterVec::new(
            Opts::new(
                "telegram_sends_total",
                "Telegram calls by result (ok, 429, 403, error, skipped_blocked).",
            ),
            &["result"],
        )?;
        let flood_waits = IntCounterVec::new(
            Opts::new(
                "telegram_flood_waits_total",
                "Times a sender waited for Telegram's flood control (retry_after, FLOOD_WAIT).",
            ),
            &["source"],
        )?;
        registry.register(Box::new(sends.clone()))?;
        registry.register(Box::new(flood_waits.clone()))?;
        // Series exist from the start, at 0, so that rates and alerts see them early.
        for result in ["ok", "429", "403", "error", "skipped_blocked"] {
            sends.with_label_values(&[result]);
        }
        flood_waits.with_label_values(&[transport]);
        Ok(Self { sends, flood_waits })
    }

    pub fn send(&self, result: &str) {
        self.sends.with_label_values(&[result]).inc();
    }

    pub fn flood_wait(&self, source: &str) {
        self.flood_waits.with_label_values(&[source]).inc();
    }
}
