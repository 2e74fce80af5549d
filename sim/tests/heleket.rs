//! The Heleket simulator over real HTTP: signed requests in, signed webhooks out to a small
//! receiver started here. Signatures are checked with a reference computation written in this
//! file (md5 over base64 of a PHP-style encoding), independent of the code under test.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use md5::{Digest, Md5};
use serde_json::{json, Map, Value};
use shared::secret::SecretString;
use sim::heleket::{ApiFault, HeleketSim, HeleketSimConfig, PayOptions};
use tokio::net::TcpListener;

mod common;
use common::control;

const MERCHANT: &str = "c26b80a8-4bd0-4e5b-8c8a-3e7b1d1f0a11";
const KEY: &str = "TEST-payment-key-not-real-0123456789abcdef";

// ---------------------------------------------------------------------------------------
// Reference computations (independent of the simulator and of `shared`).

fn md5_hex(data: &[u8]) -> String {
    Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// md5(base64(body) + key), the request signature of reference §1.3.
fn reference_sign(body: &[u8]) -> String {
    md5_hex(format!("{}{KEY}", STANDARD.encode(body)).as_bytes())
}

/// PHP `json_encode($v, JSON_UNESCAPED_UNICODE)`: compact, `/` as `\/`, non-ASCII raw.
fn php_encode(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => php_str(s),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(php_encode).collect();
            format!("[{}]", inner.join(","))
        }
        Value::Object(map) if map.is_empty() => "[]".into(),
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}:{}", php_str(k), php_encode(v)))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
    }
}

fn php_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether `sign` inside the body is md5(base64(PHP encoding of the other fields) + key), the
/// check Heleket's PHP SDK does.
fn sign_verifies(raw: &[u8], key: &str) -> bool {
    let Ok(Value::Object(mut fields)) = serde_json::from_slice::<Value>(raw) else {
        return false;
    };
    let Some(Value::String(sign)) = fields.shift_remove("sign") else {
        return false;
    };
    let encoded = php_encode(&Value::Object(fields));
    sign == md5_hex(format!("{}{key}", STANDARD.encode(encoded)).as_bytes())
}

/// Parses a webhook body (keys in wire order), checks its `sign` and that the wire body
/// itself is the PHP encoding with `sign` last. Returns the fields without `sign`.
fn verify_webhook(raw: &[u8]) -> Map<String, Value> {
    let text = std::str::from_utf8(raw).expect("webhook body is UTF-8");
    let Ok(Value::Object(mut fields)) = serde_json::from_str::<Value>(text) else {
        panic!("webhook body is not a JSON object: {text}");
    };
    assert_eq!(
        php_encode(&Value::Object(fields.clone())),
        text,
        "wire body is PHP-encoded"
    );
    assert_eq!(fields.keys().next_back().map(String::as_str), Some("sign"));
    assert!(sign_verifies(raw, KEY), "webhook sign for {text}");
    fields.shift_remove("sign");
    fields
}

// ---------------------------------------------------------------------------------------
// Harness.

fn config() -> HeleketSimConfig {
    let mut config = HeleketSimConfig::new(MERCHANT, SecretString::new(KEY));
    config.expiry_tick = Duration::from_millis(20);
    config.webhook_backoff = Duration::from_millis(10);
    config
}

async fn start() -> HeleketSim {
    start_with(config()).await
}

async fn start_with(config: HeleketSimConfig) -> HeleketSim {
    HeleketSim::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap()
}

/// POSTs exactly `body` with the given headers.
async fn post_raw(
    sim: &HeleketSim,
    path: &str,
    body: &[u8],
    merchant: Option<&str>,
    sign: Option<&str>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}{path}", sim.api_url()))
        .header("Content-Type", "application/json")
        .body(body.to_vec());
    if let Some(merchant) = merchant {
        request = request.header("merchant", merchant);
    }
    if let Some(sign) = sign {
        request = request.header("sign", sign);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// A correctly signed API call.
async fn api(sim: &HeleketSim, path: &str, body: &Value) -> (u16, Value) {
    let bytes = serde_json::to_vec(body).unwrap();
    post_raw(
        sim,
        path,
        &bytes,
        Some(MERCHANT),
        Some(&reference_sign(&bytes)),
    )
    .await
}

async fn create(sim: &HeleketSim, body: Value) -> Value {
    let (status, reply) = api(sim, "/v1/payment", &body).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["state"], 0);
    reply["result"].clone()
}

async fn info(sim: &HeleketSim, body: Value) -> (u16, Value) {
    api(sim, "/v1/payment/info", &body).await
}

/// A webhook receiver answering 500 to its first `fail_first` requests, 200 after.
struct Receiver {
    url: String,
    hits: Arc<Mutex<Vec<Bytes>>>,
}

impl Receiver {
    async fn start(fail_first: usize) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/heleket/webhook", listener.local_addr().unwrap());
        let hits = Arc::new(Mutex::new(Vec::new()));
        let failures = Arc::new(AtomicUsize::new(fail_first));
        let recorded = hits.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (hits, failures) = (recorded.clone(), failures.clone());
                let service = service_fn(move |req: Request<Incoming>| {
                    let (hits, failures) = (hits.clone(), failures.clone());
                    async move {
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        hits.lock().unwrap().push(body);
                        let fail = failures
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                            .is_ok();
                        let status = if fail { 500 } else { 200 };
                        Ok::<_, Infallible>(
                            Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::from_static(b"ok")))
                                .unwrap(),
                        )
                    }
                });
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
        });
        Receiver { url, hits }
    }

    fn bodies(&self) -> Vec<Bytes> {
        self.hits.lock().unwrap().clone()
    }

    /// Waits until at least `n` webhooks arrived, then returns them all.
    async fn wait_for(&self, n: usize) -> Vec<Bytes> {
        for _ in 0..500 {
            let bodies = self.bodies();
            if bodies.len() >= n {
                return bodies;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("expected {n} webhooks, got {}", self.bodies().len());
    }
}

fn statuses(bodies: &[Bytes]) -> Vec<String> {
    bodies
        .iter()
        .map(|b| verify_webhook(b)["status"].as_str().unwrap().to_owned())
        .collect()
}

fn invoice_body(order_id: &str, receiver: Option<&Receiver>) -> Value {
    let mut body = json!({"amount": "10.50", "currency": "USD", "order_id": order_id});
    if let Some(r) = receiver {
        body["url_callback"] = json!(r.url);
    }
    body
}

// ---------------------------------------------------------------------------------------
// Requests: authentication and validation.

#[tokio::test]
async fn requests_need_our_merchant_and_a_sign_over_the_exact_bytes() {
    let sim = start().await;
    let body = serde_json::to_vec(&invoice_body("auth_1", None)).unwrap();
    let good = reference_sign(&body);
    let unauthenticated = json!({"message": "Unauthenticated."});

    for (merchant, sign) in [
        (Some(MERCHANT), Some("0".repeat(32))),
        (Some("someone-else"), Some(good.clone())),
        (None, Some(good.clone())),
        (Some(MERCHANT), None),
        (Some(MERCHANT), Some(good.to_uppercase())),
    ] {
        let reply = post_raw(&sim, "/v1/payment", &body, merchant, sign.as_deref()).await;
        assert_eq!(
            reply,
            (401, unauthenticated.clone()),
            "{merchant:?} {sign:?}"
        );
    }
    // The same JSON re-spaced is different bytes: the old sign no longer fits.
    let pretty = serde_json::to_vec_pretty(&invoice_body("auth_1", None)).unwrap();
    let (status, _) = post_raw(&sim, "/v1/payment", &pretty, Some(MERCHANT), Some(&good)).await;
    assert_eq!(status, 401);
    // Any byte layout is fine when signed as sent (Python clients send spaces).
    let (status, _) = post_raw(
        &sim,
        "/v1/payment",
        &pretty,
        Some(MERCHANT),
        Some(&reference_sign(&pretty)),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(sim.invoices().len(), 1, "refused requests create nothing");

    let calls = sim.calls();
    assert_eq!(calls.len(), 7);
    assert_eq!(calls[0].method, "POST");
    assert_eq!(calls[0].path, "/v1/payment");
    assert_eq!(calls[0].status, 401);
    assert_eq!(calls[6].body["order_id"], "auth_1");
    assert_eq!(calls[6].status, 200);
}

#[tokio::test]
async fn validation_errors_have_heleket_shape() {
    let sim = start().await;
    let (status, reply) = api(&sim, "/v1/payment", &json!({})).await;
    assert_eq!(status, 422);
    assert_eq!(
        reply,
        json!({"state": 1, "errors": {
            "amount": ["validation.required"],
            "currency": ["validation.required"],
            "order_id": ["validation.required"],
        }})
    );

    let (status, reply) = api(
        &sim,
        "/v1/payment",
        &json!({"amount": 10.5, "currency": "USD", "order_id": "bad id!", "lifetime": 100,
                "url_callback": "x"}),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(
        reply["errors"],
        json!({
            "amount": ["validation.string"],
            "order_id": ["validation.alpha_dash"],
            "url_callback": ["validation.min.string", "validation.url"],
            "lifetime": ["validation.min.numeric"],
        })
    );

    for amount in ["0", "-5", "1e3", "ten"] {
        let (status, reply) = api(
            &sim,
            "/v1/payment",
            &json!({"amount": amount, "currency": "USD", "order_id": "a"}),
        )
        .await;
        assert_eq!(status, 422, "{amount}");
        assert_eq!(reply["state"], 1);
        assert!(reply["errors"]["amount"].is_array(), "{reply}");
    }

    let (status, reply) = info(&sim, json!({})).await;
    assert_eq!(status, 422);
    assert_eq!(
        reply,
        json!({"state": 1, "errors": {
            "uuid": ["validation.required_without"],
            "order_id": ["validation.required_without"],
        }})
    );
    assert!(sim.invoices().is_empty());
}

// ---------------------------------------------------------------------------------------
// Invoices.

#[tokio::test]
async fn create_answers_the_full_invoice_object() {
    let sim = start().await;
    let before = sim.now();
    let invoice = create(
        &sim,
        json!({"amount": "10.50", "currency": "USD", "order_id": "tg_1_1",
               "url_callback": "https://example.com/heleket/webhook", "lifetime": 900}),
    )
    .await;

    let keys: Vec<&str> = invoice
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "uuid",
            "order_id",
            "amount",
            "payment_amount",
            "payment_amount_usd",
            "payer_amount",
            "payer_amount_exchange_rate",
            "discount_percent",
            "discount",
            "payer_currency",
            "currency",
            "comments",
            "merchant_amount",
            "network",
            "address",
            "from",
            "txid",
            "payment_status",
            "url",
            "expired_at",
            "status",
            "is_final",
            "additional_data",
            "created_at",
            "updated_at",
            "commission",
            "address_qr_code",
        ]
    );
    let uuid = invoice["uuid"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(uuid).unwrap().get_version_num(), 4);
    assert_eq!(invoice["order_id"], "tg_1_1");
    assert_eq!(invoice["amount"], "10.50", "amount as given");
    assert_eq!(invoice["currency"], "USD");
    assert_eq!(invoice["status"], "check");
    assert_eq!(invoice["payment_status"], "check");
    assert_eq!(invoice["is_final"], false);
    assert_eq!(invoice["payment_amount"], Value::Null);
    assert_eq!(invoice["merchant_amount"], "10.50000000");
    assert_eq!(invoice["url"], format!("{}/pay/{uuid}", sim.api_url()));
    let expired_at = invoice["expired_at"].as_i64().unwrap();
    assert!((before + 900..=sim.now() + 900).contains(&expired_at));
    assert!(invoice["created_at"].as_str().unwrap().ends_with("+00:00"));

    // The URL button's target exists and shows the amount.
    let page = reqwest::get(invoice["url"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("10.50 USD"));
    let missing = reqwest::get(format!("{}/pay/nope", sim.api_url()))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    let stored = sim.invoice_by_order("tg_1_1").unwrap();
    assert_eq!(stored.uuid, uuid);
    assert_eq!(
        stored.url_callback.as_deref(),
        Some("https://example.com/heleket/webhook")
    );
    assert_eq!(stored.lifetime, 900);
}

#[tokio::test]
async fn duplicate_order_id_returns_the_existing_invoice() {
    let sim = start().await;
    let first = create(&sim, invoice_body("dup_1", None)).await;
    let again = create(
        &sim,
        json!({"amount": "99.00", "currency": "EUR", "order_id": "dup_1"}),
    )
    .await;
    assert_eq!(
        again, first,
        "returned unchanged, amount and currency included"
    );
    assert_eq!(sim.invoices().len(), 1);
}

#[tokio::test]
async fn info_finds_by_uuid_or_order_id() {
    let sim = start().await;
    let a = create(&sim, invoice_body("info_a", None)).await;
    let b = create(&sim, invoice_body("info_b", None)).await;

    let (status, reply) = info(&sim, json!({"uuid": a["uuid"]})).await;
    assert_eq!((status, &reply["state"]), (200, &json!(0)));
    assert_eq!(reply["result"], a);
    let (_, reply) = info(&sim, json!({"order_id": "info_b"})).await;
    assert_eq!(reply["result"], b);
    // Both given: the order_id decides.
    let (_, reply) = info(&sim, json!({"uuid": a["uuid"], "order_id": "info_b"})).await;
    assert_eq!(reply["result"]["uuid"], b["uuid"]);

    for unknown in [
        json!({"order_id": "nobody"}),
        json!({"uuid": uuid::Uuid::new_v4().to_string()}),
    ] {
        let reply = info(&sim, unknown).await;
        assert_eq!(
            reply,
            (404, json!({"state": 1, "message": "Payment not found"}))
        );
    }
}

// ---------------------------------------------------------------------------------------
// Payments and webhooks.

#[tokio::test]
async fn pay_posts_a_signed_webhook_and_updates_info() {
    let sim = start().await;
    let receiver = Receiver::start(0).await;
    let mut body = invoice_body("pay_1", Some(&receiver));
    // `/` and non-ASCII are where naive signers go wrong.
    body["additional_data"] = json!("tg/42 Привет");
    let invoice = create(&sim, body).await;
    let uuid = invoice["uuid"].as_str().unwrap();

    let records = sim.pay(uuid, PayOptions::default()).await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].http_status, Some(200));
    assert_eq!(records[0].attempt, 1);
    assert_eq!(records[0].url, receiver.url);

    let bodies = receiver.bodies();
    assert_eq!(bodies.len(), 1);
    assert_eq!(records[0].body.as_bytes(), &bodies[0][..]);
    let text = std::str::from_utf8(&bodies[0]).unwrap();
    assert!(
        text.contains(r#""additional_data":"tg\/42 Привет""#),
        "{text}"
    );
    let fields = verify_webhook(&bodies[0]);
    let keys: Vec<&str> = fields.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "type",
            "uuid",
            "order_id",
            "amount",
            "payment_amount",
            "payment_amount_usd",
            "merchant_amount",
            "commission",
            "is_final",
            "status",
            "from",
            "wallet_address_uuid",
            "network",
            "currency",
            "payer_currency",
            "additional_data",
            "txid",
        ]
    );
    assert_eq!(fields["type"], "payment");
    assert_eq!(fields["uuid"], uuid);
    assert_eq!(fields["order_id"], "pay_1");
    assert_eq!(fields["status"], "paid");
    assert_eq!(fields["is_final"], true);
    assert_eq!(fields["amount"], "10.50");
    assert_eq!(fields["payment_amount"], "10.50");

    let (_, reply) = info(&sim, json!({"uuid": uuid})).await;
    assert_eq!(reply["result"]["status"], "paid");
    assert_eq!(reply["result"]["is_final"], true);
    assert_eq!(reply["result"]["payment_amount"], "10.50");
    assert_eq!(reply["result"]["txid"], fields["txid"]);
    assert_eq!(sim.deliveries(), records);
}

#[tokio::test]
async fn a_wrong_key_does_not_verify() {
    // Guards the reference verifier itself: it must be able to fail.
    let mut config = config();
    config.api_key = SecretString::new("another-key");
    let sim = start_with(config).await;
    let receiver = Receiver::start(0).await;
    let bytes = serde_json::to_vec(&invoice_body("key_1", Some(&receiver))).unwrap();
    let sign = md5_hex(format!("{}another-key", STANDARD.encode(&bytes)).as_bytes());
    let (status, invoice) =
        post_raw(&sim, "/v1/payment", &bytes, Some(MERCHANT), Some(&sign)).await;
    assert_eq!(status, 200);
    sim.pay(
        invoice["result"]["uuid"].as_str().unwrap(),
        PayOptions::default(),
    )
    .await
    .unwrap();
    let body = receiver.bodies().remove(0);
    assert!(sign_verifies(&body, "another-key"));
    assert!(!sign_verifies(&body, KEY));
    // Any change to a signed field breaks it.
    let tampered = String::from_utf8(body.to_vec())
        .unwrap()
        .replace("10.50", "10.60");
    assert!(!sign_verifies(tampered.as_bytes(), "another-key"));
}

#[tokio::test]
async fn duplicates_and_intermediate_statuses_in_and_out_of_order() {
    let sim = start().await;
    let receiver = Receiver::start(0).await;
    let in_order = create(&sim, invoice_body("seq_1", Some(&receiver))).await;
    let records = sim
        .pay(
            in_order["uuid"].as_str().unwrap(),
            PayOptions {
                also_send_before: vec!["process".into(), "confirm_check".into()],
                duplicates: 1,
                ..PayOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(records.len(), 4);
    let bodies = receiver.bodies();
    assert_eq!(
        statuses(&bodies),
        ["process", "confirm_check", "paid", "paid"]
    );
    assert_eq!(bodies[2], bodies[3], "duplicates are identical");
    assert_ne!(records[2].delivery, records[3].delivery);
    assert_eq!(verify_webhook(&bodies[1])["is_final"], false);

    let out_of_order = create(&sim, invoice_body("seq_2", Some(&receiver))).await;
    let uuid = out_of_order["uuid"].as_str().unwrap();
    sim.pay(
        uuid,
        PayOptions {
            status: "paid_over".into(),
            also_send_before: vec!["process".into(), "confirm_check".into()],
            duplicates: 2,
            out_of_order: true,
            ..PayOptions::default()
        },
    )
    .await
    .unwrap();
    let bodies = receiver.bodies()[4..].to_vec();
    assert_eq!(
        statuses(&bodies),
        [
            "paid_over",
            "paid_over",
            "paid_over",
            "process",
            "confirm_check"
        ]
    );
    assert_eq!(
        verify_webhook(&bodies[0])["payment_amount"],
        "11.55",
        "+10 % by default"
    );
    // The late intermediate webhooks are stale news; info tells the truth.
    let (_, reply) = info(&sim, json!({"uuid": uuid})).await;
    assert_eq!(reply["result"]["status"], "paid_over");
}

#[tokio::test]
async fn webhooks_are_retried_until_2xx() {
    let sim = start().await;
    let receiver = Receiver::start(2).await;
    let invoice = create(&sim, invoice_body("retry_1", Some(&receiver))).await;
    let records = sim
        .pay(invoice["uuid"].as_str().unwrap(), PayOptions::default())
        .await
        .unwrap();
    let answers: Vec<(u32, Option<u16>)> =
        records.iter().map(|r| (r.attempt, r.http_status)).collect();
    assert_eq!(answers, [(1, Some(500)), (2, Some(500)), (3, Some(200))]);
    assert!(records.iter().all(|r| r.delivery == records[0].delivery));
    let bodies = receiver.bodies();
    assert_eq!(bodies.len(), 3);
    assert!(
        bodies.iter().all(|b| b == &bodies[0]),
        "retries resend the same body"
    );

    // A receiver that is not there: every attempt recorded with the error, then it gives up.
    let mut config = config();
    config.webhook_attempts = 2;
    let sim = start_with(config).await;
    let gone = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", gone.local_addr().unwrap());
    drop(gone);
    let invoice = create(
        &sim,
        json!({"amount": "1", "currency": "USD", "order_id": "gone", "url_callback": url}),
    )
    .await;
    let records = sim
        .pay(invoice["uuid"].as_str().unwrap(), PayOptions::default())
        .await
        .unwrap();
    assert_eq!(records.len(), 2);
    assert!(records
        .iter()
        .all(|r| r.http_status.is_none() && r.error.is_some()));
}

#[tokio::test]
async fn undelivered_payment_still_shows_in_info() {
    let sim = start().await;
    let receiver = Receiver::start(0).await;
    let invoice = create(&sim, invoice_body("lost_1", Some(&receiver))).await;
    let records = sim
        .pay(
            invoice["uuid"].as_str().unwrap(),
            PayOptions {
                status: "wrong_amount".into(),
                paid_amount: Some("4.00".into()),
                deliver: false,
                ..PayOptions::default()
            },
        )
        .await
        .unwrap();
    assert!(records.is_empty());
    let (_, reply) = info(&sim, json!({"order_id": "lost_1"})).await;
    let result = &reply["result"];
    assert_eq!(result["status"], "wrong_amount");
    assert_eq!(result["is_final"], true);
    assert_eq!(result["payment_amount"], "4.00");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(receiver.bodies().is_empty());
    assert!(sim.deliveries().is_empty());
}

#[tokio::test]
async fn expired_invoices_report_cancel_once() {
    let sim = start().await;
    let receiver = Receiver::start(0).await;
    let mut body = invoice_body("exp_1", Some(&receiver));
    body["lifetime"] = json!(300);
    let invoice = create(&sim, body).await;
    let paid = create(&sim, invoice_body("exp_paid", Some(&receiver))).await;
    sim.pay(
        paid["uuid"].as_str().unwrap(),
        PayOptions {
            deliver: false,
            ..PayOptions::default()
        },
    )
    .await
    .unwrap();

    sim.advance_clock(Duration::from_secs(299));
    let (_, reply) = info(&sim, json!({"order_id": "exp_1"})).await;
    assert_eq!(reply["result"]["status"], "check");

    sim.advance_clock(Duration::from_secs(2));
    let (_, reply) = info(&sim, json!({"order_id": "exp_1"})).await;
    assert_eq!(reply["result"]["status"], "cancel");
    assert_eq!(reply["result"]["payment_status"], "cancel");
    assert_eq!(reply["result"]["is_final"], true);

    let bodies = receiver.wait_for(1).await;
    let fields = verify_webhook(&bodies[0]);
    assert_eq!(fields["uuid"], invoice["uuid"]);
    assert_eq!(fields["status"], "cancel");
    assert_eq!(fields["is_final"], true);
    assert_eq!(fields["payment_amount"], Value::Null);
    assert!(!fields.contains_key("txid"), "no transaction, no txid");
    // Ticks go on; the expiry is reported once, and paid invoices never expire.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(receiver.bodies().len(), 1);
    sim.advance_clock(Duration::from_secs(4000));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(receiver.bodies().len(), 1);
    assert_eq!(
        sim.invoice(paid["uuid"].as_str().unwrap()).unwrap().status,
        "paid"
    );
}

#[tokio::test]
async fn expiry_webhook_can_be_turned_off() {
    let mut config = config();
    config.cancel_webhook_on_expiry = false;
    let sim = start_with(config).await;
    let receiver = Receiver::start(0).await;
    let invoice = create(&sim, invoice_body("quiet_1", Some(&receiver))).await;
    let uuid = invoice["uuid"].as_str().unwrap();
    assert_eq!(sim.expire(uuid).unwrap().status, "cancel");
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(receiver.bodies().is_empty());
    assert_eq!(sim.invoice(uuid).unwrap().status, "cancel");
}

// ---------------------------------------------------------------------------------------
// Faults.

#[tokio::test]
async fn faults_break_the_api_but_not_control() {
    let sim = start().await;
    sim.fail_with_500(2);
    for _ in 0..2 {
        let (status, reply) = api(&sim, "/v1/payment", &invoice_body("f_1", None)).await;
        assert_eq!((status, reply), (500, json!({"message": "Server Error"})));
    }
    create(&sim, invoice_body("f_1", None)).await;

    sim.set_down(true);
    let (status, reply) = api(&sim, "/v1/payment/info", &json!({"order_id": "f_1"})).await;
    assert_eq!(status, 503);
    assert!(
        reply.as_str().unwrap().contains("503"),
        "an HTML page, not JSON"
    );
    let (status, _) = control(&sim, reqwest::Method::GET, "health", None).await;
    assert_eq!(status, 200, "control API unaffected");
    sim.set_down(false);
    assert_eq!(info(&sim, json!({"order_id": "f_1"})).await.0, 200);

    // Until cleared.
    sim.apply_fault(ApiFault::ServerError { times: None });
    for _ in 0..3 {
        assert_eq!(info(&sim, json!({"order_id": "f_1"})).await.0, 500);
    }
    sim.clear_faults();
    assert_eq!(info(&sim, json!({"order_id": "f_1"})).await.0, 200);

    // Hanging beyond the client's timeout.
    sim.set_hang(Some(Duration::from_secs(5)));
    let bytes = serde_json::to_vec(&json!({"order_id": "f_1"})).unwrap();
    let started = std::time::Instant::now();
    let result = reqwest::Client::new()
        .post(format!("{}/v1/payment/info", sim.api_url()))
        .header("merchant", MERCHANT)
        .header("sign", reference_sign(&bytes))
        .body(bytes)
        .timeout(Duration::from_millis(200))
        .send()
        .await;
    assert!(result.unwrap_err().is_timeout());
    assert!(started.elapsed() < Duration::from_secs(2));
    sim.set_hang(None);

    // Latency: answered late, but the work is done.
    sim.set_latency(Duration::from_millis(150));
    let started = std::time::Instant::now();
    create(&sim, invoice_body("f_2", None)).await;
    assert!(started.elapsed() >= Duration::from_millis(150));
    sim.set_latency(Duration::ZERO);

    let statuses: Vec<u16> = sim.calls().iter().map(|c| c.status).collect();
    assert_eq!(
        statuses,
        [500, 500, 200, 503, 200, 500, 500, 500, 200, 503, 200]
    );
}

// ---------------------------------------------------------------------------------------
// Control API, as other processes use it.

#[tokio::test]
async fn control_api_pays_lists_and_injects() {
    use reqwest::Method;
    let sim = start().await;
    let receiver = Receiver::start(0).await;
    let invoice = create(&sim, invoice_body("ctl_1", Some(&receiver))).await;

    let (status, reply) = control(&sim, Method::GET, "health", None).await;
    assert_eq!((status, reply), (200, json!({"ok": true})));

    let (status, reply) = control(
        &sim,
        Method::POST,
        "pay",
        Some(json!({"order_id": "ctl_1", "status": "paid", "duplicates": 1})),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["ok"], true);
    assert_eq!(reply["deliveries"].as_array().unwrap().len(), 2);
    assert_eq!(receiver.bodies().len(), 2);

    let (_, listed) = control(&sim, Method::GET, "invoices", None).await;
    assert_eq!(listed[0]["uuid"], invoice["uuid"]);
    assert_eq!(listed[0]["status"], "paid");
    assert_eq!(listed[0]["url_callback"], json!(receiver.url));

    let (_, deliveries) = control(&sim, Method::GET, "deliveries?since=1", None).await;
    assert_eq!(deliveries.as_array().unwrap().len(), 1);
    assert_eq!(deliveries[0]["http_status"], 200);

    // Delayed: answered at once, delivered later.
    let later = create(&sim, invoice_body("ctl_2", Some(&receiver))).await;
    let (status, reply) = control(
        &sim,
        Method::POST,
        "pay",
        Some(json!({"uuid": later["uuid"], "delay_ms": 100})),
    )
    .await;
    assert_eq!((status, &reply["background"]), (200, &json!(true)));
    assert_eq!(sim.invoice_by_order("ctl_2").unwrap().status, "check");
    receiver.wait_for(3).await;
    assert_eq!(sim.invoice_by_order("ctl_2").unwrap().status, "paid");

    let (status, _) = control(
        &sim,
        Method::POST,
        "faults",
        Some(json!([{"fault": "server_error", "times": 1}])),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(info(&sim, json!({"order_id": "ctl_1"})).await.0, 500);
    assert_eq!(info(&sim, json!({"order_id": "ctl_1"})).await.0, 200);

    let (status, reply) = control(
        &sim,
        Method::POST,
        "pay",
        Some(json!({"order_id": "nobody"})),
    )
    .await;
    assert_eq!((status, &reply["ok"]), (404, &json!(false)));
    let (status, _) = control(
        &sim,
        Method::POST,
        "pay",
        Some(json!({"order_id": "ctl_1", "status": "bogus"})),
    )
    .await;
    assert_eq!(status, 400);

    let (status, reply) = control(
        &sim,
        Method::POST,
        "clock",
        Some(json!({"advance_secs": 7200})),
    )
    .await;
    assert_eq!(status, 200);
    assert!(reply["now"].as_i64().unwrap() >= sim.now() - 1);

    let (status, _) = control(&sim, Method::POST, "reset", None).await;
    assert_eq!(status, 200);
    assert!(sim.invoices().is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn resend_redelivers_a_paid_invoice() {
    let sim = start().await;
    let receiver = Receiver::start(0).await;
    let invoice = create(&sim, invoice_body("res_1", Some(&receiver))).await;
    let (status, reply) = api(&sim, "/v1/payment/resend", &json!({"order_id": "res_1"})).await;
    assert_eq!((status, &reply["state"]), (422, &json!(1)), "not final yet");

    sim.pay(invoice["uuid"].as_str().unwrap(), PayOptions::default())
        .await
        .unwrap();
    let (status, reply) = api(
        &sim,
        "/v1/payment/resend",
        &json!({"uuid": invoice["uuid"]}),
    )
    .await;
    assert_eq!((status, reply), (200, json!({"state": 0, "result": []})));
    let bodies = receiver.wait_for(2).await;
    assert_eq!(bodies[0], bodies[1]);
}
