//! A Telegram Bot API simulator: a real HTTP server answering `/bot{TOKEN}/{method}` the way
//! api.telegram.org does, recording every call, with injectable faults and flood-limit
//! accounting. Tests run it in-process ([`TelegramSim::start`]); other processes use the
//! `telegram-sim` binary and its `/_sim/` control API.
//!
//! [`heleket`] is the same for the Heleket payment API (`heleket-sim` binary).

mod control;
mod faults;
pub mod heleket;
mod markup;
mod methods;
#[doc(hidden)]
pub mod process;
mod server;
mod state;
pub mod updates;
mod wait;
mod world;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use faults::{Fault, RateLimits, Violations};
pub use state::{CallHook, RecordedCall, SimConfig};
pub use updates::SimUser;

/// The bot `getMe` describes when the token does not start with a numeric id, and the bot
/// that [`updates`] puts in callback queries and chat-member changes.
pub const BOT_ID: i64 = 5_550_001;
pub const BOT_FIRST_NAME: &str = "PayStream";
pub const BOT_USERNAME: &str = "paystream_sim_bot";

/// Handle to a running simulator. Clones share it; the server stops when the last clone is
/// dropped or on [`TelegramSim::shutdown`].
#[derive(Clone)]
pub struct TelegramSim {
    state: Arc<state::State>,
    server: Arc<Server>,
}

impl std::fmt::Debug for TelegramSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramSim")
            .field("addr", &self.server.addr)
            .finish_non_exhaustive()
    }
}

struct Server {
    addr: SocketAddr,
    // Dropping the sender is what stops the accept loop when the last handle goes away.
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// [`TelegramSim::wait_until`] gave up; carries the calls seen, for the test's message.
#[derive(Debug, thiserror::Error)]
#[error("telegram sim: condition not met within {waited:?}; calls: {summary}")]
pub struct WaitTimeout {
    pub waited: Duration,
    pub calls: Vec<RecordedCall>,
    summary: String,
}

impl TelegramSim {
    /// Binds `addr` (use `127.0.0.1:0` in tests) and serves in a background task.
    pub async fn start(addr: SocketAddr) -> anyhow::Result<TelegramSim> {
        TelegramSim::start_with(addr, SimConfig::default()).await
    }

    pub async fn start_with(addr: SocketAddr, config: SimConfig) -> anyhow::Result<TelegramSim> {
        let (listener, addr) = wait::bind(addr, "Telegram").await?;
        let state = Arc::new(state::State::new(config));
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(server::run(listener, state.clone(), stopped));
        Ok(TelegramSim {
            state,
            server: Arc::new(Server {
                addr,
                stop,
                task: Mutex::new(Some(task)),
            }),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// The value for `TELEGRAM_API_URL`, e.g. `http://127.0.0.1:40123`.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// Every recorded call, oldest first.
    pub fn calls(&self) -> Vec<RecordedCall> {
        self.state.calls_since(0, None)
    }

    /// Calls with `seq` greater than `since`, oldest first.
    pub fn calls_since(&self, since: u64) -> Vec<RecordedCall> {
        self.state.calls_since(since, None)
    }

    /// Successful `sendMessage`, `editMessageText` and `editMessageReplyMarkup` calls to a chat:
    /// what that user actually saw.
    pub fn sends_to(&self, chat_id: i64) -> Vec<RecordedCall> {
        let mut calls = self.state.calls_since(0, Some(chat_id));
        calls.retain(|c| c.status == 200 && methods::MESSAGE_METHODS.contains(&c.method.as_str()));
        calls
    }

    /// Waits until `done` holds for the recorded calls, re-checking after every new call.
    pub async fn wait_until<F>(
        &self,
        timeout: Duration,
        done: F,
    ) -> Result<Vec<RecordedCall>, WaitTimeout>
    where
        F: Fn(&[RecordedCall]) -> bool,
    {
        wait::wait_until(&self.state.changed, timeout, || self.calls(), done)
            .await
            .map_err(|calls| WaitTimeout {
                waited: timeout,
                summary: summarize(&calls),
                calls,
            })
    }

    /// Calls `hook` with every Bot API call as it is answered (after faults and limits, so
    /// `status` is what the caller got) and the moment it was answered, in `seq` order. It
    /// runs under the simulator's lock: keep it short (hand the call to a channel). A second
    /// hook replaces the first; [`TelegramSim::reset`] keeps it.
    pub fn on_call(
        &self,
        hook: impl Fn(&RecordedCall, std::time::Instant) + Send + Sync + 'static,
    ) {
        self.state.set_hook(Some(Arc::new(hook)));
    }

    pub fn clear_call_hook(&self) {
        self.state.set_hook(None);
    }

    pub fn apply_fault(&self, fault: Fault) {
        self.state.apply(fault);
    }

    /// A `share` (0.0–1.0) of all Bot API calls from now on get 429 with `retry_after`,
    /// evenly spread; 0 ends it.
    pub fn fail_share_with_429(&self, share: f64, retry_after_secs: u64) {
        self.apply_fault(Fault::TooManyRequestsShare {
            share,
            retry_after: retry_after_secs,
            method: None,
        });
    }

    /// The next `times` calls (only those about `chat_id`, if given) get 429 with `retry_after`.
    pub fn fail_with_429(&self, times: usize, retry_after_secs: u64, chat_id: Option<i64>) {
        self.apply_fault(Fault::TooManyRequests {
            times,
            retry_after: retry_after_secs,
            chat_id,
            method: None,
        });
    }

    /// The next `times` calls get `500 Internal Server Error`.
    pub fn fail_with_500(&self, times: usize) {
        self.apply_fault(Fault::ServerError {
            times,
            chat_id: None,
            method: None,
        });
    }

    /// Every call about `chat_id` gets `403 Forbidden: bot was blocked by the user`.
    pub fn block_chat(&self, chat_id: i64) {
        self.apply_fault(Fault::BlockChat { chat_id });
    }

    pub fn unblock_chat(&self, chat_id: i64) {
        self.apply_fault(Fault::UnblockChat { chat_id });
    }

    /// Delay before every Bot API answer; `Duration::ZERO` removes it.
    pub fn set_latency(&self, latency: Duration) {
        let ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
        self.apply_fault(Fault::Latency { ms });
    }

    pub fn set_limits(&self, limits: RateLimits) {
        self.apply_fault(Fault::Limits(limits));
    }

    pub fn violations(&self) -> Violations {
        self.state.violations()
    }

    /// Forgets calls, messages, faults and counters (see [`RecordedCall::seq`]).
    pub fn reset(&self) {
        self.state.reset();
    }

    /// Stops accepting, gives open connections a short grace period, and waits for the
    /// server task. Other clones of the handle stop working too.
    pub async fn shutdown(self) {
        self.server.stop.send_replace(true);
        let task = self
            .server
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        wait::join(task, "Telegram").await;
    }
}

/// The last calls in one line, enough to see why a wait failed.
fn summarize(calls: &[RecordedCall]) -> String {
    wait::summarize(calls, |c| match c.chat_id {
        Some(chat) => format!("#{} {}({chat})={}", c.seq, c.method, c.status),
        None => format!("#{} {}={}", c.seq, c.method, c.status),
    })
}
