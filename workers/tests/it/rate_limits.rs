use shared::config::{Env, RedisSettings};
use shared::streams::Keys;
use std::time::Duration;
use testkit::TestRedis;
use workers::ratelimit::{Decision, LimitClass, UserLimiter};

async fn limiter(redis: &TestRedis, vars: &[(&str, &str)]) -> UserLimiter {
    let mut env = vec![
        ("DATABASE_URL", "postgres://unused"),
        ("TELEGRAM_BOT_TOKEN", "1:t"),
    ];
    env.extend_from_slice(vars);
    let settings = workers::Settings::from_env(&Env::from_pairs(env), None).unwrap();
    let conn = shared::redis_conn::connect(&RedisSettings::for_url(redis.url(), "x")).unwrap();
    UserLimiter::new(
        conn,
        Keys::new(testkit::unique_name("rl")),
        settings.rate_limits,
    )
}

#[tokio::test]
async fn the_expensive_class_is_stricter_and_separate() {
    let redis = TestRedis::start().await.unwrap();
    let limiter = limiter(
        &redis,
        &[
            ("RATE_LIMIT_PER_MINUTE", "60"),
            ("RATE_LIMIT_BURST", "10"),
            ("RATE_LIMIT_EXPENSIVE_PER_MINUTE", "1"),
            ("RATE_LIMIT_EXPENSIVE_BURST", "2"),
        ],
    )
    .await;
    let mut decisions = Vec::new();
    for _ in 0..4 {
        decisions.push(limiter.check(7, LimitClass::Expensive).await.unwrap());
    }
    assert_eq!(decisions[0], Decision::Allowed);
    assert_eq!(decisions[1], Decision::Allowed);
    assert!(
        matches!(decisions[2], Decision::Limited { notify: true, retry_in } if retry_in > Duration::from_secs(50))
    );
    assert!(matches!(
        decisions[3],
        Decision::Limited { notify: false, .. }
    ));
    // The messages class of the same user and the expensive class of another are untouched.
    assert_eq!(
        limiter.check(7, LimitClass::Messages).await.unwrap(),
        Decision::Allowed
    );
    assert_eq!(
        limiter.check(8, LimitClass::Expensive).await.unwrap(),
        Decision::Allowed
    );
}

#[tokio::test]
async fn concurrent_checks_never_exceed_the_burst() {
    let redis = TestRedis::start().await.unwrap();
    let limiter = limiter(
        &redis,
        &[("RATE_LIMIT_PER_MINUTE", "1"), ("RATE_LIMIT_BURST", "5")],
    )
    .await;
    let checks = (0..50).map(|_| {
        let l = limiter.clone();
        tokio::spawn(async move { l.check(9, LimitClass::Messages).await.unwrap() })
    });
    let mut allowed = 0;
    let mut notified = 0;
    for c in checks {
        match c.await.unwrap() {
            Decision::Allowed => allowed += 1,
            Decision::Limited { notify: true, .. } => notified += 1,
            Decision::Limited { .. } => {}
        }
    }
    assert_eq!((allowed, notified), (5, 1));
}
