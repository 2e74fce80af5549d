use crate::helpers::*;
use serde_json::Value;
use shared::heleket::sign::signed_webhook_body;
use shared::heleket::webhook::{verify, WebhookEvent};
use shared::secret::SecretString;
use std::time::{Duration, Instant};
use testkit::heleket::{self as v, with_sign};

const HELEKET_IP: &str = "31.133.220.8";
/// Test requests come from loopback.
const PEER: &str = "127.0.0.1";

/// Payments on, any sender allowed.
async fn payments_app() -> TestApp {
    spawn_app_with(|s| s.heleket = heleket_input(&[], &[])).await
}

/// The §7 vectors as Heleket would post them, including wire bodies whose unicode is escaped
/// (`\uXXXX`) while the sign covers the raw form, and the other way round.
fn genuine_bodies() -> Vec<String> {
    vec![
        with_sign(v::A, v::A_SIGN),
        with_sign(v::B1, v::B1_SIGN),
        with_sign(v::B2, v::B2_SIGN),
        with_sign(v::B2, v::B1_SIGN),
        with_sign(v::B1, v::B2_SIGN),
        with_sign(v::C, v::C_SIGN),
    ]
}

fn key() -> SecretString {
    SecretString::new(v::API_KEY)
}

#[tokio::test]
async fn genuine_webhooks_are_enqueued_once_before_the_200() {
    let app = payments_app().await;
    let bodies = genuine_bodies();

    for (i, body) in bodies.iter().enumerate() {
        let response = app.post_heleket(body.clone(), None).await;
        assert_eq!(response.status(), 200, "{body}");
        // In Redis by the time the 200 arrived, and once.
        assert_eq!(app.payments_enqueued().await.len(), i + 1);
    }

    let expected: Vec<WebhookEvent> = bodies
        .iter()
        .map(|b| verify(b.as_bytes(), &key()).unwrap())
        .collect();
    let enqueued = app.payments_enqueued().await;
    assert_eq!(enqueued, expected);
    assert_eq!(enqueued[0].uuid, "5f1c7a52-0d3e-4c55-9d0e-6b2f8a1e9c01");
    assert_eq!(enqueued[0].amount.as_deref(), Some("10.00"));
    assert_eq!(
        enqueued[0].additional_data.as_deref(),
        Some("https://t.me/example_bot?start=pay")
    );
    for event in &enqueued[1..5] {
        assert_eq!(event.status, "paid_over");
        assert_eq!(
            event.additional_data.as_deref(),
            Some("Пополнение баланса — 500 ₽ 😀")
        );
    }
    assert_eq!(enqueued[5].order_id, "tg_7_3");
    assert!(
        app.enqueued().await.is_empty(),
        "nothing on the updates stream"
    );
}

#[tokio::test]
async fn forged_tampered_or_foreign_signs_are_401_and_enqueue_nothing() {
    let app = payments_app().await;
    let Value::Object(fields) = serde_json::from_str::<Value>(v::A).unwrap() else {
        unreachable!()
    };
    let other_merchant = SecretString::new("another-merchant-payment-key");
    let foreign = String::from_utf8(signed_webhook_body(&fields, &other_merchant, false)).unwrap();
    let genuine = with_sign(v::A, v::A_SIGN);
    let tampered = genuine.replace(r#""amount":"10.00""#, r#""amount":"1000.00""#);

    for body in [
        with_sign(v::A, "0123456789abcdef0123456789abcdef"),
        tampered,
        foreign,
        // Signed over the slash-raw form: what a verifier without `\/` would accept.
        with_sign(v::A, v::A_SIGN_SLASH_RAW),
        v::A.to_owned(),
    ] {
        let response = app.post_heleket(body.clone(), None).await;
        assert_eq!(response.status(), 401, "{body}");
        let text = response.text().await.unwrap();
        assert!(
            !text.contains(v::API_KEY) && !text.contains("10.00"),
            "{text}"
        );
    }

    assert!(app.payments_enqueued().await.is_empty());
    let metrics = app.metrics_text().await;
    assert!(metrics.contains(r#"ingress_webhooks_refused_total{reason="bad sign"} 4"#));
    assert!(metrics.contains(r#"ingress_webhooks_refused_total{reason="missing sign"} 1"#));
    assert!(metrics.contains(r#"ingress_requests_total{route="/heleket/webhook",status="401"} 5"#));
}

#[tokio::test]
async fn bodies_that_are_not_webhooks_are_400() {
    let app = payments_app().await;
    // Correctly signed, but no uuid: not something the payments role could use.
    let fields = r#"{"type":"payment","order_id":"tg_1_1","status":"paid"}"#;
    let sign = shared::heleket::sign::request_sign(fields.as_bytes(), &key());

    for body in [
        "{not json".to_owned(),
        String::new(),
        "[]".to_owned(),
        with_sign(fields, &sign),
    ] {
        let response = app.post_heleket(body.clone(), None).await;
        assert_eq!(response.status(), 400, "{body}");
    }

    assert!(app.payments_enqueued().await.is_empty());
}

#[tokio::test]
async fn disallowed_sender_is_403_and_enqueues_nothing() {
    let app = spawn_app_with(|s| s.heleket = heleket_input(&[HELEKET_IP], &[])).await;

    let plain = app.post_heleket(with_sign(v::A, v::A_SIGN), None).await;
    // Claiming to be Heleket in a header helps nobody who is not behind a trusted proxy.
    let spoofed = app
        .post_heleket(with_sign(v::A, v::A_SIGN), Some(HELEKET_IP))
        .await;

    assert_eq!(plain.status(), 403);
    assert_eq!(spoofed.status(), 403);
    assert!(app.payments_enqueued().await.is_empty());
    let metrics = app.metrics_text().await;
    assert!(metrics.contains(r#"ingress_webhooks_refused_total{reason="sender not allowed"} 2"#));
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
    let app = spawn_app_with(|s| s.heleket = heleket_input(&[HELEKET_IP], &[PEER])).await;
    let body = with_sign(v::A, v::A_SIGN);

    for (forwarded_for, status) in [
        (Some(HELEKET_IP), 200),
        // The proxy appended Heleket's address; what stands left of it was the sender's.
        (Some("198.51.100.9, 31.133.220.8"), 200),
        // The right-most untrusted entry is someone else; a spoofed Heleket entry before it
        // does not count.
        (Some("31.133.220.8, 198.51.100.9"), 403),
        (Some("31.133.220.8, not-an-address"), 403),
        // No header: the proxy itself is the sender, and it is not allowed.
        (None, 403),
    ] {
        let response = app.post_heleket(body.clone(), forwarded_for).await;
        assert_eq!(response.status(), status, "{forwarded_for:?}");
    }

    assert_eq!(app.payments_enqueued().await.len(), 2);
}

#[tokio::test]
async fn body_over_the_limit_is_413() {
    let at_limit = with_sign(v::B1, v::B1_SIGN);
    let limit = at_limit.len();
    let app = spawn_app_with(|s| {
        s.heleket = heleket_input(&[], &[]);
        s.max_body_bytes = limit;
    })
    .await;
    let over_limit = with_sign(v::A, v::A_SIGN);
    assert!(over_limit.len() > limit);

    assert_eq!(app.post_heleket(at_limit, None).await.status(), 200);
    assert_eq!(app.post_heleket(over_limit, None).await.status(), 413);
    assert_eq!(app.payments_enqueued().await.len(), 1);
}

#[tokio::test]
async fn body_limit_comes_before_the_sender_check() {
    let app = spawn_app_with(|s| {
        s.heleket = heleket_input(&[HELEKET_IP], &[]);
        s.max_body_bytes = 64;
    })
    .await;

    let response = app.post_heleket(with_sign(v::A, v::A_SIGN), None).await;

    assert_eq!(response.status(), 413);
}

#[tokio::test]
async fn redis_outage_is_503_and_nothing_is_lost() {
    let mut app = payments_app().await;
    let body = with_sign(v::C, v::C_SIGN);
    app.redis.stop().await;

    let refused = app.post_heleket(body.clone(), None).await;
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");

    app.redis.resume().await.unwrap();
    // Heleket retries until it gets a 2xx; the retry lands once Redis is back.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = app.post_heleket(body.clone(), None).await.status();
        if status == 200 {
            break;
        }
        assert_eq!(status, 503);
        assert!(Instant::now() < deadline, "ingress did not recover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let enqueued = app.payments_enqueued().await;
    assert_eq!(enqueued.len(), 1);
    assert_eq!(enqueued[0].uuid, "9d4c1e2b-7f3a-4b6d-a1c8-2e5f0b7d9a63");
    assert!(app
        .metrics_text()
        .await
        .contains(r#"ingress_webhooks_refused_total{reason="storage unavailable, retry"}"#));
}

#[tokio::test]
async fn without_an_api_key_the_route_is_404_and_telegram_still_works() {
    let app = spawn_app().await;

    let response = app.post_heleket(with_sign(v::A, v::A_SIGN), None).await;

    assert_eq!(response.status(), 404);
    assert_eq!(response.text().await.unwrap(), "payments not configured");
    assert!(app.payments_enqueued().await.is_empty());
    assert_eq!(
        app.post_update(start_update(1, 2).to_string())
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn only_post_is_served() {
    let app = payments_app().await;

    let response = app.get("/heleket/webhook").await;

    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
}
