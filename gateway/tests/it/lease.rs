//! The single-active lease, against a real Redis. Timings use short ttls so the tests are
//! quick; every bound has slack for a loaded machine but still fails for a broken lease (one
//! that never takes over, or takes over while the holder still renews).

use gateway::lease::{HeldLease, Lease, LeaseError, LeaseSettings, Released};
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use std::time::Duration;
use testkit::TestRedis;
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout, Instant};
use tokio_util::sync::CancellationToken;

const SHORT: LeaseTimes = LeaseTimes {
    ttl: 600,
    renew_every: 150,
    poll_every: 50,
    safety_margin: 150,
};

/// Timings in milliseconds.
#[derive(Clone, Copy)]
struct LeaseTimes {
    ttl: u64,
    renew_every: u64,
    poll_every: u64,
    safety_margin: u64,
}

impl LeaseTimes {
    fn settings(self, key: &str) -> LeaseSettings {
        LeaseSettings {
            key: key.to_owned(),
            ttl: ms(self.ttl),
            renew_every: ms(self.renew_every),
            poll_every: ms(self.poll_every),
            safety_margin: ms(self.safety_margin),
        }
    }
}

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

struct Setup {
    redis: TestRedis,
    key: String,
    shutdown: CancellationToken,
}

impl Setup {
    async fn start() -> Self {
        crate::init_tracing();
        Self {
            redis: TestRedis::start().await.unwrap(),
            key: testkit::unique_name("gateway_lease"),
            shutdown: CancellationToken::new(),
        }
    }

    /// A contender with its own connection, as a separate process would have. Short
    /// timeouts, so a dead Redis shows up as errors rather than hangs.
    async fn contender(&self, times: LeaseTimes) -> Lease {
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(ms(300)))
            .set_connection_timeout(Some(ms(300)))
            .set_number_of_retries(1)
            .set_max_delay(ms(100));
        let client = redis::Client::open(self.redis.url()).unwrap();
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .unwrap();
        Lease::new(conn, times.settings(&self.key)).unwrap()
    }

    async fn admin(&self) -> MultiplexedConnection {
        self.redis.connection().await.unwrap()
    }

    async fn holder(&self) -> Option<String> {
        redis::cmd("GET")
            .arg(&self.key)
            .query_async(&mut self.admin().await)
            .await
            .unwrap()
    }

    async fn pttl(&self, admin: &mut MultiplexedConnection) -> i64 {
        redis::cmd("PTTL")
            .arg(&self.key)
            .query_async(admin)
            .await
            .unwrap()
    }

    async fn acquire_now(&self, lease: &Lease) -> HeldLease {
        timeout(ms(2000), lease.acquire(&self.shutdown))
            .await
            .expect("a free lease is acquired at once")
            .unwrap()
            .expect("no shutdown")
    }

    fn standby(&self, lease: Lease) -> JoinHandle<Result<Option<HeldLease>, LeaseError>> {
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move { lease.acquire(&shutdown).await })
    }
}

/// Asserts the standby is still waiting after `wait`, and returns its handle for later.
async fn still_standby(
    mut standby: JoinHandle<Result<Option<HeldLease>, LeaseError>>,
    wait: Duration,
) -> JoinHandle<Result<Option<HeldLease>, LeaseError>> {
    if let Ok(joined) = timeout(wait, &mut standby).await {
        panic!("the standby stopped waiting while the lease was held: {joined:?}");
    }
    standby
}

async fn takes_over(
    standby: JoinHandle<Result<Option<HeldLease>, LeaseError>>,
    within: Duration,
) -> HeldLease {
    timeout(within, standby)
        .await
        .expect("the standby takes over")
        .unwrap()
        .unwrap()
        .expect("no shutdown")
}

#[tokio::test]
async fn of_two_contenders_one_is_active_and_the_other_waits_while_it_renews() {
    let s = Setup::start().await;
    let mut a = s.standby(s.contender(SHORT).await);
    let mut b = s.standby(s.contender(SHORT).await);

    let (active, standby) = timeout(ms(2000), async {
        tokio::select! {
            joined = &mut a => (joined, b),
            joined = &mut b => (joined, a),
        }
    })
    .await
    .expect("one contender acquires at once");
    let active = active.unwrap().unwrap().expect("no shutdown");
    assert_eq!(active.fencing_token(), 1);

    // Five ttls: the lease would have expired several times over without renewals.
    let standby = still_standby(standby, ms(5 * SHORT.ttl)).await;
    assert!(!active.lost().is_cancelled());
    assert_eq!(s.holder().await.as_deref(), Some(active.holder()));

    s.shutdown.cancel();
    let stopped = timeout(ms(1000), standby)
        .await
        .expect("standby stops on shutdown");
    assert!(stopped.unwrap().unwrap().is_none());
    assert_eq!(active.release().await.unwrap(), Released::Deleted);
    assert_eq!(s.holder().await, None);
}

#[tokio::test]
async fn standby_takes_over_within_ttl_and_poll_after_the_active_copy_dies() {
    let s = Setup::start().await;
    let held = s.acquire_now(&s.contender(SHORT).await).await;
    let first_token = held.fencing_token();
    // The active copy as a task: aborting it drops the lease unreleased, as a crash would.
    let active = tokio::spawn(async move {
        let _held = held;
        std::future::pending::<()>().await;
    });
    let standby = s.standby(s.contender(SHORT).await);
    let standby = still_standby(standby, ms(2 * SHORT.ttl)).await;

    active.abort();
    let _ = active.await;
    let died = Instant::now();
    let successor = takes_over(standby, ms(5000)).await;
    let waited = died.elapsed();

    assert!(
        waited <= ms(SHORT.ttl + SHORT.poll_every + 500),
        "took {waited:?} to take over"
    );
    // The lease outlived the crash by at least ttl minus one renewal interval: anything much
    // faster means the standby did not wait for it to expire.
    assert!(
        waited >= ms(SHORT.ttl - SHORT.renew_every - 200),
        "took over after {waited:?}, before the lease could have expired"
    );
    assert_eq!(successor.fencing_token(), first_token + 1);
    assert_eq!(s.holder().await.as_deref(), Some(successor.holder()));
}

#[tokio::test]
async fn graceful_release_hands_over_long_before_the_ttl() {
    let times = LeaseTimes {
        ttl: 30_000,
        renew_every: 5_000,
        poll_every: 100,
        safety_margin: 5_000,
    };
    let s = Setup::start().await;
    let held = s.acquire_now(&s.contender(times).await).await;
    let lost = held.lost();
    let standby = s.standby(s.contender(times).await);
    let standby = still_standby(standby, ms(500)).await;

    let released_at = Instant::now();
    assert_eq!(held.release().await.unwrap(), Released::Deleted);
    assert!(
        lost.is_cancelled(),
        "work guarded by a released lease must stop"
    );
    let successor = takes_over(standby, ms(5000)).await;
    let waited = released_at.elapsed();

    assert!(waited < ms(2000), "took {waited:?} after a release");
    assert_eq!(successor.fencing_token(), 2);
    assert_eq!(s.holder().await.as_deref(), Some(successor.holder()));
}

#[tokio::test]
async fn lost_fires_at_the_next_renewal_when_another_holder_overwrites_the_key() {
    // A long ttl, so only the renewal (every 200 ms) can notice within the bound below; the
    // deadline would fire only after 2.4 s.
    let times = LeaseTimes {
        ttl: 3_000,
        renew_every: 200,
        poll_every: 100,
        safety_margin: 600,
    };
    let s = Setup::start().await;
    let held = s.acquire_now(&s.contender(times).await).await;
    let mut admin = s.admin().await;

    let () = redis::cmd("SET")
        .arg(&s.key)
        .arg("intruder")
        .arg("PX")
        .arg(60_000)
        .query_async(&mut admin)
        .await
        .unwrap();
    let overwritten = Instant::now();
    timeout(ms(1500), held.lost().cancelled())
        .await
        .expect("lost fires at the next renewal");
    let noticed = overwritten.elapsed();
    assert!(
        noticed <= ms(times.renew_every + 500),
        "noticed after {noticed:?}"
    );

    // The loser neither extended nor deleted the other holder's key.
    assert_eq!(s.holder().await.as_deref(), Some("intruder"));
    assert!(s.pttl(&mut admin).await > 50_000);
    assert_eq!(held.release().await.unwrap(), Released::NotHeld);
    assert_eq!(s.holder().await.as_deref(), Some("intruder"));
}

#[tokio::test]
async fn release_leaves_a_successors_lease_alone() {
    let times = LeaseTimes {
        ttl: 30_000,
        renew_every: 5_000,
        poll_every: 100,
        safety_margin: 5_000,
    };
    let s = Setup::start().await;
    let stale = s.acquire_now(&s.contender(times).await).await;
    // As if the lease had expired while its holder was frozen, and a standby took over.
    let () = redis::cmd("DEL")
        .arg(&s.key)
        .query_async(&mut s.admin().await)
        .await
        .unwrap();
    let successor = s.acquire_now(&s.contender(times).await).await;
    assert_eq!(successor.fencing_token(), stale.fencing_token() + 1);

    assert_eq!(stale.release().await.unwrap(), Released::NotHeld);
    assert_eq!(s.holder().await.as_deref(), Some(successor.holder()));
    assert!(!successor.lost().is_cancelled());
}

#[tokio::test]
async fn lost_fires_before_the_lease_could_expire_when_redis_goes_away() {
    let times = LeaseTimes {
        ttl: 2_000,
        renew_every: 300,
        poll_every: 100,
        safety_margin: 400,
    };
    let mut s = Setup::start().await;
    let held = s.acquire_now(&s.contender(times).await).await;
    let lost = held.lost();
    let mut admin = s.admin().await;
    sleep(ms(3 * times.renew_every)).await;

    // Catch a renewal that has just landed, then kill Redis: the key would have expired at
    // `expires` at the earliest, so the holder must have given up by then.
    let expires = loop {
        let asked = Instant::now();
        let pttl = s.pttl(&mut admin).await;
        if pttl > i64::try_from(times.ttl).unwrap() - 60 {
            break asked + ms(u64::try_from(pttl).unwrap());
        }
        assert!(!lost.is_cancelled());
        sleep(ms(5)).await;
    };
    s.redis.stop().await;

    timeout(ms(5000), lost.cancelled())
        .await
        .expect("lost fires once renewals cannot reach Redis");
    let lost_at = Instant::now();
    assert!(
        lost_at < expires,
        "lost fired {:?} after the lease could have expired",
        lost_at - expires
    );
    // Renewal errors are retried until the deadline (expiry minus the safety margin), not
    // treated as a loss at the first failure.
    assert!(
        lost_at + ms(times.safety_margin + 300) >= expires,
        "lost fired {:?} before the expiry, well ahead of the deadline",
        expires - lost_at
    );
    drop(held);
}

#[tokio::test]
async fn a_redis_stall_shorter_than_the_deadline_keeps_the_lease() {
    let times = LeaseTimes {
        ttl: 2_000,
        renew_every: 300,
        poll_every: 100,
        safety_margin: 400,
    };
    let s = Setup::start().await;
    let held = s.acquire_now(&s.contender(times).await).await;

    // Renewals time out (300 ms response timeout) during the pause and must be retried.
    let () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(800)
        .arg("ALL")
        .query_async(&mut s.admin().await)
        .await
        .unwrap();
    sleep(ms(2 * times.ttl)).await;

    assert!(!held.lost().is_cancelled());
    assert_eq!(s.holder().await.as_deref(), Some(held.holder()));
    assert_eq!(held.release().await.unwrap(), Released::Deleted);
}

#[tokio::test]
async fn standby_waits_out_a_redis_outage() {
    let mut s = Setup::start().await;
    let lease = s.contender(SHORT).await;
    s.redis.stop().await;

    let standby = s.standby(lease);
    let standby = still_standby(standby, ms(1000)).await;
    s.redis.resume().await.unwrap();
    let held = takes_over(standby, ms(5000)).await;
    assert_eq!(s.holder().await.as_deref(), Some(held.holder()));
}
