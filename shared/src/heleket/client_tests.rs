//! HTTP tests of the Heleket client against a small in-test server.

use super::*;
use crate::heleket::types::PaymentStatus;
use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use md5::{Digest, Md5};
use rust_decimal::Decimal;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Mutex;
use tokio::net::TcpListener;

const KEY: &str = "test-payment-key";
const MERCHANT: &str = "8b6e4c1a-0000-4000-8000-00000000beef";

#[derive(Debug, Clone)]
struct Seen {
    path: String,
    merchant: Option<String>,
    sign: Option<String>,
    content_type: Option<String>,
    body: Vec<u8>,
}

struct Reply {
    status: u16,
    body: String,
    delay: Duration,
}

fn reply(status: u16, body: impl Into<String>) -> Reply {
    Reply {
        status,
        body: body.into(),
        delay: Duration::ZERO,
    }
}

/// A tiny HTTP/1 server: `respond(n)` answers the n-th request (0-based).
struct Server {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(respond: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::<Seen>::new()));
        let respond = Arc::new(respond);
        let task = tokio::spawn({
            let seen = seen.clone();
            async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    let seen = seen.clone();
                    let respond = respond.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |req: Request<Incoming>| {
                            let seen = seen.clone();
                            let respond = respond.clone();
                            async move {
                                let header = |name: &str| {
                                    req.headers()
                                        .get(name)
                                        .map(|v| v.to_str().unwrap().to_owned())
                                };
                                let mut record = Seen {
                                    path: req.uri().path().to_owned(),
                                    merchant: header("merchant"),
                                    sign: header("sign"),
                                    content_type: header("content-type"),
                                    body: Vec::new(),
                                };
                                record.body = req.into_body().collect().await?.to_bytes().to_vec();
                                let n = {
                                    let mut seen = seen.lock().unwrap();
                                    seen.push(record);
                                    seen.len() - 1
                                };
                                let r = respond(n);
                                tokio::time::sleep(r.delay).await;
                                Ok::<_, hyper::Error>(
                                    Response::builder()
                                        .status(r.status)
                                        .header("content-type", "application/json")
                                        .body(Full::new(Bytes::from(r.body)))
                                        .unwrap(),
                                )
                            }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            }
        });
        Self { addr, seen, task }
    }

    fn calls(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn settings(&self) -> HeleketSettings {
        HeleketSettings {
            request_timeout: Duration::from_secs(5),
            retries: 3,
            retry_base: Duration::from_millis(1),
            retry_max: Duration::from_millis(5),
            breaker_failures: 100,
            ..HeleketSettings::for_url(
                format!("http://{}/", self.addr),
                MERCHANT,
                SecretString::new(KEY),
            )
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn invoice_json(order_id: &str, status: &str) -> String {
    serde_json::json!({
        "state": 0,
        "result": {
            "uuid": "1ec87133-0000-4000-8000-000000000001",
            "order_id": order_id,
            "amount": "10.50",
            "currency": "USD",
            "payment_status": status,
            "status": status,
            "url": "https://pay.heleket.com/pay/1ec87133",
            "is_final": false,
            "some_future_field": [1, 2, 3]
        }
    })
    .to_string()
}

fn request() -> CreateInvoice {
    CreateInvoice {
        url_callback: Some("https://bot.example/heleket/webhook".into()),
        ..CreateInvoice::new(Decimal::from_str("10.5").unwrap(), "USD", "tg_7_3")
    }
}

fn md5_sign(body: &[u8], key: &str) -> String {
    let mut hasher = Md5::new();
    hasher.update(base64::engine::general_purpose::STANDARD.encode(body));
    hasher.update(key);
    hex::encode(hasher.finalize())
}

#[tokio::test]
async fn create_invoice_parses_the_result_and_signs_the_exact_bytes_sent() {
    let server = Server::start(|_| reply(200, invoice_json("tg_7_3", "check"))).await;
    let client = server.settings().client().unwrap();

    let invoice = client.create_invoice(&request()).await.unwrap();

    assert_eq!(invoice.order_id.as_deref(), Some("tg_7_3"));
    assert_eq!(invoice.status(), Some(PaymentStatus::Check));
    assert_eq!(
        invoice.url.as_deref(),
        Some("https://pay.heleket.com/pay/1ec87133")
    );
    assert!(invoice.matches(&request()));
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    let call = &seen[0];
    assert_eq!(call.path, CREATE_INVOICE_PATH);
    assert_eq!(call.merchant.as_deref(), Some(MERCHANT));
    assert_eq!(call.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        call.sign.as_deref(),
        Some(md5_sign(&call.body, KEY).as_str())
    );
    let sent: Value = serde_json::from_slice(&call.body).unwrap();
    assert_eq!(sent["amount"], Value::String("10.50".into()));
    assert_eq!(sent["order_id"], "tg_7_3");
    assert!(sent.get("lifetime").is_none());
}

#[tokio::test]
async fn payment_info_sends_one_selector() {
    let server = Server::start(|_| reply(200, invoice_json("tg_7_3", "paid"))).await;
    let client = server.settings().client().unwrap();
    let uuid = uuid::Uuid::parse_str("1ec87133-0000-4000-8000-000000000001").unwrap();

    let by_uuid = client.payment_info(InvoiceRef::Uuid(uuid)).await.unwrap();
    let by_order = client
        .payment_info(InvoiceRef::OrderId("tg_7_3".into()))
        .await
        .unwrap();

    assert!(by_uuid.is_paid() && by_order.is_paid());
    let seen = server.seen();
    assert_eq!(seen[0].path, PAYMENT_INFO_PATH);
    assert_eq!(
        seen[0].body,
        br#"{"uuid":"1ec87133-0000-4000-8000-000000000001"}"#
    );
    assert_eq!(seen[1].body, br#"{"order_id":"tg_7_3"}"#);
    for call in &seen {
        assert_eq!(
            call.sign.as_deref(),
            Some(md5_sign(&call.body, KEY).as_str())
        );
    }
}

#[tokio::test]
async fn validation_errors_carry_the_fields_and_are_not_retried() {
    let body = r#"{"state":1,"errors":{"order_id":["validation.required"],
        "amount":["validation.required","validation.numeric"]}}"#;
    let server = Server::start(move |_| reply(422, body)).await;
    let client = server.settings().client().unwrap();

    let err = client.create_invoice(&request()).await.unwrap_err();

    let HeleketError::Validation { fields } = &err else {
        panic!("expected Validation, got {err:?}");
    };
    assert_eq!(
        fields,
        &vec![
            (
                "order_id".to_owned(),
                vec!["validation.required".to_owned()]
            ),
            (
                "amount".to_owned(),
                vec![
                    "validation.required".to_owned(),
                    "validation.numeric".to_owned()
                ]
            ),
        ]
    );
    assert!(err.to_string().contains("amount: validation.required"));
    assert!(!err.is_unavailable());
    assert_eq!(server.calls(), 1);
}

#[derive(Clone, Default)]
struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_name_the_rejected_fields_but_never_the_key_sign_or_body() {
    let logs = LogBuf::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let body = r#"{"state":1,"errors":{"url_callback":["validation.url"]}}"#;
    let server = Server::start(move |n| {
        if n == 0 {
            reply(503, "")
        } else {
            reply(422, body)
        }
    })
    .await;
    let client = server.settings().client().unwrap();

    client.create_invoice(&request()).await.unwrap_err();

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let warn = text
        .lines()
        .find(|l| l.contains("rejected the request as invalid"))
        .expect("a warn line for the validation error");
    assert!(warn.contains("WARN"), "{warn}");
    assert!(warn.contains("url_callback: validation.url"), "{warn}");
    assert!(text.contains("retrying"), "{text}");
    let sign = server.seen()[0].sign.clone().unwrap();
    for secret in [KEY, sign.as_str(), "10.50", "bot.example"] {
        assert!(!text.contains(secret), "logs contain {secret:?}: {text}");
    }
}

#[tokio::test]
async fn business_errors_and_auth_failures_are_rejections_and_not_retried() {
    for (status, body, message) in [
        (
            200,
            r#"{"state":1,"message":"Payment not found"}"#,
            "Payment not found",
        ),
        (
            400,
            r#"{"state":1,"message":"Payment not found"}"#,
            "Payment not found",
        ),
        (401, r#"{"message":"Unauthenticated."}"#, "Unauthenticated."),
        (403, "<html>forbidden</html>", "HTTP 403"),
        (404, "", "HTTP 404"),
        (501, "", "HTTP 501"),
    ] {
        let server = Server::start(move |_| reply(status, body)).await;
        let client = server.settings().client().unwrap();
        let err = client
            .payment_info(InvoiceRef::OrderId("tg_1_1".into()))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, HeleketError::Rejected { message: m } if m == message),
            "{status}: {err:?}"
        );
        assert_eq!(server.calls(), 1, "{status} must not be retried");
    }
}

#[tokio::test]
async fn a_success_without_a_result_is_a_protocol_error() {
    let server = Server::start(|_| reply(200, "not json")).await;
    let client = server.settings().client().unwrap();
    let err = client.create_invoice(&request()).await.unwrap_err();
    assert!(matches!(err, HeleketError::Protocol { status: 200, .. }));
    assert_eq!(server.calls(), 1);
}

#[tokio::test]
async fn server_errors_are_retried_until_success() {
    let server = Server::start(|n| {
        if n < 2 {
            reply(500, "oops")
        } else {
            reply(200, invoice_json("tg_7_3", "check"))
        }
    })
    .await;
    let client = server.settings().client().unwrap();

    client.create_invoice(&request()).await.unwrap();

    let seen = server.seen();
    assert_eq!(seen.len(), 3);
    // Every attempt carries the same bytes and signature.
    assert!(seen
        .iter()
        .all(|s| s.body == seen[0].body && s.sign == seen[0].sign));
}

#[tokio::test]
async fn retryable_failures_give_unavailable_after_n_plus_one_calls() {
    for status in [500u16, 502, 503, 408, 429] {
        let server = Server::start(move |_| reply(status, "")).await;
        let client = server.settings().client().unwrap();
        let err = client.create_invoice(&request()).await.unwrap_err();
        assert!(err.is_unavailable());
        assert!(
            matches!(
                &err,
                HeleketError::Unavailable { attempts: 4, last: AttemptError::Status(s) }
                    if *s == status
            ),
            "{err:?}"
        );
        assert_eq!(server.calls(), 4);
    }
}

#[tokio::test]
async fn a_timed_out_attempt_is_retried() {
    let server = Server::start(|n| Reply {
        delay: if n == 0 {
            Duration::from_secs(5)
        } else {
            Duration::ZERO
        },
        ..reply(200, invoice_json("tg_7_3", "check"))
    })
    .await;
    let client = HeleketSettings {
        request_timeout: Duration::from_millis(500),
        ..server.settings()
    }
    .client()
    .unwrap();

    client.create_invoice(&request()).await.unwrap();
    assert_eq!(server.calls(), 2);
}

#[tokio::test]
async fn always_timing_out_ends_unavailable_with_the_cause() {
    let server = Server::start(|_| Reply {
        delay: Duration::from_secs(5),
        ..reply(200, "{}")
    })
    .await;
    let client = HeleketSettings {
        request_timeout: Duration::from_millis(100),
        retries: 1,
        ..server.settings()
    }
    .client()
    .unwrap();
    let err = client.create_invoice(&request()).await.unwrap_err();
    assert!(matches!(
        err,
        HeleketError::Unavailable {
            attempts: 2,
            last: AttemptError::Timeout(_)
        }
    ));
    assert_eq!(server.calls(), 2);
}

#[tokio::test]
async fn connection_refused_is_retried_then_unavailable() {
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let client = HeleketSettings {
        retries: 2,
        retry_base: Duration::from_millis(1),
        retry_max: Duration::from_millis(2),
        ..HeleketSettings::for_url(format!("http://{addr}"), MERCHANT, SecretString::new(KEY))
    }
    .client()
    .unwrap();
    let err = client.create_invoice(&request()).await.unwrap_err();
    assert!(
        matches!(
            err,
            HeleketError::Unavailable {
                attempts: 3,
                last: AttemptError::Connect(_)
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn invalid_requests_never_reach_the_network() {
    let server = Server::start(|_| reply(200, invoice_json("x", "check"))).await;
    let client = server.settings().client().unwrap();
    let bad = CreateInvoice::new(Decimal::from_str("1.001").unwrap(), "USD", "tg_1");
    assert!(matches!(
        client.create_invoice(&bad).await,
        Err(HeleketError::InvalidRequest { .. })
    ));
    assert!(matches!(
        client
            .payment_info(InvoiceRef::OrderId("no spaces".into()))
            .await,
        Err(HeleketError::InvalidRequest { .. })
    ));
    assert_eq!(server.calls(), 0);
}

#[tokio::test]
async fn the_breaker_opens_fails_fast_then_half_opens_and_closes_on_success() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let healthy = Arc::new(AtomicBool::new(false));
    let server = Server::start({
        let healthy = healthy.clone();
        move |_| {
            if healthy.load(Ordering::SeqCst) {
                reply(200, invoice_json("tg_7_3", "check"))
            } else {
                reply(503, "")
            }
        }
    })
    .await;
    let open_for = Duration::from_secs(1);
    let client = HeleketSettings {
        retries: 1,
        breaker_failures: 2,
        breaker_open_for: open_for,
        ..server.settings()
    }
    .client()
    .unwrap();

    for _ in 0..2 {
        let err = client.create_invoice(&request()).await.unwrap_err();
        assert!(matches!(err, HeleketError::Unavailable { .. }));
    }
    assert_eq!(server.calls(), 4);
    assert_eq!(client.breaker_state(), BreakerState::Open);

    // Open: fails at once, nothing reaches the server, and clones share the breaker.
    let clone = client.clone();
    for c in [&client, &clone] {
        let err = c.create_invoice(&request()).await.unwrap_err();
        assert!(matches!(err, HeleketError::CircuitOpen));
        assert!(err.is_unavailable());
    }
    assert_eq!(server.calls(), 4);

    // After the open period a trial goes through; it fails, so the breaker re-opens.
    tokio::time::sleep(open_for).await;
    assert!(client.create_invoice(&request()).await.is_err());
    assert_eq!(server.calls(), 6);
    assert_eq!(client.breaker_state(), BreakerState::Open);
    assert!(matches!(
        client.create_invoice(&request()).await,
        Err(HeleketError::CircuitOpen)
    ));

    // Next trial succeeds and closes it.
    healthy.store(true, Ordering::SeqCst);
    tokio::time::sleep(open_for).await;
    client.create_invoice(&request()).await.unwrap();
    assert_eq!(server.calls(), 7);
    assert_eq!(client.breaker_state(), BreakerState::Closed);
    client.create_invoice(&request()).await.unwrap();
    assert_eq!(server.calls(), 8);
}

#[tokio::test]
async fn rejections_do_not_open_the_breaker() {
    let server = Server::start(|_| reply(422, r#"{"state":1,"errors":{"x":["y"]}}"#)).await;
    let client = HeleketSettings {
        breaker_failures: 1,
        ..server.settings()
    }
    .client()
    .unwrap();
    for _ in 0..3 {
        assert!(matches!(
            client.create_invoice(&request()).await,
            Err(HeleketError::Validation { .. })
        ));
    }
    assert_eq!(client.breaker_state(), BreakerState::Closed);
    assert_eq!(server.calls(), 3);
}

#[test]
fn backoff_is_capped_jittered_and_never_overflows() {
    let policy = RetryPolicy {
        retries: 3,
        base: Duration::from_millis(100),
        max: Duration::from_secs(2),
    };
    assert_eq!(policy.ceiling(0), Duration::from_millis(100));
    assert_eq!(policy.ceiling(1), Duration::from_millis(200));
    assert_eq!(policy.ceiling(4), Duration::from_millis(1600));
    assert_eq!(policy.ceiling(5), Duration::from_secs(2));
    assert_eq!(policy.ceiling(64), Duration::from_secs(2));
    assert_eq!(policy.ceiling(u32::MAX), Duration::from_secs(2));
    for retry in [0, 3, 40, u32::MAX] {
        for _ in 0..100 {
            assert!(policy.backoff(retry) <= policy.ceiling(retry));
        }
    }
    // Full jitter: the delays spread over the whole window.
    let delays: Vec<_> = (0..200).map(|_| policy.backoff(10)).collect();
    assert!(delays.iter().any(|d| *d < Duration::from_millis(500)));
    assert!(delays.iter().any(|d| *d > Duration::from_millis(1500)));
}

#[test]
fn classify_branches_on_state_not_on_status() {
    let ok: Result<Invoice, _> = classify(StatusCode::OK, br#"{"state":0,"result":{}}"#);
    assert!(ok.is_ok());
    let err = classify::<Invoice>(StatusCode::OK, br#"{"state":0}"#).unwrap_err();
    assert!(matches!(err, HeleketError::Protocol { .. }));
    let err =
        classify::<Invoice>(StatusCode::OK, br#"{"state":1,"errors":{"a":"b"}}"#).unwrap_err();
    assert!(
        matches!(err, HeleketError::Validation { fields } if fields == vec![("a".to_owned(), vec!["b".to_owned()])])
    );
    let err = classify::<Invoice>(
        StatusCode::UNPROCESSABLE_ENTITY,
        br#"{"state":1,"errors":{},"message":"m"}"#,
    )
    .unwrap_err();
    assert!(matches!(err, HeleketError::Rejected { message } if message == "m"));
}

#[test]
fn errors_never_show_the_key() {
    let settings = HeleketSettings::for_url("http://x", MERCHANT, SecretString::new(KEY));
    let client = settings.client().unwrap();
    assert!(!format!("{client:?}").contains(KEY));
    assert!(!format!("{settings:?}").contains(KEY));
}

#[derive(Default)]
struct Recorder(Mutex<Vec<(&'static str, &'static str, Duration)>>);

impl CallObserver for Recorder {
    fn observe(&self, endpoint: &'static str, result: &'static str, took: Duration) {
        self.0.lock().unwrap().push((endpoint, result, took));
    }
}

#[tokio::test]
async fn the_observer_sees_each_call_once_with_its_endpoint_and_result() {
    let server = Server::start(|n| match n {
        0 => reply(200, invoice_json("tg_7_3", "check")),
        1 => reply(422, r#"{"state":1,"errors":{"amount":["required"]}}"#),
        _ => reply(503, ""),
    })
    .await;
    let recorder = Arc::new(Recorder::default());
    let client = HeleketSettings {
        retries: 1,
        breaker_failures: 1,
        ..server.settings()
    }
    .client()
    .unwrap()
    .with_observer(recorder.clone());
    let uuid = uuid::Uuid::parse_str("1ec87133-0000-4000-8000-000000000001").unwrap();

    client.create_invoice(&request()).await.unwrap();
    client
        .payment_info(InvoiceRef::Uuid(uuid))
        .await
        .unwrap_err();
    // Two attempts, observed as one unavailable call; it opens the breaker.
    client.create_invoice(&request()).await.unwrap_err();
    client.create_invoice(&request()).await.unwrap_err();

    let seen: Vec<_> = recorder
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|(e, r, _)| (*e, *r))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("create_invoice", "ok"),
            ("payment_info", "validation"),
            ("create_invoice", "unavailable"),
            ("create_invoice", "circuit_open"),
        ]
    );
    assert_eq!(server.calls(), 4);
    // Validation failures before any call are not API calls and are not observed.
    let invalid = CreateInvoice::new(Decimal::ZERO, "USD", "tg_7_3");
    assert!(client.create_invoice(&invalid).await.is_err());
    assert_eq!(recorder.0.lock().unwrap().len(), 4);
}
