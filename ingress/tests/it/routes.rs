use crate::helpers::*;
use ingress::TelegramInput;

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405() {
    let app = spawn_app().await;

    assert_eq!(app.get("/nope").await.status(), 404);
    // Payments are not configured in this app (no API key).
    let heleket = app
        .client
        .post(app.url("/heleket/webhook"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(heleket.status(), 404);
    let get_webhook = app.get("/telegram/webhook").await;
    assert_eq!(get_webhook.status(), 405);
    assert_eq!(get_webhook.headers()["allow"], "POST");
    let post_health = app.client.post(app.url("/healthz")).send().await.unwrap();
    assert_eq!(post_health.status(), 405);
    assert_eq!(app.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn mtproto_mode_has_no_webhook_route() {
    let app = spawn_app_with(|s| s.telegram = TelegramInput::MtProto).await;

    let response = app.post_update(start_update(1, 1).to_string()).await;

    assert_eq!(response.status(), 404);
    assert!(app.enqueued().await.is_empty());
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert_eq!(app.get("/readyz").await.status(), 200);
}

#[tokio::test]
async fn metrics_show_every_family_after_traffic() {
    let app = spawn_app().await;
    app.post_update(start_update(1, 1).to_string()).await;
    app.post_update("{}").await;
    app.post_update(serde_json::json!({"update_id": 2, "channel_post": {}}).to_string())
        .await;

    let response = app.get("/metrics").await;

    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = response.text().await.unwrap();
    for line in [
        r#"ingress_requests_total{route="/telegram/webhook",status="200"} 2"#,
        r#"ingress_requests_total{route="/telegram/webhook",status="400"} 1"#,
        "ingress_stream_append_seconds_count 1",
        r#"ingress_updates_ignored_total{kind="channel_post"} 1"#,
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
}

#[tokio::test]
async fn connections_over_the_cap_wait_for_a_free_slot() {
    let app = spawn_app_with(|s| s.max_connections = 1).await;
    let holder = RawConn::open(app.addr).await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;

    let blocked = tokio::time::timeout(std::time::Duration::from_millis(300), app.get("/healthz"));
    assert!(
        blocked.await.is_err(),
        "second connection was served over the cap"
    );

    drop(holder);
    assert_eq!(app.get("/healthz").await.status(), 200);
}
