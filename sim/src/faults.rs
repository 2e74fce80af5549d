//! Injected failures and Telegram's flood limits.
//!
//! Faults are described by [`Fault`], the same JSON shape for the Rust API and for
//! `POST /_sim/faults`, so a test and a load generator in another process inject identically.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// One fault to inject; `POST /_sim/faults` takes one of these or a JSON array of them.
///
/// `chat_id` and `method` narrow a counted fault to matching calls; `method` is a Bot API
/// method name compared case-insensitively, like Telegram does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
pub enum Fault {
    /// `429 Too Many Requests: retry after N` for the next `times` matching calls.
    TooManyRequests {
        times: usize,
        retry_after: u64,
        #[serde(default)]
        chat_id: Option<i64>,
        #[serde(default)]
        method: Option<String>,
    },
    /// `500 Internal Server Error` (a JSON error body) for the next `times` matching calls.
    ServerError {
        times: usize,
        #[serde(default)]
        chat_id: Option<i64>,
        #[serde(default)]
        method: Option<String>,
    },
    /// `502 Bad Gateway` with nginx's HTML body, as api.telegram.org answers during incidents:
    /// clients must cope with an error that is not JSON.
    BadGateway {
        times: usize,
        #[serde(default)]
        chat_id: Option<i64>,
        #[serde(default)]
        method: Option<String>,
    },
    /// Every call carrying this `chat_id` gets `403 Forbidden: bot was blocked by the user`.
    BlockChat {
        chat_id: i64,
    },
    UnblockChat {
        chat_id: i64,
    },
    /// `429 Too Many Requests: retry after N` for a share (0.0–1.0) of matching calls, spread
    /// evenly (every `1/share`-th call, deterministic), until cleared or replaced. A slow or
    /// overloaded Telegram; `share` 0 removes it.
    TooManyRequestsShare {
        share: f64,
        retry_after: u64,
        #[serde(default)]
        method: Option<String>,
    },
    /// Fixed delay before every Bot API answer (not the control API).
    Latency {
        ms: u64,
    },
    /// Replaces the flood limits and refills every bucket.
    Limits(RateLimits),
    /// Drops every pending counted fault, block and latency; keeps limits and recordings.
    Clear,
}

/// Telegram's flood limits as token buckets: a per-chat one and a global one over `sendMessage`.
///
/// Telegram publishes only guidance (about 1 message/s per chat with short bursts, about 30/s
/// overall), so these are the numbers our sender promises to stay under, not Telegram's exact
/// algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimits {
    pub chat_rate: f64,
    pub chat_burst: f64,
    pub global_rate: f64,
    pub global_burst: f64,
    /// When false, calls over a limit are only counted; when true they get 429 like Telegram.
    pub enforce: bool,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            chat_rate: 1.0,
            chat_burst: 3.0,
            global_rate: 30.0,
            global_burst: 30.0,
            enforce: false,
        }
    }
}

impl RateLimits {
    /// A NaN or non-positive rate would make the buckets never refill (or refill by NaN), so
    /// such values fall back to the defaults instead of wedging every later send.
    fn sanitized(self) -> RateLimits {
        let d = RateLimits::default();
        let pick = |v: f64, fallback: f64| {
            if v > 0.0 && v.is_finite() {
                v
            } else {
                fallback
            }
        };
        RateLimits {
            chat_rate: pick(self.chat_rate, d.chat_rate),
            chat_burst: pick(self.chat_burst, d.chat_burst).max(1.0),
            global_rate: pick(self.global_rate, d.global_rate),
            global_burst: pick(self.global_burst, d.global_burst).max(1.0),
            enforce: self.enforce,
        }
    }
}

/// Counters of `sendMessage` calls that went over [`RateLimits`] (`GET /_sim/violations`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Violations {
    /// Every `sendMessage` that passed validation and reached the limiter.
    pub sends: u64,
    pub per_chat: u64,
    pub global: u64,
    /// Per-chat violations by chat, only for chats that had any.
    pub by_chat: BTreeMap<i64, u64>,
    /// Calls about a chat made while a `429` answered for that chat still had `retry_after`
    /// to run: a client that does not wait as told. Counted for every method, not enforced.
    #[serde(default)]
    pub retry_after: u64,
    pub limits: RateLimits,
}

/// What an injected counted fault answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Injected {
    TooManyRequests { retry_after: u64 },
    ServerError,
    BadGateway,
}

struct Pending {
    kind: Injected,
    remaining: usize,
    chat_id: Option<i64>,
    method: Option<String>,
}

/// [`Fault::TooManyRequestsShare`]: `credit` grows by `share` per matching call and a call
/// that brings it to 1 is refused, so refusals are evenly spread.
struct Share {
    share: f64,
    retry_after: u64,
    method: Option<String>,
    credit: f64,
}

#[derive(Default)]
pub(crate) struct Faults {
    pending: Vec<Pending>,
    share: Option<Share>,
    blocked: HashSet<i64>,
    latency: Duration,
}

impl Faults {
    /// Applies everything except [`Fault::Limits`], which belongs to the [`Limiter`].
    pub(crate) fn apply(&mut self, fault: Fault) {
        let (kind, times, chat_id, method) = match fault {
            Fault::TooManyRequests {
                times,
                retry_after,
                chat_id,
                method,
            } => (
                Injected::TooManyRequests { retry_after },
                times,
                chat_id,
                method,
            ),
            Fault::ServerError {
                times,
                chat_id,
                method,
            } => (Injected::ServerError, times, chat_id, method),
            Fault::BadGateway {
                times,
                chat_id,
                method,
            } => (Injected::BadGateway, times, chat_id, method),
            Fault::BlockChat { chat_id } => {
                self.blocked.insert(chat_id);
                return;
            }
            Fault::UnblockChat { chat_id } => {
                self.blocked.remove(&chat_id);
                return;
            }
            Fault::TooManyRequestsShare {
                share,
                retry_after,
                method,
            } => {
                self.share = (share > 0.0 && share.is_finite()).then(|| Share {
                    share: share.min(1.0),
                    retry_after,
                    method: method.map(|m| m.to_ascii_lowercase()),
                    credit: 0.0,
                });
                return;
            }
            Fault::Latency { ms } => {
                self.latency = Duration::from_millis(ms);
                return;
            }
            Fault::Clear => {
                *self = Faults::default();
                return;
            }
            Fault::Limits(_) => return,
        };
        if times > 0 {
            self.pending.push(Pending {
                kind,
                remaining: times,
                chat_id,
                method: method.map(|m| m.to_ascii_lowercase()),
            });
        }
    }

    /// Consumes one use of the oldest pending fault that matches this call; without one, the
    /// share of refusals ([`Fault::TooManyRequestsShare`]) may pick this call.
    pub(crate) fn take(&mut self, method: &str, chat_id: Option<i64>) -> Option<Injected> {
        let Some(index) = self.pending.iter().position(|p| {
            p.chat_id.is_none_or(|c| Some(c) == chat_id)
                && p.method
                    .as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case(method))
        }) else {
            return self.take_share(method);
        };
        let pending = &mut self.pending[index];
        pending.remaining -= 1;
        let kind = pending.kind;
        if pending.remaining == 0 {
            self.pending.remove(index);
        }
        Some(kind)
    }

    fn take_share(&mut self, method: &str) -> Option<Injected> {
        let share = self.share.as_mut()?;
        if share
            .method
            .as_deref()
            .is_some_and(|m| !m.eq_ignore_ascii_case(method))
        {
            return None;
        }
        share.credit += share.share;
        if share.credit < 1.0 {
            return None;
        }
        share.credit -= 1.0;
        Some(Injected::TooManyRequests {
            retry_after: share.retry_after,
        })
    }

    pub(crate) fn is_blocked(&self, chat_id: Option<i64>) -> bool {
        chat_id.is_some_and(|c| self.blocked.contains(&c))
    }

    pub(crate) fn latency(&self) -> Duration {
        self.latency
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(capacity: f64, now: Instant) -> Bucket {
        Bucket {
            tokens: capacity,
            at: now,
        }
    }

    fn refill(&mut self, rate: f64, capacity: f64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(capacity);
        self.at = now;
    }

    /// Whole seconds until one token is back, as Telegram's `retry_after` is in seconds.
    fn retry_after(&self, rate: f64) -> u64 {
        // Float to integer `as` saturates, so a tiny rate cannot wrap around.
        (((1.0 - self.tokens) / rate).ceil() as u64).max(1)
    }
}

pub(crate) struct Limiter {
    limits: RateLimits,
    global: Bucket,
    chats: HashMap<i64, Bucket>,
    /// Until when each chat was told to wait by a `429`; pruned as windows pass.
    flood_until: HashMap<i64, Instant>,
    violations: Violations,
}

impl Limiter {
    pub(crate) fn new(limits: RateLimits) -> Limiter {
        let limits = limits.sanitized();
        Limiter {
            limits,
            global: Bucket::full(limits.global_burst, Instant::now()),
            chats: HashMap::new(),
            flood_until: HashMap::new(),
            violations: Violations {
                limits,
                ..Violations::default()
            },
        }
    }

    /// Every call about a chat passes here first: one inside the chat's `retry_after`
    /// window is counted as a violation.
    pub(crate) fn observe_call(&mut self, chat_id: Option<i64>, now: Instant) {
        let Some(chat_id) = chat_id else { return };
        match self.flood_until.get(&chat_id) {
            Some(until) if now < *until => self.violations.retry_after += 1,
            Some(_) => {
                self.flood_until.remove(&chat_id);
            }
            None => {}
        }
    }

    /// A `429` with `retry_after` was answered for a call about `chat_id`.
    pub(crate) fn told_to_wait(&mut self, chat_id: Option<i64>, retry_after: u64, now: Instant) {
        let Some(chat_id) = chat_id else { return };
        let until = now + Duration::from_secs(retry_after);
        let entry = self.flood_until.entry(chat_id).or_insert(until);
        *entry = (*entry).max(until);
        // Keeps the map bounded by the chats told to wait in the last few seconds.
        if self.flood_until.len() > 100_000 {
            self.flood_until.retain(|_, u| *u > now);
        }
    }

    /// Replaces the limits but keeps the counters, so a load generator can tighten limits
    /// mid-run and still read totals.
    pub(crate) fn set_limits(&mut self, limits: RateLimits) {
        let violations = std::mem::take(&mut self.violations);
        let flood_until = std::mem::take(&mut self.flood_until);
        *self = Limiter::new(limits);
        self.flood_until = flood_until;
        self.violations = Violations {
            limits: self.limits,
            ..violations
        };
    }

    /// Counts one send; returns `Some(retry_after)` when the send must be refused.
    ///
    /// Over-limit calls do not take tokens from the bucket they overran: that way a client
    /// sending at twice the rate scores one violation per allowed message, not an ever-growing
    /// debt. In enforcing mode a refused call takes nothing at all, as it never happened.
    pub(crate) fn check(&mut self, chat_id: i64, now: Instant) -> Option<u64> {
        let l = self.limits;
        self.violations.sends += 1;
        self.global.refill(l.global_rate, l.global_burst, now);
        let chat = self
            .chats
            .entry(chat_id)
            .or_insert_with(|| Bucket::full(l.chat_burst, now));
        chat.refill(l.chat_rate, l.chat_burst, now);

        let chat_ok = chat.tokens >= 1.0;
        let global_ok = self.global.tokens >= 1.0;
        if !chat_ok {
            self.violations.per_chat += 1;
            *self.violations.by_chat.entry(chat_id).or_default() += 1;
        }
        if !global_ok {
            self.violations.global += 1;
        }
        if l.enforce && !(chat_ok && global_ok) {
            let chat_wait = if chat_ok {
                0
            } else {
                chat.retry_after(l.chat_rate)
            };
            let global_wait = if global_ok {
                0
            } else {
                self.global.retry_after(l.global_rate)
            };
            return Some(chat_wait.max(global_wait));
        }
        if chat_ok {
            chat.tokens -= 1.0;
        }
        if global_ok {
            self.global.tokens -= 1.0;
        }
        None
    }

    pub(crate) fn violations(&self) -> Violations {
        self.violations.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_one_per_second() {
        let mut limiter = Limiter::new(RateLimits::default());
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check(1, t0), None);
        }
        assert_eq!(limiter.check(1, t0), None, "not enforced: only counted");
        assert_eq!(limiter.violations().per_chat, 1);
        assert_eq!(limiter.check(1, t0 + Duration::from_millis(1000)), None);
        assert_eq!(limiter.violations().per_chat, 1, "one token refilled");
        assert_eq!(limiter.violations().by_chat.get(&1), Some(&1));
    }

    #[test]
    fn enforced_limit_answers_retry_after() {
        let mut limiter = Limiter::new(RateLimits {
            enforce: true,
            chat_burst: 1.0,
            ..RateLimits::default()
        });
        let t0 = Instant::now();
        assert_eq!(limiter.check(7, t0), None);
        assert_eq!(limiter.check(7, t0), Some(1));
        assert_eq!(limiter.check(8, t0), None, "other chats are independent");
    }

    #[test]
    fn global_limit_counts_across_chats() {
        let mut limiter = Limiter::new(RateLimits {
            global_burst: 2.0,
            ..RateLimits::default()
        });
        let t0 = Instant::now();
        for chat in 0..5 {
            limiter.check(chat, t0);
        }
        let v = limiter.violations();
        assert_eq!((v.sends, v.global, v.per_chat), (5, 3, 0));
    }

    #[test]
    fn a_share_of_calls_is_refused_evenly() {
        let mut faults = Faults::default();
        faults.apply(Fault::TooManyRequestsShare {
            share: 0.25,
            retry_after: 2,
            method: Some("sendMessage".into()),
        });
        let refused: Vec<bool> = (0..8)
            .map(|_| faults.take("sendMessage", Some(1)).is_some())
            .collect();
        assert_eq!(
            refused,
            [false, false, false, true, false, false, false, true]
        );
        assert_eq!(faults.take("getMe", None), None, "other methods pass");
        faults.apply(Fault::Clear);
        assert!((0..8).all(|_| faults.take("sendMessage", Some(1)).is_none()));
    }

    #[test]
    fn calls_inside_a_retry_after_window_are_counted() {
        let mut limiter = Limiter::new(RateLimits::default());
        let t0 = Instant::now();
        limiter.told_to_wait(Some(5), 2, t0);
        limiter.observe_call(Some(5), t0 + Duration::from_millis(1500));
        limiter.observe_call(Some(6), t0 + Duration::from_millis(1500));
        limiter.observe_call(None, t0 + Duration::from_millis(1500));
        limiter.observe_call(Some(5), t0 + Duration::from_millis(2000));
        assert_eq!(limiter.violations().retry_after, 1);
    }

    #[test]
    fn counted_fault_matches_chat_and_method() {
        let mut faults = Faults::default();
        faults.apply(Fault::TooManyRequests {
            times: 1,
            retry_after: 3,
            chat_id: Some(5),
            method: Some("sendMessage".into()),
        });
        assert_eq!(faults.take("sendMessage", Some(6)), None);
        assert_eq!(faults.take("getMe", Some(5)), None);
        assert_eq!(
            faults.take("sendmessage", Some(5)),
            Some(Injected::TooManyRequests { retry_after: 3 })
        );
        assert_eq!(faults.take("sendMessage", Some(5)), None, "used up");
    }
}
