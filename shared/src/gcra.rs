//! Rate limits shared by every process, enforced atomically in Redis with GCRA (the generic
//! cell rate algorithm): one key per subject holding its "theoretical arrival time". The same
//! script serves the per-user limits and the senders' Telegram limits.

use redis::aio::ConnectionManager;
use std::time::Duration;

/// The GCRA step as a Lua function, for every script that takes a rate cell as one of its
/// steps: `gcra(keys, args)` acquires one cell on every key, or on none. `args` holds, per
/// key, the emission interval and the burst tolerance in microseconds. Returns 0 when
/// acquired, else microseconds until it would be. Redis's own clock is used so that every
/// process agrees on "now".
#[macro_export]
macro_rules! gcra_lua_function {
    () => {
        r"
local function gcra(keys, args)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local wait = 0
  local tats = {}
  for i, key in ipairs(keys) do
    local interval = tonumber(args[2 * i - 1])
    local tolerance = tonumber(args[2 * i])
    local tat = tonumber(redis.call('GET', key) or '0')
    if tat < now then tat = now end
    tats[i] = tat + interval
    local w = tat - tolerance - now
    if w > wait then wait = w end
  end
  if wait > 0 then return wait end
  for i, key in ipairs(keys) do
    redis.call('SET', key, tats[i], 'PX', math.ceil((tats[i] - now) / 1000) + 1)
  end
  return 0
end
"
    };
}

const GCRA: &str = concat!(gcra_lua_function!(), "return gcra(KEYS, ARGV)");

/// Sets the warned marker unless present: true means "tell the user to slow down".
const WARN_ONCE: &str = r"
return redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) and 1 or 0
";

/// A rate: `rate` cells per `period`, with up to `burst` at once.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub interval: Duration,
    pub burst: u32,
}

impl Rate {
    pub fn per_period(rate: u32, period: Duration, burst: u32) -> Self {
        Self {
            interval: period / rate.max(1),
            burst: burst.max(1),
        }
    }

    pub fn per_second(rate: f64, burst: u32) -> Self {
        Self {
            interval: Duration::from_secs_f64(1.0 / rate),
            burst: burst.max(1),
        }
    }

    /// Emission interval and burst tolerance, in microseconds: the script's arguments.
    pub fn args(&self) -> [u64; 2] {
        let interval = u64::try_from(self.interval.as_micros()).unwrap_or(u64::MAX);
        [interval, interval.saturating_mul(u64::from(self.burst - 1))]
    }
}

#[derive(Clone)]
pub struct Gcra {
    acquire: redis::Script,
    warn_once: redis::Script,
}

impl Default for Gcra {
    fn default() -> Self {
        Self {
            acquire: redis::Script::new(GCRA),
            warn_once: redis::Script::new(WARN_ONCE),
        }
    }
}

impl Gcra {
    /// `Ok(None)` when acquired on every key; `Ok(Some(wait))` otherwise (nothing taken).
    pub async fn acquire(
        &self,
        conn: &mut ConnectionManager,
        keys: &[(&str, Rate)],
    ) -> redis::RedisResult<Option<Duration>> {
        let mut invocation = self.acquire.prepare_invoke();
        for (key, rate) in keys {
            invocation.key(*key);
            let [interval, tolerance] = rate.args();
            invocation.arg(interval).arg(tolerance);
        }
        let wait_us: u64 = invocation.invoke_async(conn).await?;
        Ok((wait_us > 0).then(|| Duration::from_micros(wait_us)))
    }

    /// True the first time within `window`: at most one "slow down" per window.
    pub async fn warn_once(
        &self,
        conn: &mut ConnectionManager,
        key: &str,
        window: Duration,
    ) -> redis::RedisResult<bool> {
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        let set: u8 = self
            .warn_once
            .key(key)
            .arg(window_ms)
            .invoke_async(conn)
            .await?;
        Ok(set == 1)
    }
}
