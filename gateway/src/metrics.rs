//! The gateway's Prometheus metrics: its own families plus the consumer and sending ones
//! the workers export under the same names.

use consumer::ConsumerMetrics;
use prometheus::{Encoder, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};
use sender::SendMetrics;

#[derive(Clone)]
pub struct GatewayMetrics {
    registry: Registry,
    pub consumer: ConsumerMetrics,
    pub sends: SendMetrics,
    updates: IntCounterVec,
    source_errors: IntCounterVec,
    append_retries: IntCounter,
    sessions: IntCounterVec,
    lease_active: IntGauge,
    lease_acquired: IntCounter,
}

impl GatewayMetrics {
    pub fn new() -> Self {
        Self::register(Registry::new()).expect("gateway metrics registered once")
    }

    fn register(registry: Registry) -> prometheus::Result<Self> {
        let counter = |name: &str, help: &str, labels: &[&str]| -> prometheus::Result<_> {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let updates = counter(
            "gateway_updates_total",
            "MTProto updates received, by what became of them (an event kind, or ignored).",
            &["kind"],
        )?;
        let source_errors = counter(
            "gateway_update_errors_total",
            "Problems receiving updates: gap (a fetch of missed updates failed), connection, commit, connection_reset and malformed (both repaired by fetching again).",
            &["kind"],
        )?;
        let sessions = counter(
            "gateway_sessions_total",
            "MTProto sessions started, by how they ended (stopped, lost, failed_to_connect).",
            &["end"],
        )?;
        let append_retries = IntCounter::new(
            "gateway_append_retries_total",
            "Appends to the updates stream retried because Redis did not acknowledge.",
        )?;
        let lease_active = IntGauge::new(
            "gateway_lease_active",
            "1 while this copy holds the gateway lease and talks to Telegram, 0 as a standby.",
        )?;
        let lease_acquired = IntCounter::new(
            "gateway_lease_acquired_total",
            "Times this copy became the active gateway.",
        )?;
        registry.register(Box::new(append_retries.clone()))?;
        registry.register(Box::new(lease_active.clone()))?;
        registry.register(Box::new(lease_acquired.clone()))?;
        for kind in [
            "gap",
            "connection",
            "commit",
            "connection_reset",
            "malformed",
        ] {
            source_errors.with_label_values(&[kind]);
        }
        let consumer = ConsumerMetrics::register(&registry, &["sender"])?;
        let sends = SendMetrics::register(&registry, "mtproto")?;
        Ok(Self {
            registry,
            consumer,
            sends,
            updates,
            source_errors,
            append_retries,
            sessions,
            lease_active,
            lease_acquired,
        })
    }

    pub fn update(&self, kind: &str) {
        self.updates.with_label_values(&[kind]).inc();
    }

    pub fn update_ignored(&self, kind: &str) {
        self.updates
            .with_label_values(&[&format!("ignored_{kind}")])
            .inc();
    }

    pub fn source_error(&self, kind: &str) {
        self.source_errors.with_label_values(&[kind]).inc();
    }

    pub fn append_retry(&self) {
        self.append_retries.inc();
    }

    pub fn session_ended(&self, end: &str) {
        self.sessions.with_label_values(&[end]).inc();
    }

    pub fn set_lease_active(&self, active: bool) {
        self.lease_active.set(i64::from(active));
        if active {
            self.lease_acquired.inc();
        }
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        Self::new()
    }
}
