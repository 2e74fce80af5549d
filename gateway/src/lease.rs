//! One active gateway per bot. Two processes on one MTProto session break each other, so the
//! active copy holds a lease in Redis and renews it while healthy; further copies wait as
//! standbys and take over once the lease is released or has expired.
//!
//! Safety rests on one ordering: the holder stops acting (its [`HeldLease::lost`] token fires)
//! strictly before the key can expire in Redis, so a standby can only take over once the old
//! holder has been told to stop. The holder measures from the moment it *sent* its last
//! successful renewal, which is never later than the moment Redis applied it, and subtracts
//! [`LeaseSettings::safety_margin`] for its own timer lateness and the time its tasks need to
//! wind down. A process frozen for longer than that margin (a VM stall) can still overlap;
//! [`HeldLease::fencing_token`] lets logs and metrics tell the two apart.

use redis::aio::ConnectionManager;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::{sleep, sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Takes the lease if nobody holds it and draws the next fencing token in the same step, so a
/// token is never issued without the lease or the other way round. KEYS: lease, fencing
/// counter. ARGV: holder, ttl in ms. Returns `{1, token, ''}` when acquired, else
/// `{0, pttl, current holder}`.
const ACQUIRE: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, redis.call('INCR', KEYS[2]), ''}
end
return {0, redis.call('PTTL', KEYS[1]), redis.call('GET', KEYS[1])}
";

/// Extends the lease only while it is still ours. Returns 1 when renewed, -1 when another
/// holder has it, 0 when it is gone.
const RENEW: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if holder then return -1 end
return 0
";

/// Deletes the lease only while it is still ours: a late release must not free a successor's.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("invalid lease settings: {0}")]
    InvalidSettings(&'static str),
    #[error("a lease command failed in Redis")]
    Redis(#[from] redis::RedisError),
}

/// How the lease is held. The fencing counter lives next to the lease at `<key>:fencing`; on
/// Redis Cluster give `key` a hash tag (`ps:{gateway}:lease`) so both land in one slot.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    pub key: String,
    /// How long the lease outlives its last renewal: the longest a standby waits after the
    /// active copy dies without releasing.
    pub ttl: Duration,
    /// Less than `ttl / 2`, so a failed renewal leaves time for retries.
    pub renew_every: Duration,
    /// How often a standby retries. It also wakes up when the current lease is due to expire,
    /// so this mostly bounds how fast a released lease is noticed.
    pub poll_every: Duration,
    /// The holder gives up this long before the lease could expire in Redis: room for its own
    /// late timers and for its tasks to stop before a standby takes over.
    pub safety_margin: Duration,
}

impl LeaseSettings {
    /// Settings derived from the ttl: renewals every third of it (two chances before the
    /// deadline), a fifth of it as the safety margin, and standbys polling every tenth, so a
    /// release during a rolling deploy is picked up quickly (a poll is one cheap script call).
    pub fn new(key: impl Into<String>, ttl: Duration) -> Self {
        Self {
            key: key.into(),
            ttl,
            renew_every: ttl / 3,
            poll_every: ttl / 10,
            safety_margin: ttl / 5,
        }
    }

    fn validate(&self) -> Result<(), LeaseError> {
        let invalid = |reason| Err(LeaseError::InvalidSettings(reason));
        if self.key.is_empty() {
            return invalid("key is empty");
        }
        if self.ttl < Duration::from_millis(1) {
            return invalid("ttl is under a millisecond, the unit Redis counts in");
        }
        if self.renew_every.is_zero() || self.renew_every >= self.ttl / 2 {
            return invalid("renew_every must be above zero and below ttl / 2");
        }
        if self.safety_margin.is_zero() || self.safety_margin >= self.ttl - self.renew_every {
            return invalid("safety_margin must be above zero and below ttl - renew_every");
        }
        if self.poll_every.is_zero() {
            return invalid("poll_every must be above zero");
        }
        Ok(())
    }

    fn fencing_key(&self) -> String {
        format!("{}:fencing", self.key)
    }

    fn ttl_ms(&self) -> u64 {
        u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX)
    }
}

#[derive(Clone)]
struct Scripts {
    acquire: redis::Script,
    renew: redis::Script,
    release: redis::Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            acquire: redis::Script::new(ACQUIRE),
            renew: redis::Script::new(RENEW),
            release: redis::Script::new(RELEASE),
        }
    }
}

enum Attempt {
    Acquired {
        fencing_token: u64,
    },
    Held {
        by: String,
        expires_in: Option<Duration>,
    },
}

enum Renewal {
    Renewed,
    HeldByOther,
    Gone,
}

#[derive(Debug, Clone, Copy)]
enum LostReason {
    /// Renewals failed until the lease might expire: Redis is unreachable or too slow.
    Deadline,
    /// Another holder wrote the key while we held it.
    TakenOver,
    /// The key vanished (deleted, or Redis restarted without persistence).
    Vanished,
}

impl fmt::Display for LostReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Deadline => "renewal_deadline",
            Self::TakenOver => "taken_over",
            Self::Vanished => "vanished",
        })
    }
}

/// Outcome of [`HeldLease::release`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Released {
    /// The key was ours and is deleted: a standby can take over at once.
    Deleted,
    /// The key was no longer ours (lost or expired) and was left alone.
    NotHeld,
}

/// A contender for the lease. Each [`Lease::acquire`] uses a fresh holder id, so a stale
/// [`HeldLease`] from an earlier acquisition can never renew or release a later one.
pub struct Lease {
    conn: ConnectionManager,
    settings: Arc<LeaseSettings>,
    scripts: Arc<Scripts>,
    /// `hostname/pid`, so an operator reading the key knows which copy is active.
    instance: String,
}

impl Lease {
    pub fn new(conn: ConnectionManager, settings: LeaseSettings) -> Result<Self, LeaseError> {
        settings.validate()?;
        Ok(Self {
            conn,
            settings: Arc::new(settings),
            scripts: Arc::new(Scripts::new()),
            instance: format!("{}/{}", shared::telemetry::hostname(), std::process::id()),
        })
    }

    /// Waits as a standby until the lease is ours, or returns `Ok(None)` once `shutdown` fires.
    /// Redis being unreachable is waited out; only errors that retrying cannot fix (a wrong
    /// key type, a script refused) are returned. Should `shutdown` fire while an attempt is in
    /// flight and that attempt succeed, the lease is left to expire: standbys wait one ttl.
    #[tracing::instrument(skip_all, fields(lease.key = %self.settings.key))]
    pub async fn acquire(
        &self,
        shutdown: &CancellationToken,
    ) -> Result<Option<HeldLease>, LeaseError> {
        let holder = format!("{}/{}", self.instance, uuid::Uuid::new_v4().simple());
        let mut conn = self.conn.clone();
        let mut seen_holder: Option<String> = None;
        let mut failing = false;
        loop {
            let sent = Instant::now();
            let attempt = tokio::select! {
                biased;
                () = shutdown.cancelled() => return Ok(None),
                attempt = self.try_acquire(&mut conn, &holder) => attempt,
            };
            let wait = match attempt {
                Ok(Attempt::Acquired { fencing_token }) => {
                    tracing::info!(
                        lease.holder = %holder,
                        lease.fencing_token = fencing_token,
                        "Lease acquired; this copy is now active."
                    );
                    return Ok(Some(HeldLease::start(
                        self,
                        conn,
                        holder,
                        fencing_token,
                        sent,
                    )));
                }
                Ok(Attempt::Held { by, expires_in }) => {
                    if std::mem::take(&mut failing) {
                        tracing::info!("Redis answers again; still a standby.");
                    }
                    if seen_holder.as_deref() != Some(by.as_str()) {
                        tracing::info!(lease.active = %by, "Lease held by another copy; waiting as a standby.");
                        seen_holder = Some(by);
                    }
                    // Waking when the lease is due to expire makes takeover after a crash take
                    // about one ttl rather than ttl + poll_every.
                    expires_in.map_or(self.settings.poll_every, |e| {
                        e.min(self.settings.poll_every)
                    })
                }
                Err(e) if retryable(&e) => {
                    if !failing {
                        tracing::warn!(
                            error.message = %e,
                            error.cause_chain = ?e,
                            "Redis unavailable to a standby; retrying."
                        );
                        failing = true;
                    }
                    self.settings.poll_every
                }
                Err(e) => return Err(e.into()),
            };
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return Ok(None),
                () = sleep(wait) => {}
            }
        }
    }

    async fn try_acquire(
        &self,
        conn: &mut ConnectionManager,
        holder: &str,
    ) -> redis::RedisResult<Attempt> {
        let (acquired, value, by): (i64, i64, String) = self
            .scripts
            .acquire
            .key(&self.settings.key)
            .key(self.settings.fencing_key())
            .arg(holder)
            .arg(self.settings.ttl_ms())
            .invoke_async(conn)
            .await?;
        Ok(if acquired == 1 {
            Attempt::Acquired {
                // INCR starts at 1 and never goes negative.
                fencing_token: u64::try_from(value).unwrap_or(0),
            }
        } else {
            // The extra millisecond lands the retry just after expiry rather than just before.
            let expires_in = u64::try_from(value)
                .ok()
                .map(|ms| Duration::from_millis(ms + 1));
            Attempt::Held { by, expires_in }
        })
    }
}

/// The lease, held. A background task renews it until [`HeldLease::release`], drop, or loss.
/// Dropping it stops renewing without deleting the key, as a crash would: standbys then wait
/// for the ttl. Call `release` on a graceful stop.
pub struct HeldLease {
    key: String,
    holder: String,
    fencing_token: u64,
    conn: ConnectionManager,
    scripts: Arc<Scripts>,
    lost: CancellationToken,
    stop: CancellationToken,
    renewal: Option<JoinHandle<()>>,
}

impl HeldLease {
    fn start(
        lease: &Lease,
        conn: ConnectionManager,
        holder: String,
        fencing_token: u64,
        acquired_at: Instant,
    ) -> Self {
        let lost = CancellationToken::new();
        let stop = CancellationToken::new();
        // A root span: the renewal outlives the `acquire` call that started it.
        let span = tracing::info_span!(
            parent: None,
            "lease_renewal",
            lease.key = %lease.settings.key,
            lease.fencing_token = fencing_token,
        );
        let renewal = tokio::spawn(
            Renewer {
                conn: conn.clone(),
                scripts: lease.scripts.clone(),
                settings: lease.settings.clone(),
                holder: holder.clone(),
                lost: lost.clone(),
                stop: stop.clone(),
            }
            .run(acquired_at)
            .instrument(span),
        );
        Self {
            key: lease.settings.key.clone(),
            holder,
            fencing_token,
            conn,
            scripts: lease.scripts.clone(),
            lost,
            stop,
            renewal: Some(renewal),
        }
    }

    /// Fires when this copy must stop acting as the active one: a renewal found another holder
    /// or no key, or renewals failed until the lease might expire (fired `safety_margin` before
    /// it could). It also fires on release and on drop, since the lease is then no longer
    /// defended either way.
    pub fn lost(&self) -> CancellationToken {
        self.lost.clone()
    }

    /// Drawn from a counter incremented on every acquisition, so a later holder always has a
    /// larger token: for logs and metrics, and for fencing writes should that be needed.
    pub fn fencing_token(&self) -> u64 {
        self.fencing_token
    }

    /// The value stored in the lease key: `hostname/pid/uuid`.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Graceful stop: stops renewing, then deletes the key if it is still ours, so a standby
    /// can take over at once. Stop the work guarded by the lease before calling this.
    #[tracing::instrument(skip_all, fields(lease.key = %self.key, lease.fencing_token = self.fencing_token))]
    pub async fn release(mut self) -> Result<Released, LeaseError> {
        self.lost.cancel();
        self.stop.cancel();
        // A renewal still in flight could otherwise land after the delete and report a
        // spurious loss.
        if let Some(renewal) = self.renewal.take() {
            let _ = renewal.await;
        }
        let mut conn = self.conn.clone();
        let deleted: i64 = self
            .scripts
            .release
            .key(&self.key)
            .arg(&self.holder)
            .invoke_async(&mut conn)
            .await?;
        if deleted == 1 {
            tracing::info!("Lease released.");
            Ok(Released::Deleted)
        } else {
            tracing::info!("Lease was no longer ours at release; left it alone.");
            Ok(Released::NotHeld)
        }
    }
}

impl Drop for HeldLease {
    fn drop(&mut self) {
        self.lost.cancel();
        self.stop.cancel();
    }
}

impl fmt::Debug for HeldLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeldLease")
            .field("key", &self.key)
            .field("holder", &self.holder)
            .field("fencing_token", &self.fencing_token)
            .field("lost", &self.lost.is_cancelled())
            .finish_non_exhaustive()
    }
}

struct Renewer {
    conn: ConnectionManager,
    scripts: Arc<Scripts>,
    settings: Arc<LeaseSettings>,
    holder: String,
    lost: CancellationToken,
    stop: CancellationToken,
}

impl Renewer {
    async fn run(mut self, acquired_at: Instant) {
        let settings = self.settings.clone();
        let stop = self.stop.clone();
        let valid_for = settings.ttl - settings.safety_margin;
        // Failures are retried at a fixed short interval rather than with backoff: the window
        // is bounded by the deadline, and there is one renewer per bot.
        let retry_every = (settings.renew_every / 4).max(Duration::from_millis(10));
        let mut deadline = acquired_at + valid_for;
        let mut next = acquired_at + settings.renew_every;
        let mut failures = 0u32;
        let reason = loop {
            tokio::select! {
                biased;
                () = stop.cancelled() => return,
                () = sleep_until(deadline) => break LostReason::Deadline,
                () = sleep_until(next) => {}
            }
            let sent = Instant::now();
            // The deadline also bounds a renewal that hangs: the connection's response timeout
            // may well be longer than what is left of the lease.
            let renewal = tokio::select! {
                biased;
                () = stop.cancelled() => return,
                () = sleep_until(deadline) => break LostReason::Deadline,
                renewal = self.renew() => renewal,
            };
            match renewal {
                Ok(Renewal::Renewed) => {
                    deadline = sent + valid_for;
                    next = sent + settings.renew_every;
                    if failures > 0 {
                        tracing::info!(failures, "Lease renewal recovered.");
                        failures = 0;
                    }
                }
                Ok(Renewal::HeldByOther) => break LostReason::TakenOver,
                Ok(Renewal::Gone) => break LostReason::Vanished,
                Err(e) => {
                    if failures == 0 {
                        tracing::warn!(
                            error.message = %e,
                            error.cause_chain = ?e,
                            "Lease renewal failed; retrying until the deadline."
                        );
                    }
                    failures += 1;
                    next = Instant::now() + retry_every;
                }
            }
        };
        self.lost.cancel();
        tracing::warn!(%reason, failures, "Lease lost; this copy must stop acting as the active one.");
    }

    async fn renew(&mut self) -> redis::RedisResult<Renewal> {
        let answer: i64 = self
            .scripts
            .renew
            .key(&self.settings.key)
            .arg(&self.holder)
            .arg(self.settings.ttl_ms())
            .invoke_async(&mut self.conn)
            .await?;
        Ok(match answer {
            1 => Renewal::Renewed,
            0 => Renewal::Gone,
            _ => Renewal::HeldByOther,
        })
    }
}

/// Connection trouble and server states that pass (loading, failover) are worth waiting out;
/// errors in the command itself are not.
fn retryable(e: &redis::RedisError) -> bool {
    !matches!(e.retry_method(), redis::RetryMethod::NoRetry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_settings_are_valid() {
        LeaseSettings::new("k", Duration::from_secs(30))
            .validate()
            .unwrap();
        LeaseSettings::new("k", Duration::from_millis(600))
            .validate()
            .unwrap();
    }

    #[test]
    fn settings_that_would_let_the_lease_lapse_are_refused() {
        let ok = LeaseSettings::new("k", Duration::from_secs(3));
        let cases = [
            LeaseSettings {
                key: String::new(),
                ..ok.clone()
            },
            LeaseSettings {
                renew_every: Duration::from_millis(1500),
                ..ok.clone()
            },
            LeaseSettings {
                renew_every: Duration::ZERO,
                ..ok.clone()
            },
            LeaseSettings {
                safety_margin: Duration::ZERO,
                ..ok.clone()
            },
            LeaseSettings {
                renew_every: Duration::from_millis(1000),
                safety_margin: Duration::from_millis(2000),
                ..ok.clone()
            },
            LeaseSettings {
                poll_every: Duration::ZERO,
                ..ok.clone()
            },
            LeaseSettings {
                ttl: Duration::from_micros(500),
                renew_every: Duration::from_micros(100),
                safety_margin: Duration::from_micros(100),
                ..ok.clone()
            },
        ];
        for case in cases {
            assert!(
                matches!(case.validate(), Err(LeaseError::InvalidSettings(_))),
                "{case:?}"
            );
        }
    }
}
