//! A Heleket payment API simulator: a real HTTP server speaking Heleket's protocol
//! (`shared/reference/heleket.md` §1–5) — signed requests, invoices that expire, signed
//! webhooks with retries — plus control over payments and faults. Tests run it in-process
//! ([`HeleketSim::start`]); other processes use the `heleket-sim` binary and `/_sim/`.
//!
//! Heleket's behaviour where the reference marks it unconfirmed, the simulator picks one
//! reading and says so: unknown invoices answer HTTP 404 with `{"state":1,"message":"Payment
//! not found"}`, bad `merchant`/`sign` answers 401 `{"message":"Unauthenticated."}`, and
//! payments convert at 1:1 into `USDT`.

mod api;
mod clock;
mod control;
mod faults;
mod invoice;
mod pay;
mod server;
mod state;
mod validate;
mod webhook;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use rust_decimal::Decimal;
use shared::secret::SecretString;
use tokio::task::JoinHandle;
use tokio_util::sync::DropGuard;

pub use faults::ApiFault;
pub use invoice::{is_final_status, Invoice, STATUSES};
pub use pay::PayOptions;
pub use state::{ApiCall, DeliveryRecord};

use validate::Lookup;

/// The merchant the `heleket-sim` binary and [`HeleketSimConfig::default`] accept when
/// `HELEKET_MERCHANT_ID` is not set. Made up; never a real merchant.
pub const SANDBOX_MERCHANT_ID: &str = "5a1d0b3e-7c4f-4e2a-9b6d-000000005a1d";
/// The payment key that goes with [`SANDBOX_MERCHANT_ID`]. Made up; never a real key.
pub const SANDBOX_API_KEY: &str = "sandbox-heleket-payment-key-not-real-0123456789abcdef";

/// Settings fixed at start; faults and the clock can still change at run time.
#[derive(Clone, Debug)]
pub struct HeleketSimConfig {
    /// Requests must carry it in the `merchant` header.
    pub merchant_id: String,
    /// Verifies request signatures and signs webhooks.
    pub api_key: SecretString,
    /// Base of invoice page URLs (`{public_url}/pay/<uuid>`); `None`: `http://{bound addr}`.
    pub public_url: Option<String>,
    /// Whether an invoice that expires unpaid reports `cancel` by webhook (Heleket does).
    pub cancel_webhook_on_expiry: bool,
    /// How often the background ticker looks for expired invoices. Reads never wait for
    /// it: every answer applies expiry itself.
    pub expiry_tick: Duration,
    /// Tries per webhook, counting the first; later ones follow a doubling backoff.
    pub webhook_attempts: u32,
    pub webhook_backoff: Duration,
    /// Per-attempt timeout of a webhook POST.
    pub webhook_timeout: Duration,
    /// Sign (and send) webhooks with non-ASCII escaped as `\uXXXX`; the reference says
    /// Heleket uses PHP's `JSON_UNESCAPED_UNICODE`, hence the default `false`.
    pub escape_unicode: bool,
    /// Heleket's fee, in percent of what was paid; shows in `commission`/`merchant_amount`.
    pub commission_percent: Decimal,
    /// Oldest calls and deliveries are forgotten beyond this many of each.
    pub max_recorded: usize,
}

impl HeleketSimConfig {
    pub fn new(merchant_id: impl Into<String>, api_key: SecretString) -> HeleketSimConfig {
        HeleketSimConfig {
            merchant_id: merchant_id.into(),
            api_key,
            public_url: None,
            cancel_webhook_on_expiry: true,
            expiry_tick: Duration::from_secs(1),
            webhook_attempts: 5,
            webhook_backoff: Duration::from_millis(200),
            webhook_timeout: Duration::from_secs(5),
            escape_unicode: false,
            commission_percent: Decimal::ZERO,
            max_recorded: 200_000,
        }
    }
}

impl Default for HeleketSimConfig {
    fn default() -> Self {
        HeleketSimConfig::new(SANDBOX_MERCHANT_ID, SecretString::new(SANDBOX_API_KEY))
    }
}

/// Handle to a running simulator. Clones share it; the server stops when the last clone is
/// dropped or on [`HeleketSim::shutdown`].
#[derive(Clone)]
pub struct HeleketSim {
    state: Arc<state::State>,
    server: Arc<Server>,
}

impl std::fmt::Debug for HeleketSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeleketSim")
            .field("addr", &self.server.addr)
            .finish_non_exhaustive()
    }
}

struct Server {
    addr: SocketAddr,
    // Dropped with the last handle, which cancels the stop token every task watches.
    _stop_on_drop: DropGuard,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// [`HeleketSim::wait_for_deliveries`] gave up; carries what was delivered.
#[derive(Debug, thiserror::Error)]
#[error("heleket sim: condition not met within {waited:?}; deliveries: {summary}")]
pub struct WaitTimeout {
    pub waited: Duration,
    pub deliveries: Vec<DeliveryRecord>,
    summary: String,
}

impl HeleketSim {
    /// Binds `addr` (use `127.0.0.1:0` in tests) and serves in background tasks.
    pub async fn start(addr: SocketAddr, config: HeleketSimConfig) -> anyhow::Result<HeleketSim> {
        let (listener, addr) = crate::wait::bind(addr, "Heleket").await?;
        let http = reqwest::Client::builder()
            .timeout(config.webhook_timeout)
            // Webhooks go to local receivers; a proxy from the environment must not intercept.
            .no_proxy()
            .build()
            .context("Failed to build the webhook HTTP client")?;
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"));
        let state = Arc::new(state::State::new(config, public_url, http));
        let stop = state.stop.clone();
        let handler = {
            let state = state.clone();
            move |req| server::handle(state.clone(), req)
        };
        let serving = tokio::spawn(crate::server::serve(
            listener,
            stop.clone().cancelled_owned(),
            handler,
        ));
        let ticking = tokio::spawn(expire_loop(state.clone()));
        Ok(HeleketSim {
            state,
            server: Arc::new(Server {
                addr,
                _stop_on_drop: stop.drop_guard(),
                tasks: Mutex::new(vec![serving, ticking]),
            }),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// The value for `HELEKET_API_URL`, e.g. `http://127.0.0.1:40123`.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// The base of invoice page URLs.
    pub fn public_url(&self) -> &str {
        &self.state.public_url
    }

    pub fn merchant_id(&self) -> &str {
        &self.state.config.merchant_id
    }

    /// Every invoice in creation order, with expiry applied.
    pub fn invoices(&self) -> Vec<Invoice> {
        self.state.invoices()
    }

    pub fn invoice(&self, uuid: &str) -> Option<Invoice> {
        self.state.find(&Lookup::Uuid(uuid.to_owned()))
    }

    pub fn invoice_by_order(&self, order_id: &str) -> Option<Invoice> {
        self.state.find(&Lookup::OrderId(order_id.to_owned()))
    }

    /// Simulates the payer: updates the invoice and delivers its webhooks. Returns every
    /// delivery attempt once they are done; with a `delay` it returns `Ok(vec![])` at once
    /// and the payment happens in the background.
    pub async fn pay(
        &self,
        uuid: &str,
        options: PayOptions,
    ) -> anyhow::Result<Vec<DeliveryRecord>> {
        pay::pay(&self.state, uuid, options).await
    }

    /// Makes the invoice expire now; the ticker then reports `cancel` (if configured).
    pub fn expire(&self, uuid: &str) -> Option<Invoice> {
        self.state.expire(uuid)
    }

    /// Moves the simulator's clock forward: every invoice ages by `by`.
    pub fn advance_clock(&self, by: Duration) {
        self.state.clock.advance(by);
    }

    /// Unix seconds on the simulator's clock.
    pub fn now(&self) -> i64 {
        self.state.clock.now()
    }

    /// Every recorded API call, oldest first.
    pub fn calls(&self) -> Vec<ApiCall> {
        self.state.calls_since(0)
    }

    pub fn calls_since(&self, seq: u64) -> Vec<ApiCall> {
        self.state.calls_since(seq)
    }

    /// Every recorded webhook delivery attempt, oldest first.
    pub fn deliveries(&self) -> Vec<DeliveryRecord> {
        self.state.deliveries_since(0)
    }

    pub fn deliveries_since(&self, seq: u64) -> Vec<DeliveryRecord> {
        self.state.deliveries_since(seq)
    }

    /// Waits until `done` holds for the recorded deliveries, re-checking after each new one.
    pub async fn wait_for_deliveries<F>(
        &self,
        timeout: Duration,
        done: F,
    ) -> Result<Vec<DeliveryRecord>, WaitTimeout>
    where
        F: Fn(&[DeliveryRecord]) -> bool,
    {
        crate::wait::wait_until(&self.state.changed, timeout, || self.deliveries(), done)
            .await
            .map_err(|deliveries| WaitTimeout {
                waited: timeout,
                summary: summarize(&deliveries),
                deliveries,
            })
    }

    pub fn apply_fault(&self, fault: ApiFault) {
        self.state.apply(fault);
    }

    /// The next `times` API calls get `500`.
    pub fn fail_with_500(&self, times: usize) {
        self.apply_fault(ApiFault::ServerError { times: Some(times) });
    }

    /// `true`: every API call gets `503` until `set_down(false)`.
    pub fn set_down(&self, down: bool) {
        self.apply_fault(if down { ApiFault::Down } else { ApiFault::Up });
    }

    /// `Some(d)`: every API call is held `d`, then answered `503`; `None` ends it.
    pub fn set_hang(&self, hold: Option<Duration>) {
        match hold {
            Some(d) => self.apply_fault(ApiFault::Hang {
                ms: millis(d),
                times: None,
            }),
            None => self.apply_fault(ApiFault::Up),
        }
    }

    /// Delay before every API answer; `Duration::ZERO` removes it.
    pub fn set_latency(&self, latency: Duration) {
        self.apply_fault(ApiFault::Latency {
            ms: millis(latency),
        });
    }

    pub fn clear_faults(&self) {
        self.apply_fault(ApiFault::Clear);
    }

    /// Forgets invoices, recordings and faults, and resets the clock.
    pub fn reset(&self) {
        self.state.reset();
    }

    /// Stops serving, webhook retries and delayed payments, and waits for the server tasks.
    /// Other clones of the handle stop working too.
    pub async fn shutdown(self) {
        self.state.stop.cancel();
        let tasks = std::mem::take(
            &mut *self
                .server
                .tasks
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        crate::wait::join(tasks, "Heleket").await;
    }
}

/// Stores each expiry once and reports it by webhook, as Heleket reports `cancel`.
async fn expire_loop(state: Arc<state::State>) {
    let mut tick = tokio::time::interval(state.config.expiry_tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = state.stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        for invoice in state.take_expired() {
            tracing::info!(uuid = %invoice.uuid, status = %invoice.status, "Invoice expired.");
            if state.config.cancel_webhook_on_expiry {
                webhook::spawn_deliver(&state, invoice);
            }
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The last deliveries in one line, enough to see why a wait failed.
fn summarize(deliveries: &[DeliveryRecord]) -> String {
    crate::wait::summarize(deliveries, |d| {
        let answer = d
            .http_status
            .map_or_else(|| d.error.clone().unwrap_or_default(), |s| s.to_string());
        format!(
            "#{} {} {} try {}={answer}",
            d.seq, d.order_id, d.status, d.attempt
        )
    })
}
