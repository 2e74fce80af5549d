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

/// Bounded `endpoint` labels passed to a [`CallObserver`].
pub const CREATE_INVOICE_ENDPOINT: &str = "create_invoice";
pub const PAYMENT_INFO_ENDPOINT: &str = "payment_info";

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

/// Told about every API call the client made or refused (for metrics), once per call, after
/// its retries: the endpoint (`create_invoice`, `payment_info`), the result (`ok` or
/// `HeleketError::kind()`), and how long the call took, retries and backoff included.
/// Both labels are bounded. Called inline: keep it cheap and non-blocking.
pub trait CallObserver: Send + Sync {
    fn observe(&self, endpoint: &'static str, result: &'static str, took: Duration);
}

#[derive(Clone, Default)]
struct Observer(Option<Arc<dyn CallObserver>>);

impl fmt::Debug for Observer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "Some(..)" } else { "None" })
    }
}

/// Cheap to clone; clones share the connection pool, the circuit breaker and the observer.
#[derive(Debug, Clone)]
pub struct HeleketClient {
    http: reqwest::Client,
    api_url: Arc<str>,
    merchant: HeaderValue,
    api_key: SecretString,
    retry: RetryPolicy,
    breaker: Arc<CircuitBreaker>,
    observer: Observer,
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
            observer: Observer::default(),
        })
    }

    /// Reports every call to `observer` (see [`CallObserver`]).
    pub fn with_observer(mut self, observer: Arc<dyn CallObserver>) -> Self {
        self.observer = Observer(Some(observer));
        self
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
        self.call(CREATE_INVOICE_ENDPOINT, CREATE_INVOICE_PATH, request)
            .await
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
        self.call(PAYMENT_INFO_ENDPOINT, PAYMENT_INFO_PATH, &invoice)
            .await
    }

    async fn call<B, T>(
        &self,
        endpoint: &'static str,
        path: &'static str,
        body: &B,
    ) -> Result<T, HeleketError>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        let started = tokio::time::Instant::now();
        let result = self.call_through_breaker(path, body).await;
        if let Some(observer) = &self.observer.0 {
            let label = match &result {
                Ok(_) => "ok",
                Err(e) => e.kind(),
            };
            observer.observe(endpoint, label, started.elapsed());
        }
        result
    }

    async fn call_through_breaker<B, T>(
        &self,
        path: &'static str,
        body: &B,
    ) -> Result<T, HeleketError>
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
#[path = "client_tests.rs"]
mod tests;
