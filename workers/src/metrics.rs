//! The worker's Prometheus metrics. Labels are bounded: roles, outcomes, classes; never ids.

use consumer::ConsumerMetrics;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use sender::SendMetrics;
use shared::heleket::breaker::BreakerState;
use shared::heleket::client::CallObserver;
use std::time::Duration;

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub consumer: ConsumerMetrics,
    pub sends: SendMetrics,
    rate_limited: IntCounterVec,
    payment_events: IntCounterVec,
    credited: prometheus::Counter,
    credited_count: IntCounter,
    reconciler: IntCounterVec,
    group_pending: IntGaugeVec,
    group_lag: IntGaugeVec,
    dead_letter_entries: IntGaugeVec,
    heleket_calls: HistogramVec,
    heleket_errors: IntCounterVec,
    heleket_circuit: IntGauge,
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
        let rate_limited = counter(
            "rate_limit_hits_total",
            "Actions refused by a per-user rate limit.",
            &["class"],
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
        let credited_count = IntCounter::new(
            "payments_credited_total",
            "Top-ups credited to balances (one per paid invoice).",
        )
        .expect("valid metric");
        registry
            .register(Box::new(credited_count.clone()))
            .expect("metric registered once");
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("metric registered once");
            g
        };
        let group_pending = gauge(
            "stream_group_pending",
            "Entries delivered to the stream's consumer group and not yet acknowledged.",
            &["stream_role"],
        );
        let group_lag = gauge(
            "stream_group_lag",
            "Entries in the stream not yet delivered to its consumer group (XINFO GROUPS lag).",
            &["stream_role"],
        );
        let dead_letter_entries = gauge(
            "stream_dead_letter_entries",
            "Entries in the stream's dead-letter stream (XLEN).",
            &["stream_role"],
        );
        let heleket_errors = counter(
            "heleket_api_errors_total",
            "Heleket API calls that failed, by endpoint and error kind.",
            &["endpoint", "kind"],
        );
        let heleket_circuit = IntGauge::new(
            "heleket_circuit_state",
            "Heleket circuit breaker of this process: 0 closed, 1 half-open, 2 open.",
        )
        .expect("valid metric");
        registry
            .register(Box::new(heleket_circuit.clone()))
            .expect("metric registered once");
        let heleket_calls = HistogramVec::new(
            HistogramOpts::new(
                "heleket_api_seconds",
                "Heleket API calls by endpoint and result, retries and backoff included.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["endpoint", "result"],
        )
        .expect("valid histogram");
        registry
            .register(Box::new(heleket_calls.clone()))
            .expect("metric registered once");
        // Series of bounded label sets exist from the start, at 0, so that rates and alerts
        // see them before the first event.
        for class in ["messages", "expensive"] {
            rate_limited.with_label_values(&[class]);
        }
        for finding in ["status_changed", "never_created"] {
            reconciler.with_label_values(&[finding]);
        }
        let consumer = ConsumerMetrics::register(&registry, &["updates", "payments", "sender"])
            .expect("consumer metrics registered once");
        let sends =
            SendMetrics::register(&registry, "bot_api").expect("send metrics registered once");
        Self {
            registry,
            consumer,
            sends,
            rate_limited,
            payment_events,
            credited,
            credited_count,
            reconciler,
            group_pending,
            group_lag,
            dead_letter_entries,
            heleket_calls,
            heleket_errors,
            heleket_circuit,
        }
    }

    pub fn rate_limited(&self, class: &str) {
        self.rate_limited.with_label_values(&[class]).inc();
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
        self.credited_count.inc();
    }

    pub fn reconciler_finding(&self, finding: &str) {
        self.reconciler.with_label_values(&[finding]).inc();
    }

    /// Pending entries of the group reading `stream_role`'s stream (a sampled gauge).
    pub fn set_group_pending(&self, stream_role: &str, pending: u64) {
        self.group_pending
            .with_label_values(&[stream_role])
            .set(clamp(pending));
    }

    pub fn set_group_lag(&self, stream_role: &str, lag: u64) {
        self.group_lag
            .with_label_values(&[stream_role])
            .set(clamp(lag));
    }

    pub fn set_dead_letter_entries(&self, stream_role: &str, entries: u64) {
        self.dead_letter_entries
            .with_label_values(&[stream_role])
            .set(clamp(entries));
    }

    pub fn set_heleket_circuit(&self, state: BreakerState) {
        self.heleket_circuit.set(state.as_gauge());
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Heleket calls, as reported by `shared::heleket::client::HeleketClient`.
impl CallObserver for Metrics {
    fn observe(&self, endpoint: &'static str, result: &'static str, took: Duration) {
        self.heleket_calls
            .with_label_values(&[endpoint, result])
            .observe(took.as_secs_f64());
        if result != "ok" {
            self.heleket_errors
                .with_label_values(&[endpoint, result])
                .inc();
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
