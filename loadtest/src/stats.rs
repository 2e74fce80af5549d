//! What a run measures: latency histograms (HDR, microseconds) and counters, shared by every
//! simulated user and read live by the progress display and the rate ramp.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Counted events. `errors()` is what makes a run (or a ramp step) fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum C {
    /// Telegram updates posted (first attempts; retries are not new updates).
    Updates,
    /// Retries of a webhook after a 5xx or a transport error, as Telegram retries.
    Retries,
    /// Webhook posts that got no answer at all on some attempt.
    TransportErrors,
    /// Posts whose final status was not the expected one (200, or 400/401 for junk).
    WrongStatus,
    /// Updates never accepted although retried for the whole retry window.
    GaveUp,
    Actions,
    ActionsDone,
    /// Replies an action waited for (one per expected Bot API call).
    RepliesExpected,
    RepliesMatched,
    /// Expected replies that did not come within the reply timeout.
    Missing,
    /// Replies that came when nothing (or something else) was expected: doubles, late ones.
    Unexpected,
    /// Replies of the expected kind whose content was wrong (for example a balance that is
    /// not the model's).
    WrongContent,
    /// Arrivals that found no idle user: the generator could not keep the offered rate.
    Skipped,
    /// Invoices paid at the Heleket simulator.
    Payments,
    /// Payments whose webhooks all failed to get a 200.
    WebhooksFailed,
}

const COUNTERS: [C; 15] = [
    C::Updates,
    C::Retries,
    C::TransportErrors,
    C::WrongStatus,
    C::GaveUp,
    C::Actions,
    C::ActionsDone,
    C::RepliesExpected,
    C::RepliesMatched,
    C::Missing,
    C::Unexpected,
    C::WrongContent,
    C::Skipped,
    C::Payments,
    C::WebhooksFailed,
];

impl C {
    pub fn name(self) -> &'static str {
        match self {
            C::Updates => "updates_posted",
            C::Retries => "webhook_retries",
            C::TransportErrors => "transport_errors",
            C::WrongStatus => "unexpected_status",
            C::GaveUp => "updates_given_up",
            C::Actions => "actions_started",
            C::ActionsDone => "actions_done",
            C::RepliesExpected => "replies_expected",
            C::RepliesMatched => "replies_matched",
            C::Missing => "replies_missing",
            C::Unexpected => "replies_unexpected",
            C::WrongContent => "replies_wrong_content",
            C::Skipped => "arrivals_skipped",
            C::Payments => "payments",
            C::WebhooksFailed => "payment_webhooks_failed",
        }
    }
}

/// The latency segments: each from a webhook POST to the last reply it causes.
pub const SEGMENTS: [&str; 7] = [
    "start", "balance", "topup", "payment", "buy", "callback", "junk",
];

/// Microseconds, 1 µs to 10 min, three significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

struct Histograms {
    total: Histogram<u64>,
    by_segment: BTreeMap<&'static str, Histogram<u64>>,
    /// By the ramp step ("epoch") in which the action started.
    windows: BTreeMap<u32, Histogram<u64>>,
    /// Errors by the epoch in which the failing action started.
    epoch_errors: BTreeMap<u32, u64>,
    /// Actions (started, done) by epoch.
    epoch_actions: BTreeMap<u32, (u64, u64)>,
    /// How long the ingress took to answer a Telegram webhook.
    post: Histogram<u64>,
    /// Scheduled arrival to the POST leaving: the generator's own delay.
    lag: Histogram<u64>,
    telegram_status: BTreeMap<String, u64>,
    heleket_status: BTreeMap<String, u64>,
}

pub struct Stats {
    counters: [AtomicU64; COUNTERS.len()],
    h: Mutex<Histograms>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            counters: std::array::from_fn(|_| AtomicU64::new(0)),
            h: Mutex::new(Histograms {
                total: histogram(),
                by_segment: SEGMENTS.iter().map(|s| (*s, histogram())).collect(),
                windows: BTreeMap::new(),
                epoch_errors: BTreeMap::new(),
                epoch_actions: BTreeMap::new(),
                post: histogram(),
                lag: histogram(),
                telegram_status: BTreeMap::new(),
                heleket_status: BTreeMap::new(),
            }),
        }
    }
}

/// Percentiles of one histogram, in milliseconds.
pub fn percentiles(h: &Histogram<u64>) -> Value {
    let ms = |us: u64| (us as f64 / 10.0).round() / 100.0;
    json!({
        "count": h.len(),
        "p50": ms(h.value_at_quantile(0.5)),
        "p90": ms(h.value_at_quantile(0.9)),
        "p99": ms(h.value_at_quantile(0.99)),
        "p99_9": ms(h.value_at_quantile(0.999)),
        "max": ms(h.max()),
        "mean": (h.mean() / 10.0).round() / 100.0,
    })
}

impl Stats {
    fn idx(c: C) -> usize {
        COUNTERS.iter().position(|x| *x == c).unwrap_or(0)
    }

    pub fn add(&self, c: C, n: u64) {
        self.counters[Self::idx(c)].fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self, c: C) -> u64 {
        self.counters[Self::idx(c)].load(Ordering::Relaxed)
    }

    /// Everything that makes a run incorrect, summed. Skipped arrivals are not among them:
    /// they say the generator could not offer the rate (they fail a ramp step instead).
    pub fn errors(&self) -> u64 {
        [
            C::WrongStatus,
            C::GaveUp,
            C::Missing,
            C::Unexpected,
            C::WrongContent,
            C::WebhooksFailed,
        ]
        .iter()
        .map(|c| self.get(*c))
        .sum()
    }

    fn lock(&self) -> MutexGuard<'_, Histograms> {
        self.h.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An action of `epoch` started (`done` false) or ended.
    pub fn action(&self, epoch: u32, done: bool) {
        self.add(if done { C::ActionsDone } else { C::Actions }, 1);
        let mut h = self.lock();
        let entry = h.epoch_actions.entry(epoch).or_default();
        if done {
            entry.1 += 1;
        } else {
            entry.0 += 1;
        }
    }

    /// Counts an error and charges it to the epoch in which its action started.
    pub fn fail(&self, c: C, n: u64, epoch: u32) {
        if n == 0 {
            return;
        }
        self.add(c, n);
        *self.lock().epoch_errors.entry(epoch).or_default() += n;
    }

    pub fn latency(&self, segment: &'static str, d: Duration, epoch: u32) {
        let us = micros(d);
        let mut h = self.lock();
        h.total.saturating_record(us);
        h.windows
            .entry(epoch)
            .or_insert_with(histogram)
            .saturating_record(us);
        if let Some(s) = h.by_segment.get_mut(segment) {
            s.saturating_record(us);
        }
    }

    pub fn post(&self, took: Duration, lag: Duration, status: &str) {
        let mut h = self.lock();
        h.post.saturating_record(micros(took));
        h.lag.saturating_record(micros(lag));
        *h.telegram_status.entry(status.to_owned()).or_default() += 1;
    }

    pub fn retry_status(&self, status: &str) {
        *self
            .lock()
            .telegram_status
            .entry(status.to_owned())
            .or_default() += 1;
    }

    pub fn heleket_status(&self, status: &str) {
        *self
            .lock()
            .heleket_status
            .entry(status.to_owned())
            .or_default() += 1;
    }

    /// Latencies, errors and actions still in flight of the actions that started in `epoch`.
    pub fn epoch(&self, epoch: u32) -> (Histogram<u64>, u64, u64) {
        let h = self.lock();
        let window = h.windows.get(&epoch).cloned().unwrap_or_else(histogram);
        let errors = h.epoch_errors.get(&epoch).copied().unwrap_or(0);
        let (started, done) = h.epoch_actions.get(&epoch).copied().unwrap_or_default();
        (window, errors, started - done)
    }

    /// Per epoch (a second of a steady or burst run): actions started, errors and latency
    /// percentiles of the actions that started then. Shows a backlog building and draining.
    pub fn timeline(&self) -> Vec<Value> {
        let h = self.lock();
        h.epoch_actions
            .iter()
            .map(|(epoch, (started, _))| {
                let window = h.windows.get(epoch).cloned().unwrap_or_else(histogram);
                json!({
                    "second": epoch,
                    "actions": started,
                    "errors": h.epoch_errors.get(epoch).copied().unwrap_or(0),
                    "latency_ms": percentiles(&window),
                })
            })
            .collect()
    }

    /// p99 of everything so far, in ms.
    pub fn p99_ms(&self) -> f64 {
        self.lock().total.value_at_quantile(0.99) as f64 / 1000.0
    }

    pub fn to_json(&self) -> Value {
        let h = self.lock();
        let counters: serde_json::Map<String, Value> = COUNTERS
            .iter()
            .map(|c| (c.name().to_owned(), json!(self.get(*c))))
            .collect();
        let segments: serde_json::Map<String, Value> = h
            .by_segment
            .iter()
            .filter(|(_, s)| !s.is_empty())
            .map(|(k, s)| ((*k).to_owned(), percentiles(s)))
            .collect();
        json!({
            "counters": counters,
            "latency_ms": percentiles(&h.total),
            "latency_ms_by_segment": segments,
            "ingress_post_ms": percentiles(&h.post),
            "generator_lag_ms": percentiles(&h.lag),
            "telegram_webhook_statuses": h.telegram_status,
            "heleket_webhook_statuses": h.heleket_status,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_split_and_totals_keep_everything() {
        let s = Stats::default();
        s.latency("balance", Duration::from_millis(3), 0);
        s.latency("payment", Duration::from_millis(40), 1);
        s.fail(C::Missing, 1, 1);
        assert_eq!(s.epoch(0).0.len(), 1);
        s.action(1, false);
        assert_eq!((s.epoch(1).0.len(), s.epoch(1).1, s.epoch(1).2), (1, 1, 1));
        let j = s.to_json();
        assert_eq!(j["latency_ms"]["count"], 2);
        assert_eq!(j["latency_ms_by_segment"]["balance"]["count"], 1);
        assert!(j["latency_ms_by_segment"].get("buy").is_none());
    }

    #[test]
    fn errors_add_up_the_failing_counters() {
        let s = Stats::default();
        s.fail(C::Missing, 2, 0);
        s.fail(C::Unexpected, 1, 0);
        s.add(C::RepliesMatched, 10);
        assert_eq!(s.errors(), 3);
    }
}
