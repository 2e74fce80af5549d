use crate::helpers::*;
use std::time::{Duration, Instant};

#[tokio::test]
async fn redis_outage_is_503_and_the_ingress_recovers_without_restart() {
    let mut app = spawn_app().await;
    assert_eq!(app.get("/readyz").await.status(), 200);
    assert_eq!(
        app.post_update(start_update(1, 7).to_string())
            .await
            .status(),
        200
    );

    app.redis.stop().await;

    let refused = app.post_update(start_update(2, 7).to_string()).await;
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_eq!(app.get("/readyz").await.status(), 503);
    assert_eq!(app.get("/healthz").await.status(), 200);

    app.redis.resume().await.unwrap();

    // The restarted server is empty (no persistence), so what it holds came after the outage.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = app
            .post_update(start_update(3, 7).to_string())
            .await
            .status();
        if status == 200 {
            break;
        }
        assert_eq!(status, 503);
        assert!(Instant::now() < deadline, "ingress did not recover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.get("/readyz").await.status(), 200);
    let ids: Vec<i64> = app.enqueued().await.iter().map(|e| e.update_id.0).collect();
    assert_eq!(ids, vec![3]);
}

#[tokio::test]
async fn ingress_starts_while_redis_is_down() {
    let mut app = spawn_app().await;
    app.redis.stop().await;
    let second = spawn_app_with(|s| s.redis.url = app.redis.url()).await;

    assert_eq!(second.get("/healthz").await.status(), 200);
    assert_eq!(second.get("/readyz").await.status(), 503);
}
