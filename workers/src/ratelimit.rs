//! Per-user rate limits, shared by every worker copy through Redis (GCRA, see
//! `shared::gcra`).

use redis::aio::ConnectionManager;
pub use shared::gcra::{Gcra, Rate};
use std::time::Duration;

/// The per-user limit classes. Every message and button press counts against `Messages`;
/// expensive actions (creating an invoice) also against the stricter `Expensive`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitClass {
    Messages,
    Expensive,
}

impl LimitClass {
    pub fn label(self) -> &'static str {
        match self {
            LimitClass::Messages => "messages",
            LimitClass::Expensive => "expensive",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Refused; `notify` is true for the first refusal in a window, when the user is told
    /// to slow down. Later ones are dropped silently.
    Limited {
        notify: bool,
        retry_in: Duration,
    },
}

/// Per-user limits shared by every worker.
#[derive(Clone)]
pub struct UserLimiter {
    gcra: Gcra,
    conn: ConnectionManager,
    keys: shared::streams::Keys,
    limits: crate::settings::RateLimits,
}

impl UserLimiter {
    pub fn new(
        conn: ConnectionManager,
        keys: shared::streams::Keys,
        limits: crate::settings::RateLimits,
    ) -> Self {
        Self {
            gcra: Gcra::default(),
            conn,
            keys,
            limits,
        }
    }

    pub async fn check(&self, user_id: i64, class: LimitClass) -> redis::RedisResult<Decision> {
        let l = match class {
            LimitClass::Messages => self.limits.messages,
            LimitClass::Expensive => self.limits.expensive,
        };
        let label = class.label();
        let key = self.keys.key(format_args!("rl:{label}:{user_id}"));
        let mut conn = self.conn.clone();
        let rate = Rate::per_period(l.rate, l.period, l.burst);
        let Some(retry_in) = self.gcra.acquire(&mut conn, &[(&key, rate)]).await? else {
            return Ok(Decision::Allowed);
        };
        let warned = self.keys.key(format_args!("rl:{label}:warned:{user_id}"));
        let notify = self.gcra.warn_once(&mut conn, &warned, l.period).await?;
        Ok(Decision::Limited { notify, retry_in })
    }
}
