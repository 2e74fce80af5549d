use crate::helpers::*;
use shared::event::{EventKind, InboundEvent, TelegramUser, UpdateId};

#[tokio::test]
async fn valid_update_is_enqueued_once_before_the_200() {
    let app = spawn_app().await;

    let response = app.post_update(start_update(811, 123).to_string()).await;

    assert_eq!(response.status(), 200);
    let expected = InboundEvent {
        update_id: UpdateId(811),
        from: TelegramUser {
            id: 123,
            username: None,
            first_name: "Ana".into(),
            last_name: None,
            language_code: Some("pt".into()),
        },
        kind: EventKind::Command {
            chat_id: 123,
            message_id: 42,
            name: "start".into(),
            args: "ref_7".into(),
        },
    };
    assert_eq!(app.enqueued().await, vec![expected]);
}

#[tokio::test]
async fn wrong_or_missing_secret_is_401_and_enqueues_nothing() {
    let app = spawn_app().await;
    let body = start_update(1, 5).to_string();

    let wrong = app
        .client
        .post(app.url("/telegram/webhook"))
        .header(SECRET_HEADER, "test_secret-124")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let missing = app
        .client
        .post(app.url("/telegram/webhook"))
        .body(body)
        .send()
        .await
        .unwrap();

    assert_eq!(wrong.status(), 401);
    assert!(!wrong.text().await.unwrap().contains(SECRET));
    assert_eq!(missing.status(), 401);
    assert!(app.enqueued().await.is_empty());
}

#[tokio::test]
async fn bodies_that_are_not_updates_are_400_without_echo() {
    let app = spawn_app().await;

    for body in [
        "{not json",
        "[]",
        r#"{"update_id": "echo-me-not"}"#,
        r#"{"update_id": 1, "message": {"text": "echo-me-not"}}"#,
        "",
    ] {
        let response = app.post_update(body).await;
        assert_eq!(response.status(), 400, "{body:?}");
        let text = response.text().await.unwrap();
        assert!(!text.contains("echo-me-not"), "{text}");
        assert!(!text.is_empty() && text.len() < 64, "{text}");
    }
    assert!(app.enqueued().await.is_empty());
}

#[tokio::test]
async fn ignored_update_kinds_are_200_and_not_enqueued() {
    let app = spawn_app().await;

    let edited = serde_json::json!({"update_id": 5, "edited_message": {"message_id": 1}});
    let sticker = serde_json::json!({"update_id": 6, "message": {"message_id": 1, "date": 1,
        "chat": {"id": 1, "type": "private"}, "from": {"id": 1, "first_name": "x"}, "sticker": {}}});
    for update in [edited, sticker] {
        assert_eq!(app.post_update(update.to_string()).await.status(), 200);
    }

    assert!(app.enqueued().await.is_empty());
    let metrics = app.metrics_text().await;
    assert!(metrics.contains(r#"ingress_updates_ignored_total{kind="edited_message"} 1"#));
    assert!(metrics.contains(r#"ingress_updates_ignored_total{kind="message_without_text"} 1"#));
}

const LIMIT: usize = 1024;

#[tokio::test]
async fn body_at_the_limit_passes_and_one_byte_more_is_413() {
    let app = spawn_app_with(|s| s.max_body_bytes = LIMIT).await;
    let update = start_update(9, 9).to_string();
    // JSON allows trailing whitespace, so padding keeps the update valid.
    let at_limit = format!("{update:<LIMIT$}");
    let over_limit = format!("{update:<0$}", LIMIT + 1);

    let ok = app.post_update(at_limit).await;
    let too_large = app.post_update(over_limit).await;

    assert_eq!(ok.status(), 200);
    assert_eq!(too_large.status(), 413);
    assert_eq!(app.enqueued().await.len(), 1);
}

#[tokio::test]
async fn declared_oversize_is_413_before_the_body_is_sent() {
    let app = spawn_app_with(|s| s.max_body_bytes = LIMIT).await;
    let mut conn = RawConn::open(app.addr).await;

    // Only the head: an answer proves the server did not wait for the body.
    conn.send(webhook_head(Some(10_000_000)).as_bytes()).await;
    let (status, _) = conn.response().await;

    assert_eq!(status, 413);
    assert!(app.enqueued().await.is_empty());
}

#[tokio::test]
async fn chunked_oversize_is_413() {
    let app = spawn_app_with(|s| s.max_body_bytes = LIMIT).await;
    let mut conn = RawConn::open(app.addr).await;
    let chunk = " ".repeat(600);
    let request = format!(
        "{}258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n",
        webhook_head(None)
    );

    conn.send(request.as_bytes()).await;
    let (status, _) = conn.response().await;

    assert_eq!(status, 413);
    assert!(app.enqueued().await.is_empty());
}
