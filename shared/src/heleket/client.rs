//! The Heleket payment API client: signed requests, failure classification, retries with
//! capped exponential backoff and full jitter, and a circuit breaker (reference §1–§3).
//!
//! Every request body is serialised once; those exact bytes are signed and sent.
//! Neither the API key nor a request or response body is ever logged.

use crate::config::HeleketSettings;
use crate::heleket::breaker::{BreakerConfig, BreakerState, CircuitBreaker};
use crate::heleket::sign::request_sign;
use crate::heleket::types::{CreateInvoice, Invoice, InvoiceRef};
use crate::secret::SecretString;
use reqwest::header::{HeaderValue, CONTENT_TYPE};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub const CREATE_INVOICE_PATH: &str = "/v1/payment";
pub const PAYMENT_INFO_PATH: &str = "/v1/payment/info";

/// Responses larger than this are not read (an invoice is a few KiB with its QR code).
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HeleketError {
    /// Refused locally before anything was signed or sent.
    #[error("invalid Heleket request: {reason}")]
    InvalidRequest { reason: String },
    /// `{"state":1,"errors":{field:[rules]}}`, usually with HTTP 422. Not retried.
    #[error("Heleket rejected the request as invalid ({})", FieldList(fields))]
    Validation { fields: Vec<(String, Vec<String>)> },
    /// `{"state":1,"message":..}`, or a 4xx (401/403 included) without a validation body.
    /// Not retried.
    #[error("Heleket rejected the request: {message}")]
    Rejected { message: String },
    /// A non-retryable answer that is not Heleket's envelope (e.g. a success without
    /// `result`, or a body that does not parse). Not retried.
    #[error("unexpected response from Heleket (HTTP {status}): {reason}")]
    Protocol { status: u16, reason: String },
    /// Retryable failures on every attempt.
    #[error("Heleket is unavailable after {attempts} attempts")]
    Unavailable {
        attempts: u32,
        #[source]
        last: AttemptError,
    },
    /// The circuit breaker is open: failed without a network call.
    #[error("Heleket calls are suspended: the circuit breaker is open")]
    CircuitOpen,
}

impl HeleketError {
    /// Heleket cannot be reached right now (breaker open, or retries exhausted): tell the
    /// user "payments are temporarily unavailable" and try again later. Everything else is
    /// permanent for this request.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::CircuitOpen)
    }

    /// A bounded label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidRequest { .. } => "invalid_request",
            Self::Validation { .. } => "validation",
            Self::Rejected { .. } => "rejected",
            Self::Protocol { .. } => "protocol",
            Self::Unavailable { .. } => "unavailable",
            Self::CircuitOpen => "circuit_open",
        }
    }
}

struct FieldList<'a>(&'a [(String, Vec<String>)]);

impl fmt::Display for FieldList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (field, rules)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{field}: {}", rules.join(", "))?;
        }
        Ok(())
    }
}

/// Why one attempt failed in a way worth retrying.
#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    /// 408, 429 or 5xx other than 501.
    #[error("Heleket answered HTTP {0}")]
    Status(u16),
    #[error("the request to Heleket timed out")]
    Timeout(#[source] reqwest::Error),
    #[error("could not connect to Heleket")]
    Connect(#[source] reqwest::Error),
    #[error("the connection to Heleket failed")]
    Transport(#[source] reqwest::Error),
}

impl AttemptError {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Status(_) => "http_status",
            Self::Timeout(_) => "timeout",
            Self::Connect(_) => "connect",
            Self::Transport(_) => "transport",
        }
    }

    fn status(&self) -> Option<u16> {
        match self {
            Self::Status(s) => Some(*s),
            _ => None,
        }
    }
}

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("HELEKET_MERCHANT_ID cannot be sent as an HTTP header")]
    InvalidMerchantId,
    #[error("failed to build the HTTP client")]
    Http(#[source] reqwest::Error),
}

/// Retries after the first attempt, each after a full-jitter delay drawn uniformly from
/// `[0, min(max, base · 2^retry)]`. The cap is computed with saturating arithmetic, so it
/// never overflows however many retries are configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub retries: u32,
    pub base: Duration,
    pub max: Duration,
}

impl RetryPolicy {
    /// The upper bound of the delay before retry number `retry` (0-based).
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 2u32.checked_pow(retry).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    pub fn backoff(&self, retry: u32) -> Duration {
        use rand::Rng;
        let ceiling = u64::try_from(self.ceiling(retry).as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::rng().random_range(0..=ceiling))
    }
}

/// Cheap to clone; clones share the connection pool and the circuit breaker.
#[derive(Debug, Clone)]
pub struct HeleketClient {
    http: reqwest::Client,
    api_url: Arc<str>,
    merchant: HeaderValue,
    api_key: SecretString,
    retry: RetryPolicy,
    breaker: Arc<CircuitBreaker>,
}

enum Failure {
    Retryable(AttemptError),
    Permanent(HeleketError),
}

impl HeleketClient {
    /// Prefer `HeleketSettings::client()`.
    pub fn new(settings: &HeleketSettings) -> Result<Self, BuildError> {
        let merchant = HeaderValue::from_str(&settings.merchant_id)
            .map_err(|_| BuildError::InvalidMerchantId)?;
        let http = reqwest::Client::builder()
            // Per attempt, from connecting to the last byte of the body.
            .timeout(settings.request_timeout)
            .connect_timeout(settings.request_timeout)
            // A redirected POST would turn into a GET without the signed body.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("paystream/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(BuildError::Http)?;
        Ok(Self {
            http,
            api_url: settings.api_url.trim_end_matches('/').into(),
            merchant,
            api_key: settings.api_key.clone(),
            retry: RetryPolicy {
                retries: settings.retries,
                base: settings.retry_base,
                max: settings.retry_max,
            },
            breaker: Arc::new(CircuitBreaker::new(
                "heleket",
                BreakerConfig {
                    failure_threshold: settings.breaker_failures,
                    open_for: settings.breaker_open_for,
                },
            )),
        })
    }

    /// For a `/metrics` gauge.
    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// False while the breaker would refuse a call.
    pub fn admits_calls(&self) -> bool {
        self.breaker.admits_calls()
    }

    pub fn breaker(&self) -> &Arc<CircuitBreaker> {
        &self.breaker
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// `POST /v1/payment`. A repeated `order_id` returns the existing invoice, possibly with
    /// another amount: check `Invoice::matches`.
    #[tracing::instrument(
        name = "heleket.create_invoice",
        skip_all,
        fields(order_id = %request.order_id)
    )]
    pub async fn create_invoice(&self, request: &CreateInvoice) -> Result<Invoice, HeleketError> {
        request
            .validate()
            .map_err(|reason| HeleketError::InvalidRequest { reason })?;
        self.call(CREATE_INVOICE_PATH, request).await
    }

    /// `POST /v1/payment/info`: the invoice as Heleket sees it now.
    #[tracing::instrument(name = "heleket.payment_info", skip_all, fields(invoice = %invoice))]
    pub async fn payment_info(&self, invoice: InvoiceRef) -> Result<Invoice, HeleketError> {
        if let InvoiceRef::OrderId(id) = &invoice {
            if !crate::heleket::types::is_order_id(id) {
                return Err(HeleketError::InvalidRequest {
                    reason: "order_id must be 1-128 characters of A-Za-z0-9_-".into(),
                });
            }
        }
        self.call(PAYMENT_INFO_PATH, &invoice).await
    }

    async fn call<B, T>(&self, path: &'static str, body: &B) -> Result<T, HeleketError>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        let body = serde_json::to_vec(body).map_err(|e| HeleketError::InvalidRequest {
            reason: e.to_string(),
        })?;
        let Ok(permit) = self.breaker.try_acquire() else {
            tracing::debug!(heleket.path = path, "Heleket call refused: breaker open.");
            return Err(HeleketError::CircuitOpen);
        };
        let result = self.call_with_retries(path, body).await;
        // Only "could not get an answer" counts against the breaker; a 4xx means Heleket is
        // up and our request was wrong.
        match &result {
            Err(HeleketError::Unavailable { .. }) => permit.failure(),
            _ => permit.success(),
        }
        result
    }

    async fn call_with_retries<T: DeserializeOwned>(
        &self,
        path: &'static str,
        body: Vec<u8>,
    ) -> Result<T, HeleketError> {
        let url = format!("{}{path}", self.api_url);
        let sign = request_sign(&body, &self.api_key);
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            // Every attempt sends the very bytes that were signed.
            let error = match self.attempt(&url, path, body.clone(), &sign).await {
                Ok(value) => return Ok(value),
                Err(Failure::Permanent(e)) => return Err(e),
                Err(Failure::Retryable(e)) => e,
            };
            if attempts > self.retry.retries {
                tracing::warn!(
                    heleket.path = path,
                    attempts,
                    error.kind = error.kind(),
                    http.status = error.status(),
                    error.message = %error,
                    error.cause_chain = ?error,
                    "Heleket call failed on every attempt; giving up."
                );
                return Err(HeleketError::Unavailable {
                    attempts,
                    last: error,
                });
            }
            let delay = self.retry.backoff(attempts - 1);
            tracing::warn!(
                heleket.path = path,
                attempt = attempts,
                error.kind = error.kind(),
                http.status = error.status(),
                retry_in_ms = delay.as_millis() as u64,
                error.message = %error,
                "Heleket call failed; retrying."
            );
            // Dropping the caller's future cancels this sleep (pattern 10).
            tokio::time::sleep(delay).await;
        }
    }

    async fn attempt<T: DeserializeOwned>(
        &self,
        url: &str,
        path: &'static str,
        body: Vec<u8>,
        sign: &str,
    ) -> Result<T, Failure> {
        let response = self
            .http
            .post(url)
            .header("merchant", self.merchant.clone())
            .header("sign", sign)
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(transport_failure)?;
        let status = response.status();
        if is_retryable(status) {
            return Err(Failure::Retryable(AttemptError::Status(status.as_u16())));
        }
        let bytes = read_capped(response).await?;
        let result = classify(status, &bytes);
        if let Err(e) = &result {
            match e {
                HeleketError::Validation { fields } => tracing::warn!(
                    heleket.path = path,
                    http.status = status.as_u16(),
                    fields = %FieldList(fields),
                    "Heleket rejected the request as invalid."
                ),
                other => tracing::warn!(
                    heleket.path = path,
                    http.status = status.as_u16(),
                    error.kind = other.kind(),
                    error.message = %other,
                    "Heleket refused the request."
                ),
            }
        }
        result.map_err(Failure::Permanent)
    }
}

fn is_retryable(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || (status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED)
}

fn transport_failure(e: reqwest::Error) -> Failure {
    // The URL holds no secret, but keep it out of error chains all the same.
    let e = e.without_url();
    if e.is_builder() {
        Failure::Permanent(HeleketError::InvalidRequest {
            reason: e.to_string(),
        })
    } else if e.is_timeout() {
        Failure::Retryable(AttemptError::Timeout(e))
    } else if e.is_connect() {
        Failure::Retryable(AttemptError::Connect(e))
    } else {
        Failure::Retryable(AttemptError::Transport(e))
    }
}

async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, Failure> {
    let status = response.status().as_u16();
    let too_large = || {
        Failure::Permanent(HeleketError::Protocol {
            status,
            reason: format!("response body over {MAX_RESPONSE_BYTES} bytes"),
        })
    };
    if response
        .content_length()
        .is_some_and(|len| len > MAX_RESPONSE_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport_failure)? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Map a non-retryable response to its result. Branches on the envelope's `state` first
/// (reference §2.4: the HTTP status of `message` errors is not documented).
fn classify<T: DeserializeOwned>(status: StatusCode, body: &[u8]) -> Result<T, HeleketError> {
    let code = status.as_u16();
    let mut envelope = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    };
    if status.is_success() {
        let Some(map) = envelope.as_mut() else {
            return Err(HeleketError::Protocol {
                status: code,
                reason: "body is not a JSON object".into(),
            });
        };
        let state = map.get("state").and_then(|s| match s {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        });
        if state == Some(0) {
            return match map.remove("result") {
                Some(result) => {
                    serde_json::from_value(result).map_err(|e| HeleketError::Protocol {
                        status: code,
                        reason: format!("result does not parse: {e}"),
                    })
                }
                None => Err(HeleketError::Protocol {
                    status: code,
                    reason: "state 0 without a result".into(),
                }),
            };
        }
    }
    if let Some(map) = &envelope {
        let fields = validation_fields(map.get("errors"));
        if !fields.is_empty() {
            return Err(HeleketError::Validation { fields });
        }
        if let Some(message) = map.get("message").and_then(Value::as_str) {
            return Err(HeleketError::Rejected {
                message: message.to_owned(),
            });
        }
    }
    if status.is_success() {
        Err(HeleketError::Protocol {
            status: code,
            reason: "neither a result nor an error".into(),
        })
    } else {
        Err(HeleketError::Rejected {
            message: format!("HTTP {code}"),
        })
    }
}

fn validation_fields(errors: Option<&Value>) -> Vec<(String, Vec<String>)> {
    let Some(Value::Object(errors)) = errors else {
        return Vec::new();
    };
    errors
        .iter()
        .map(|(field, rules)| {
            let rules = match rules {
                Value::Array(items) => items.iter().map(value_text).collect(),
                other => vec![value_text(other)],
            };
            (field.clone(), rules)
        })
        .collect()
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
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
                                    record.body =
                                        req.into_body().collect().await?.to_bytes().to_vec();
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
}
