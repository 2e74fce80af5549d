use crate::helpers::*;
use std::time::Duration;

#[tokio::test]
async fn idle_keep_alive_connections_do_not_hold_up_shutdown() {
    let app = spawn_app().await;
    // Leaves a pooled keep-alive connection open.
    assert_eq!(app.get("/healthz").await.status(), 200);

    app.stop_within(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn in_flight_request_finishes_and_new_connections_are_refused() {
    let app = spawn_app().await;
    let body = start_update(77, 3).to_string();
    let (first, rest) = body.split_at(10);
    let mut conn = RawConn::open(app.addr).await;
    conn.send(format!("{}{first}", webhook_head(Some(body.len()))).as_bytes())
        .await;
    // Let the server start handling the request before shutdown begins.
    tokio::time::sleep(Duration::from_millis(100)).await;

    app.shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(tokio::net::TcpStream::connect(app.addr).await.is_err());
    conn.send(rest.as_bytes()).await;
    let (status, _) = conn.response().await;

    assert_eq!(status, 200);
    assert_eq!(app.enqueued().await.len(), 1);
    app.stop_within(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn grace_period_is_a_hard_deadline() {
    let app = spawn_app_with(|s| s.shutdown_grace = Duration::from_millis(300)).await;
    let mut conn = RawConn::open(app.addr).await;
    // A request that never completes.
    conn.send(webhook_head(Some(100)).as_bytes()).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    let took = app.stop_within(Duration::from_secs(2)).await;

    assert!(took >= Duration::from_millis(300), "{took:?}");
}
