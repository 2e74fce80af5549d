//! The simulator's shared state: every Bot API call is answered and recorded under one lock,
//! so the recording order is the order in which Telegram would have seen the calls.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::faults::{Fault, Faults, Injected, Limiter, RateLimits, Violations};
use crate::methods::{self, Action, ApiError, Method, Params};
use crate::world::World;

/// One Bot API call as the simulator answered it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordedCall {
    /// Starts at 1 and only grows, also across [`crate::TelegramSim::reset`].
    pub seq: u64,
    pub token: String,
    /// The canonical name (`sendMessage`) for known methods, else the name as requested.
    pub method: String,
    /// The decoded parameters; `null` when the body could not be decoded.
    pub params: Value,
    pub chat_id: Option<i64>,
    /// The HTTP status answered (equal to `error_code` for Bot API errors).
    pub status: u16,
    /// Milliseconds since the simulator started.
    pub at_ms: u64,
}

/// Settings fixed at start; faults and limits can still change at run time.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub limits: RateLimits,
    /// Oldest calls are forgotten beyond this, so a long load test does not grow without bound.
    pub max_recorded_calls: usize,
    /// Messages kept per chat for later edits; older ones answer "message to edit not found".
    /// A load test with many chats keeps memory flat with a small number.
    pub kept_messages_per_chat: i64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            limits: RateLimits::default(),
            max_recorded_calls: 200_000,
            kept_messages_per_chat: 1000,
        }
    }
}

/// Sees every Bot API call as it is answered (see [`crate::TelegramSim::on_call`]), with the
/// moment it was answered.
pub type CallHook = Arc<dyn Fn(&RecordedCall, std::time::Instant) + Send + Sync>;

pub(crate) enum Reply {
    Json { status: u16, body: Value },
    BadGateway,
}

impl Reply {
    fn error(e: &ApiError) -> Reply {
        Reply::Json {
            status: e.code,
            body: e.body(),
        }
    }

    pub(crate) fn status(&self) -> u16 {
        match self {
            Reply::Json { status, .. } => *status,
            Reply::BadGateway => 502,
        }
    }
}

pub(crate) struct State {
    inner: Mutex<Inner>,
    pub(crate) changed: Notify,
    epoch: Instant,
    config: SimConfig,
}

struct Inner {
    next_seq: u64,
    calls: VecDeque<RecordedCall>,
    faults: Faults,
    limiter: Limiter,
    world: World,
    hook: Option<CallHook>,
}

impl Inner {
    fn new(config: &SimConfig, next_seq: u64, hook: Option<CallHook>) -> Inner {
        Inner {
            next_seq,
            calls: VecDeque::new(),
            faults: Faults::default(),
            limiter: Limiter::new(config.limits),
            world: World::new(config.kept_messages_per_chat),
            hook,
        }
    }

    fn respond(&mut self, token: &str, method: Option<Method>, p: &Params, now: Instant) -> Reply {
        let Some(method) = method else {
            return Reply::error(&ApiError::new(404, "Not Found: method not found"));
        };
        let chat_id = methods::chat_id(p);
        self.limiter.observe_call(chat_id, now);
        match self.faults.take(method.name(), chat_id) {
            Some(Injected::TooManyRequests { retry_after }) => {
                self.limiter.told_to_wait(chat_id, retry_after, now);
                return Reply::error(&ApiError::too_many_requests(retry_after));
            }
            Some(Injected::ServerError) => {
                return Reply::error(&ApiError::new(500, "Internal Server Error"))
            }
            Some(Injected::BadGateway) => return Reply::BadGateway,
            None => {}
        }
        if self.faults.is_blocked(chat_id) {
            return Reply::error(&ApiError::new(
                403,
                "Forbidden: bot was blocked by the user",
            ));
        }
        let result = methods::parse(method, p).and_then(|action| {
            if let Action::Send { chat_id, .. } = action {
                if let Some(retry_after) = self.limiter.check(chat_id, now) {
                    self.limiter.told_to_wait(Some(chat_id), retry_after, now);
                    return Err(ApiError::too_many_requests(retry_after));
                }
            }
            self.world.apply(token, action, unix_now())
        });
        match result {
            Ok(body) => Reply::Json { status: 200, body },
            Err(e) => Reply::error(&e),
        }
    }
}

impl State {
    pub(crate) fn new(config: SimConfig) -> State {
        State {
            inner: Mutex::new(Inner::new(&config, 1, None)),
            changed: Notify::new(),
            epoch: Instant::now(),
            config,
        }
    }

    /// Nothing in here can leave the state half-updated, so a poisoned lock is still usable.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Answers one Bot API call; `params` is the decoding error when the body was unusable.
    pub(crate) fn bot_call(
        &self,
        token: &str,
        method_name: &str,
        params: Result<Params, ApiError>,
    ) -> Reply {
        let method = Method::parse(method_name);
        let mut inner = self.lock();
        // Read under the lock, so times follow `seq` and the rate limiter never goes back.
        let now = Instant::now();
        let (reply, params, chat_id) = match params {
            Ok(p) => {
                let reply = inner.respond(token, method, &p, now);
                let chat_id = methods::chat_id(&p);
                (reply, Value::Object(p), chat_id)
            }
            Err(e) => (Reply::error(&e), Value::Null, None),
        };
        let seq = inner.next_seq;
        inner.next_seq += 1;
        let call = RecordedCall {
            seq,
            token: token.to_owned(),
            method: method.map_or_else(|| method_name.to_owned(), |m| m.name().to_owned()),
            params,
            chat_id,
            status: reply.status(),
            at_ms: u64::try_from(now.duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX),
        };
        // Under the lock, so a hook sees calls in `seq` order.
        if let Some(hook) = &inner.hook {
            hook(&call, now.into_std());
        }
        inner.calls.push_back(call);
        while inner.calls.len() > self.config.max_recorded_calls {
            inner.calls.pop_front();
        }
        drop(inner);
        self.changed.notify_waiters();
        reply
    }

    pub(crate) fn calls_since(&self, since: u64, chat_id: Option<i64>) -> Vec<RecordedCall> {
        let inner = self.lock();
        let start = inner.calls.partition_point(|c| c.seq <= since);
        inner
            .calls
            .range(start..)
            .filter(|c| chat_id.is_none() || c.chat_id == chat_id)
            .cloned()
            .collect()
    }

    pub(crate) fn apply(&self, fault: Fault) {
        tracing::info!(?fault, "Fault injected.");
        let mut inner = self.lock();
        match fault {
            Fault::Limits(limits) => inner.limiter.set_limits(limits),
            other => inner.faults.apply(other),
        }
    }

    pub(crate) fn set_hook(&self, hook: Option<CallHook>) {
        self.lock().hook = hook;
    }

    pub(crate) fn latency(&self) -> Duration {
        self.lock().faults.latency()
    }

    pub(crate) fn violations(&self) -> Violations {
        self.lock().limiter.violations()
    }

    /// Forgets calls, messages, faults and counters; `seq` keeps growing so that a poller
    /// reading `calls?since=N` in another process never misses calls made after a reset.
    pub(crate) fn reset(&self) {
        let mut inner = self.lock();
        let next_seq = inner.next_seq;
        let hook = inner.hook.take();
        *inner = Inner::new(&self.config, next_seq, hook);
        drop(inner);
        tracing::info!("Simulator reset.");
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
