//! Injected API failures, for the client's retry and circuit-breaker tests. Faults touch only
//! the Heleket API (`/v1/...`), never the control API or the hosted pay page.
//!
//! [`ApiFault`] is the same JSON for the Rust API and `POST /_sim/faults`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One fault; `POST /_sim/faults` takes one of these or a JSON array of them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
pub enum ApiFault {
    /// `500` with Laravel's `{"message":"Server Error"}` for the next `times` calls, or for
    /// every call until [`ApiFault::Clear`] when `times` is absent.
    ServerError {
        #[serde(default)]
        times: Option<usize>,
    },
    /// The API is down: every call gets `503` with a load balancer's HTML page until
    /// [`ApiFault::Up`] or [`ApiFault::Clear`].
    Down,
    /// Ends [`ApiFault::Down`] and [`ApiFault::Hang`].
    Up,
    /// Holds each call `ms` milliseconds, then answers `503`: long enough and the client's
    /// timeout fires first, which is how an unreachable API looks to it. For the next `times`
    /// calls, or until `Up`/`Clear` when absent. The call is recorded when it arrives.
    Hang {
        ms: u64,
        #[serde(default)]
        times: Option<usize>,
    },
    /// Delay added to every answer. The call is handled first and the answer held back, so a
    /// client that times out has still created its invoice — the case that makes retrying
    /// with the same `order_id` necessary.
    Latency { ms: u64 },
    /// Removes every fault.
    Clear,
}

/// What the next call gets instead of a normal answer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Injected {
    ServerError,
    Unavailable,
    Hang(Duration),
}

#[derive(Debug, Default)]
pub(crate) struct Faults {
    /// `None`: no fault; `Some(None)`: until cleared; `Some(Some(n))`: the next `n` calls.
    server_errors: Option<Option<usize>>,
    down: bool,
    hang: Option<(Duration, Option<usize>)>,
    latency: Duration,
}

impl Faults {
    pub(crate) fn apply(&mut self, fault: ApiFault) {
        match fault {
            ApiFault::ServerError { times } => self.server_errors = Some(times),
            ApiFault::Down => self.down = true,
            ApiFault::Up => {
                self.down = false;
                self.hang = None;
            }
            ApiFault::Hang { ms, times } => {
                self.hang = (ms > 0).then(|| (Duration::from_millis(ms), times));
            }
            ApiFault::Latency { ms } => self.latency = Duration::from_millis(ms),
            ApiFault::Clear => *self = Faults::default(),
        }
    }

    /// Consumes one counted fault, if any; hanging beats down beats 500.
    pub(crate) fn take(&mut self) -> Option<Injected> {
        if let Some((ms, times)) = &mut self.hang {
            let ms = *ms;
            if take_one(times) {
                self.hang = None;
            }
            return Some(Injected::Hang(ms));
        }
        if self.down {
            return Some(Injected::Unavailable);
        }
        if let Some(times) = &mut self.server_errors {
            if *times == Some(0) {
                self.server_errors = None;
                return None;
            }
            if take_one(times) {
                self.server_errors = None;
            }
            return Some(Injected::ServerError);
        }
        None
    }

    pub(crate) fn latency(&self) -> Duration {
        self.latency
    }
}

/// Counts one use; true when a counted fault is now used up.
fn take_one(times: &mut Option<usize>) -> bool {
    match times {
        Some(n) => {
            *n = n.saturating_sub(1);
            *n == 0
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_server_errors_run_out() {
        let mut f = Faults::default();
        f.apply(ApiFault::ServerError { times: Some(2) });
        assert_eq!(f.take(), Some(Injected::ServerError));
        assert_eq!(f.take(), Some(Injected::ServerError));
        assert_eq!(f.take(), None);
        f.apply(ApiFault::ServerError { times: Some(0) });
        assert_eq!(f.take(), None);
    }

    #[test]
    fn uncounted_faults_last_until_cleared() {
        let mut f = Faults::default();
        f.apply(ApiFault::ServerError { times: None });
        for _ in 0..5 {
            assert_eq!(f.take(), Some(Injected::ServerError));
        }
        f.apply(ApiFault::Down);
        assert_eq!(f.take(), Some(Injected::Unavailable));
        f.apply(ApiFault::Up);
        assert_eq!(f.take(), Some(Injected::ServerError), "Up keeps the 500s");
        f.apply(ApiFault::Clear);
        assert_eq!(f.take(), None);
    }

    #[test]
    fn hang_wins_and_can_be_counted() {
        let mut f = Faults::default();
        f.apply(ApiFault::Down);
        f.apply(ApiFault::Hang {
            ms: 10,
            times: Some(1),
        });
        assert_eq!(f.take(), Some(Injected::Hang(Duration::from_millis(10))));
        assert_eq!(f.take(), Some(Injected::Unavailable));
    }

    #[test]
    fn json_shapes() {
        let f: ApiFault = serde_json::from_str(r#"{"fault":"server_error","times":3}"#).unwrap();
        assert_eq!(f, ApiFault::ServerError { times: Some(3) });
        let f: ApiFault = serde_json::from_str(r#"{"fault":"hang","ms":5000}"#).unwrap();
        assert_eq!(
            f,
            ApiFault::Hang {
                ms: 5000,
                times: None
            }
        );
        let f: ApiFault = serde_json::from_str(r#"{"fault":"down"}"#).unwrap();
        assert_eq!(f, ApiFault::Down);
    }
}
