//! The worker's Prometheus metrics. Labels are bounded: roles, outcomes, classes; never ids.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};
use std::time::Duration;

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    entries: IntCounterVec,
    processing: HistogramVec,
    claimed: IntCounterVec,
    dead_letters: IntCounterVec,
    rate_limited: IntCounterVec,
    telegram_sends: IntCounterVec,
    flood_waits: IntCounterVec,
    payment_events: IntCounterVec,
    credited: prometheus::Counter,
    reconciler: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("metric registered once");
            c
        };
        let entries = counter(
            "stream_entries_processed_total",
            "Stream entries handled, by role and outcome.",
            &["role", "outcome"],
        );
        let claimed = counter(
            "stream_entries_claimed_total",
            "Entries taken over from an idle consumer.",
            &["role"],
        );
        let dead_letters = counter(
            "stream_dead_letters_total",
            "Entries moved to a dead-letter stream.",
            &["role"],
        );
        let rate_limited = counter(
            "rate_limit_hits_total",
            "Actions refused by a per-user rate limit.",
            &["class"],
        );
        let telegram_sends = counter(
            "telegram_sends_total",
            "Bot API calls by result (ok, 429, 403, error).",
            &["result"],
        );
        let flood_waits = counter(
            "telegram_flood_waits_total",
            "Times a sender waited for Telegram's retry_after.",
            &["source"],
        );
        let payment_events = counter(
            "payment_events_total",
            "Heleket events applied, by status and outcome.",
            &["status", "outcome"],
        );
        let reconciler = counter(
            "reconciler_findings_total",
            "What reconciliation passes found.",
            &["finding"],
        );
        let credited = prometheus::Counter::new(
            "payments_credited_amount_total",
            "Money credited to balances by top-ups, in USD.",
        )
        .expect("valid metric");
        registry
            .register(Box::new(credited.clone()))
            .expect("metric registered once");
        let processing = HistogramVec::new(
            HistogramOpts::new(
                "stream_entry_processing_seconds",
                "Time to handle one stream entry.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
            ]),
            &["role"],
        )
        .expect("valid histogram");
        registry
            .register(Box::new(processing.clone()))
            .expect("metric registered once");
        Self {
            registry,
            entries,
            processing,
            claimed,
            dead_letters,
            rate_limited,
            telegram_sends,
            flood_waits,
            payment_events,
            credited,
            reconciler,
        }
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

    pub fn rate_limited(&self, class: &str) {
        self.rate_limited.with_label_values(&[class]).inc();
    }

    pub fn telegram_send(&self, result: &str) {
        self.telegram_sends.with_label_values(&[result]).inc();
    }

    pub fn flood_wait(&self, source: &str) {
        self.flood_waits.with_label_values(&[source]).inc();
    }

    /// `status` comes from Heleket: anything outside its documented set is counted as `other`.
    pub fn payment_event(&self, status: &str, outcome: &str) {
        let status = if crate::payments::policy::is_known(status) {
            status
        } else {
            "other"
        };
        self.payment_events
            .with_label_values(&[status, outcome])
            .inc();
    }

    /// A float is fine here: it is a monitoring figure, never a balance.
    pub fn payment_credited(&self, amount: rust_decimal::Decimal) {
        use rust_decimal::prelude::ToPrimitive;
        self.credited.inc_by(amount.to_f64().unwrap_or(0.0));
    }

    pub fn reconciler_finding(&self, finding: &str) {
        self.reconciler.with_label_values(&[finding]).inc();
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
