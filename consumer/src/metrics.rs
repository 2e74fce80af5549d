//! The consumer families, registered into the process's own registry so that every process
//! (worker or gateway) exports them under the same names.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use std::time::Duration;

#[derive(Clone)]
pub struct ConsumerMetrics {
    entries: IntCounterVec,
    processing: HistogramVec,
    claimed: IntCounterVec,
    dead_letters: IntCounterVec,
}

impl ConsumerMetrics {
    /// `roles` get their series at 0 from the start, so that rates and alerts see them
    /// before the first event.
    pub fn register(registry: &Registry, roles: &[&str]) -> prometheus::Result<Self> {
        let entries = IntCounterVec::new(
            Opts::new(
                "stream_entries_processed_total",
                "Stream entries handled, by role and outcome.",
            ),
            &["role", "outcome"],
        )?;
        let claimed = IntCounterVec::new(
            Opts::new(
                "stream_entries_claimed_total",
                "Entries taken over from an idle consumer.",
            ),
            &["role"],
        )?;
        let dead_letters = IntCounterVec::new(
            Opts::new(
                "stream_dead_letters_total",
                "Entries moved to a dead-letter stream.",
            ),
            &["role"],
        )?;
        let processing = HistogramVec::new(
            HistogramOpts::new(
                "stream_entry_processing_seconds",
                "Time to handle one stream entry.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
            ]),
            &["role"],
        )?;
        registry.register(Box::new(entries.clone()))?;
        registry.register(Box::new(claimed.clone()))?;
        registry.register(Box::new(dead_letters.clone()))?;
        registry.register(Box::new(processing.clone()))?;
        for role in roles {
            dead_letters.with_label_values(&[role]);
            claimed.with_label_values(&[role]);
        }
        Ok(Self {
            entries,
            processing,
            claimed,
            dead_letters,
        })
    }

    pub fn processed(&self, role: &str, outcome: &str, took: Duration) {
        self.entries.with_label_values(&[role, outcome]).inc();
        self.processing
            .with_label_values(&[role])
            .observe(took.as_secs_f64());
    }

    pub fn claimed(&self, role: &str, n: usize) {
        self.claimed.with_label_values(&[role]).inc_by(n as u64);
    }

    pub fn dead_lettered(&self, role: &str) {
        self.dead_letters.with_label_values(&[role]).inc();
    }
}
