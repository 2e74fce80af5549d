use crate::routes::Route;
use hyper::StatusCode;
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry, TextEncoder,
};
use std::sync::OnceLock;
use std::time::Duration;

/// Every status the ingress answers with; others still count, just through the slower path.
const STATUSES: [StatusCode; 9] = [
    StatusCode::OK,
    StatusCode::BAD_REQUEST,
    StatusCode::UNAUTHORIZED,
    StatusCode::FORBIDDEN,
    StatusCode::NOT_FOUND,
    StatusCode::METHOD_NOT_ALLOWED,
    StatusCode::PAYLOAD_TOO_LARGE,
    StatusCode::INTERNAL_SERVER_ERROR,
    StatusCode::SERVICE_UNAVAILABLE,
];

/// The ingress's own registry (not the process-global default, so tests and several apps in one
/// process do not share counters).
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    /// `with_label_values` hashes the labels under a read lock; resolving each (route, status)
    /// pair once keeps the hot path to one atomic add. Slots fill on first use so /metrics shows
    /// no series for pairs that never happened.
    request_slots: [[OnceLock<IntCounter>; STATUSES.len()]; Route::ALL.len()],
    append_seconds: Histogram,
    ignored: IntCounterVec,
    webhooks_refused: IntCounterVec,
}

impl Metrics {
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("ingress_requests_total", "HTTP requests answered."),
            &["route", "status"],
        )?;
        let append_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "ingress_stream_append_seconds",
                "Time to append one entry to its Redis stream, failures included.",
            )
            .buckets(vec![
                0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
        )?;
        let ignored = IntCounterVec::new(
            Opts::new(
                "ingress_updates_ignored_total",
                "Well-formed updates acknowledged without enqueueing, by kind.",
            ),
            &["kind"],
        )?;
        let webhooks_refused = IntCounterVec::new(
            Opts::new(
                "ingress_webhooks_refused_total",
                "Heleket payment webhooks refused, by reason.",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(append_seconds.clone()))?;
        registry.register(Box::new(ignored.clone()))?;
        registry.register(Box::new(webhooks_refused.clone()))?;
        Ok(Self {
            registry,
            requests,
            request_slots: std::array::from_fn(|_| std::array::from_fn(|_| OnceLock::new())),
            append_seconds,
            ignored,
            webhooks_refused,
        })
    }

    pub fn request(&self, route: Route, status: StatusCode) {
        let labels = [route.label(), status.as_str()];
        match STATUSES.iter().position(|s| *s == status) {
            Some(i) => self.request_slots[route as usize][i]
                .get_or_init(|| self.requests.with_label_values(&labels))
                .inc(),
            None => self.requests.with_label_values(&labels).inc(),
        }
    }

    pub fn stream_append(&self, took: Duration) {
        self.append_seconds.observe(took.as_secs_f64());
    }

    /// Ignored updates are a small share of traffic, so the labelled lookup is fine here.
    pub fn update_ignored(&self, kind: &'static str) {
        self.ignored.with_label_values(&[kind]).inc();
    }

    /// `reason` is one of `IngressError::reason`'s fixed strings, so the label stays bounded.
    pub fn webhook_refused(&self, reason: &'static str) {
        self.webhooks_refused.with_label_values(&[reason]).inc();
    }

    pub fn encode(&self) -> prometheus::Result<Vec<u8>> {
        let mut buf = Vec::with_capacity(4096);
        TextEncoder::new().encode(&self.registry.gather(), &mut buf)?;
        Ok(buf)
    }
}

pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_appear_with_their_labels() {
        let m = Metrics::new().unwrap();
        m.request(Route::TelegramWebhook, StatusCode::OK);
        m.request(Route::TelegramWebhook, StatusCode::OK);
        m.request(Route::Unmatched, StatusCode::IM_A_TEAPOT);
        m.stream_append(Duration::from_millis(1));
        m.update_ignored("edited_message");
        m.request(Route::HeleketWebhook, StatusCode::FORBIDDEN);
        m.webhook_refused("sender not allowed");
        let text = String::from_utf8(m.encode().unwrap()).unwrap();
        assert!(
            text.contains(r#"ingress_requests_total{route="/telegram/webhook",status="200"} 2"#)
        );
        assert!(text.contains(r#"ingress_requests_total{route="unmatched",status="418"} 1"#));
        assert!(text.contains("ingress_stream_append_seconds_count 1"));
        assert!(text.contains(r#"ingress_updates_ignored_total{kind="edited_message"} 1"#));
        assert!(text.contains(r#"ingress_requests_total{route="/heleket/webhook",status="403"} 1"#));
        assert!(text.contains(r#"ingress_webhooks_refused_total{reason="sender not allowed"} 1"#));
    }
}
