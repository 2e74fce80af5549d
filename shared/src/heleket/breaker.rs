//! A circuit breaker in front of the Heleket API.
//!
//! Closed: calls go through; `failure_threshold` consecutive failed calls (a call counts once,
//! after its retries) open it. Open: every call fails at once, without touching the network,
//! for `open_for`. Then the next call is let through as the one trial (half-open) while the
//! others keep failing fast; its success closes the breaker, its failure re-opens it for
//! another full period.
//!
//! The state is per process (each worker copy has its own). That is enough for the purpose,
//! which is to stop one process from piling requests and retries onto an API that is down and
//! to answer its users at once; copies learn about an outage independently, each after
//! `failure_threshold` calls.
//!
//! The clock is `tokio::time::Instant`, so tests drive it with `tokio::time::pause()`.
//! The lock is a std `Mutex` held for a few instructions and never across an `.await`.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub const ALL: [BreakerState; 3] = [Self::Closed, Self::Open, Self::HalfOpen];

    /// A bounded metric label: `closed`, `open` or `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }

    /// For a gauge, ordered by severity: 0 closed, 1 half-open, 2 open.
    pub fn as_gauge(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::HalfOpen => 1,
            Self::Open => 2,
        }
    }
}

impl std::fmt::Display for BreakerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failed calls that open the breaker; at least 1.
    pub failure_threshold: u32,
    /// How long it stays open before a trial call is let through.
    pub open_for: Duration,
}

/// Returned by `try_acquire` while the breaker is open (or its one trial is in flight).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker {name} is open")]
pub struct BreakerOpen {
    pub name: &'static str,
}

#[derive(Debug)]
pub struct CircuitBreaker {
    name: &'static str,
    config: BreakerConfig,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: State,
    /// Bumped on every transition, so the outcome of a call admitted under an earlier state
    /// (a slow call that outlived an opening) is ignored instead of flipping the new state.
    generation: u64,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { trial_in_flight: bool },
}

impl CircuitBreaker {
    /// `name` appears in log lines and errors only.
    pub fn new(name: &'static str, config: BreakerConfig) -> Self {
        Self {
            name,
            config: BreakerConfig {
                failure_threshold: config.failure_threshold.max(1),
                ..config
            },
            inner: Mutex::new(Inner {
                state: State::Closed { failures: 0 },
                generation: 0,
            }),
        }
    }

    pub fn config(&self) -> BreakerConfig {
        self.config
    }

    /// The current state, for metrics. An open breaker whose period has passed still reads
    /// `open` until the next call becomes the trial.
    pub fn state(&self) -> BreakerState {
        match self.lock().state {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Whether a call made now would be admitted, without taking the trial slot: lets a
    /// caller skip work it would otherwise have to undo (writing an invoice row) while the
    /// breaker is open.
    pub fn admits_calls(&self) -> bool {
        match self.lock().state {
            State::Closed { .. } => true,
            State::Open { until } => Instant::now() >= until,
            State::HalfOpen { trial_in_flight } => !trial_in_flight,
        }
    }

    /// Admit one call, or refuse it without any I/O. Report the call's result with
    /// `Permit::success` / `Permit::failure`; a permit dropped without either (a cancelled
    /// call) counts as neither, and a dropped trial lets the next call be the trial.
    pub fn try_acquire(&self) -> Result<Permit<'_>, BreakerOpen> {
        let mut inner = self.lock();
        let trial = match inner.state {
            State::Closed { .. } => false,
            State::Open { until } if Instant::now() >= until => {
                inner.transition(State::HalfOpen {
                    trial_in_flight: true,
                });
                tracing::info!(
                    breaker = self.name,
                    breaker.state = "half_open",
                    "Circuit breaker half-open; letting one trial call through."
                );
                true
            }
            State::HalfOpen {
                trial_in_flight: false,
            } => {
                inner.state = State::HalfOpen {
                    trial_in_flight: true,
                };
                true
            }
            State::Open { .. } | State::HalfOpen { .. } => {
                return Err(BreakerOpen { name: self.name })
            }
        };
        Ok(Permit {
            breaker: self,
            generation: inner.generation,
            trial,
            settled: false,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The critical sections cannot panic half-way through an update, so a poisoned lock
        // still holds a consistent state.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, generation: u64, ok: bool) {
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        match (inner.state, ok) {
            (State::Closed { .. }, true) => inner.state = State::Closed { failures: 0 },
            (State::Closed { failures }, false) => {
                let failures = failures.saturating_add(1);
                if failures >= self.config.failure_threshold {
                    inner.transition(State::Open {
                        until: Instant::now() + self.config.open_for,
                    });
                    tracing::warn!(
                        breaker = self.name,
                        breaker.state = "open",
                        consecutive_failures = failures,
                        open_for_ms = self.config.open_for.as_millis() as u64,
                        "Circuit breaker opened; calls fail fast until the trial."
                    );
                } else {
                    inner.state = State::Closed { failures };
                }
            }
            (State::HalfOpen { .. }, true) => {
                inner.transition(State::Closed { failures: 0 });
                tracing::info!(
                    breaker = self.name,
                    breaker.state = "closed",
                    "Circuit breaker closed; the trial call succeeded."
                );
            }
            (State::HalfOpen { .. }, false) => {
                inner.transition(State::Open {
                    until: Instant::now() + self.config.open_for,
                });
                tracing::warn!(
                    breaker = self.name,
                    breaker.state = "open",
                    open_for_ms = self.config.open_for.as_millis() as u64,
                    "Circuit breaker re-opened; the trial call failed."
                );
            }
            // Only reachable with a stale generation, which returned above.
            (State::Open { .. }, _) => {}
        }
    }

    fn release_trial(&self, generation: u64) {
        let mut inner = self.lock();
        if inner.generation == generation {
            if let State::HalfOpen { .. } = inner.state {
                inner.state = State::HalfOpen {
                    trial_in_flight: false,
                };
            }
        }
    }
}

impl Inner {
    fn transition(&mut self, to: State) {
        self.state = to;
        self.generation = self.generation.wrapping_add(1);
    }
}

/// Leave to make one call. Settle it with `success()` or `failure()`.
#[derive(Debug)]
#[must_use = "report the call's outcome with success() or failure()"]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    generation: u64,
    trial: bool,
    settled: bool,
}

impl Permit<'_> {
    /// Whether this call is the half-open trial.
    pub fn is_trial(&self) -> bool {
        self.trial
    }

    pub fn success(mut self) {
        self.settled = true;
        self.breaker.record(self.generation, true);
    }

    pub fn failure(mut self) {
        self.settled = true;
        self.breaker.record(self.generation, false);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.settled && self.trial {
            self.breaker.release_trial(self.generation);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::advance;

    const OPEN_FOR: Duration = Duration::from_secs(30);

    fn breaker(threshold: u32) -> CircuitBreaker {
        CircuitBreaker::new(
            "test",
            BreakerConfig {
                failure_threshold: threshold,
                open_for: OPEN_FOR,
            },
        )
    }

    fn fail(b: &CircuitBreaker) {
        b.try_acquire().unwrap().failure();
    }

    fn succeed(b: &CircuitBreaker) {
        b.try_acquire().unwrap().success();
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_k_consecutive_failures_and_a_success_resets_the_count() {
        let b = breaker(3);
        fail(&b);
        fail(&b);
        succeed(&b);
        fail(&b);
        fail(&b);
        assert_eq!(b.state(), BreakerState::Closed);
        fail(&b);
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.try_acquire().unwrap_err(), BreakerOpen { name: "test" });
    }

    #[tokio::test(start_paused = true)]
    async fn after_the_open_period_one_trial_goes_through_and_success_closes() {
        let b = breaker(1);
        fail(&b);
        advance(OPEN_FOR - Duration::from_millis(1)).await;
        assert!(b.try_acquire().is_err());
        advance(Duration::from_millis(1)).await;
        let trial = b.try_acquire().unwrap();
        assert!(trial.is_trial());
        assert_eq!(b.state(), BreakerState::HalfOpen);
        // Only one trial at a time.
        assert!(b.try_acquire().is_err());
        trial.success();
        assert_eq!(b.state(), BreakerState::Closed);
        let normal = b.try_acquire().unwrap();
        assert!(!normal.is_trial());
        normal.success();
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_trial_reopens_for_a_full_period() {
        let b = breaker(2);
        fail(&b);
        fail(&b);
        advance(OPEN_FOR).await;
        b.try_acquire().unwrap().failure();
        assert_eq!(b.state(), BreakerState::Open);
        advance(OPEN_FOR - Duration::from_millis(1)).await;
        assert!(b.try_acquire().is_err());
        advance(Duration::from_millis(1)).await;
        b.try_acquire().unwrap().success();
        assert_eq!(b.state(), BreakerState::Closed);
        // Closed again with a fresh count: one failure does not re-open a threshold of 2.
        fail(&b);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_trial_frees_the_slot_for_the_next_call() {
        let b = breaker(1);
        fail(&b);
        advance(OPEN_FOR).await;
        drop(b.try_acquire().unwrap());
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let trial = b.try_acquire().unwrap();
        assert!(trial.is_trial());
        trial.success();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn outcomes_of_calls_admitted_before_a_transition_are_ignored() {
        let b = breaker(1);
        let slow_ok = b.try_acquire().unwrap();
        let slow_fail = b.try_acquire().unwrap();
        fail(&b);
        assert_eq!(b.state(), BreakerState::Open);
        // A slow call admitted while closed must not close an open breaker...
        slow_ok.success();
        assert_eq!(b.state(), BreakerState::Open);
        advance(OPEN_FOR).await;
        let trial = b.try_acquire().unwrap();
        // ...nor decide the trial's fate.
        slow_fail.failure();
        assert_eq!(b.state(), BreakerState::HalfOpen);
        trial.success();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn threshold_zero_means_one() {
        let b = breaker(0);
        assert_eq!(b.config().failure_threshold, 1);
    }
}
