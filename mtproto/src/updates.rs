//! The inbound half: raw updates from grammers, converted to our events, with an explicit
//! commit of how far they were durably handled.
//!
//! Two small tasks sit around grammers' update stream:
//! - a relay in front of it counts what grammers repairs silently (a closed connection or
//!   malformed updates become a gap, refilled with getDifference) and logs it;
//! - a pump behind it drives `next_raw` without ever being cancelled, so the caller may drop a
//!   [`MtprotoUpdates::next`] future (a `select!` on shutdown) without losing a batch that
//!   grammers had already taken off its queue.

use crate::client::{stop_runner, Pool};
use crate::commit_state::{Pending, Position};
use crate::convert::{convert, Converted};
use crate::error::MtprotoError;
use grammers_client::client::UpdateStream;
use grammers_client::{Client, InvocationError};
use grammers_mtsender::UpdatesConfiguration;
use grammers_session::storages::ErasedSession;
use grammers_session::updates::UpdatesLike;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Same as grammers' own updates channel.
const CHANNEL_CAPACITY: usize = 100;
/// Pause after a failed fetch, doubling up to the cap and reset by the next update. A single
/// consumer per bot, so no jitter is needed.
const FETCH_RETRY_MIN: Duration = Duration::from_secs(1);
const FETCH_RETRY_MAX: Duration = Duration::from_secs(60);

/// Counts since [`crate::connect`] of what grammers repairs by itself and would otherwise
/// only log. Monotonic: export them as counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamIncidents {
    /// The home connection closed. grammers reconnects on the next request and fetches the
    /// updates missed meanwhile with getDifference.
    pub connection_resets: u64,
    /// Telegram pushed updates that could not be parsed; also refilled by getDifference.
    pub malformed_updates: u64,
    /// [`MtprotoError::Updates`] returned by `next`.
    pub fetch_errors: u64,
}

#[derive(Default)]
struct Counters {
    connection_resets: AtomicU64,
    malformed_updates: AtomicU64,
    fetch_errors: AtomicU64,
}

enum Pumped {
    Update {
        converted: Converted,
        position: Option<Position>,
    },
    Failed {
        error: InvocationError,
        retry_in: Duration,
    },
}

/// The bot's updates, in order. One per session file: two processes on one session break
/// each other.
pub struct MtprotoUpdates {
    items: mpsc::Receiver<Pumped>,
    pending: Pending,
    session: Arc<ErasedSession>,
    client: Client,
    runner: JoinHandle<()>,
    relay: JoinHandle<()>,
    pump: JoinHandle<()>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for MtprotoUpdates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MtprotoUpdates")
            .field("incidents", &self.incidents())
            .finish_non_exhaustive()
    }
}

impl MtprotoUpdates {
    pub(crate) async fn start(pool: Pool, catch_up: bool) -> Result<Self, MtprotoError> {
        let Pool {
            client,
            session,
            updates,
            runner,
        } = pool;
        let counters = Arc::new(Counters::default());
        let (relay_tx, relay_rx) = mpsc::channel(CHANNEL_CAPACITY);
        let relay = tokio::spawn(relay_updates(updates, relay_tx, Arc::clone(&counters)));
        let stream = match client
            .stream_updates(relay_rx, UpdatesConfiguration { catch_up })
            .await
        {
            Ok(stream) => stream,
            Err(source) => {
                relay.abort();
                stop_runner(&client, runner).await;
                return Err(MtprotoError::Telegram {
                    step: "loading the update state",
                    source,
                });
            }
        };
        let (tx, items) = mpsc::channel(CHANNEL_CAPACITY);
        let pump = tokio::spawn(pump(stream, tx));
        Ok(Self {
            items,
            pending: Pending::default(),
            session,
            client,
            runner,
            relay,
            pump,
            counters,
        })
    }

    /// The next update, converted. Cancel-safe.
    ///
    /// [`MtprotoError::Updates`] is transient: the stream pauses and retries by itself, so
    /// call `next` again. [`MtprotoError::Closed`] is final.
    pub async fn next(&mut self) -> Result<Converted, MtprotoError> {
        match self.items.recv().await {
            Some(Pumped::Update {
                converted,
                position,
            }) => {
                if let Some(position) = position {
                    self.pending.record(position);
                }
                Ok(converted)
            }
            Some(Pumped::Failed { error, retry_in }) => {
                self.counters.fetch_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    error.message = %error,
                    error.cause_chain = ?error,
                    retry_in_ms = retry_in.as_millis() as u64,
                    "Fetching Telegram updates failed; the stream retries by itself."
                );
                Err(MtprotoError::Updates {
                    source: Box::new(error),
                })
            }
            None => Err(MtprotoError::Closed),
        }
    }

    /// Persists the update state up to the last update `next` returned, so a restart
    /// catches up from there. Call it only once everything `next` returned is durably
    /// stored: whatever was returned after the last commit is replayed after a crash.
    pub async fn commit(&mut self) -> Result<(), MtprotoError> {
        for state in self.pending.states() {
            self.session
                .set_update_state(state)
                .await
                .map_err(|source| MtprotoError::Commit { source })?;
        }
        // Cleared only once all are written: rewriting one after a failure is harmless.
        self.pending.clear();
        Ok(())
    }

    pub fn incidents(&self) -> StreamIncidents {
        StreamIncidents {
            connection_resets: self.counters.connection_resets.load(Ordering::Relaxed),
            malformed_updates: self.counters.malformed_updates.load(Ordering::Relaxed),
            fetch_errors: self.counters.fetch_errors.load(Ordering::Relaxed),
        }
    }

    /// Closes every connection of the bot, so the [`crate::MtprotoSender`] clones stop
    /// working too: stop sending first. Does not commit.
    pub async fn disconnect(self) {
        stop_runner(&self.client, self.runner).await;
        self.pump.abort();
        self.relay.abort();
    }
}

async fn relay_updates(
    mut from: mpsc::Receiver<UpdatesLike>,
    to: mpsc::Sender<UpdatesLike>,
    counters: Arc<Counters>,
) {
    while let Some(updates) = from.recv().await {
        match updates {
            UpdatesLike::ConnectionClosed => {
                counters.connection_resets.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("Telegram connection closed; missed updates will be fetched.");
            }
            UpdatesLike::MalformedUpdates => {
                counters.malformed_updates.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("Telegram sent malformed updates; they will be fetched again.");
            }
            _ => {}
        }
        // Waits while the stream is busy; grammers then drops updates in front of us, which
        // it logs ("updates channel full") and later refills as a gap.
        if to.send(updates).await.is_err() {
            return;
        }
    }
}

async fn pump(mut stream: UpdateStream, tx: mpsc::Sender<Pumped>) {
    let mut retry_in = FETCH_RETRY_MIN;
    loop {
        let item = match stream.next_raw().await {
            Ok((update, state, peers)) => {
                retry_in = FETCH_RETRY_MIN;
                Pumped::Update {
                    converted: convert(&update, &peers),
                    position: Position::of(&update, &state),
                }
            }
            // The pool has quit or died; the closed channel tells `next`.
            Err(InvocationError::Dropped(reason)) => {
                tracing::debug!(reason, "Telegram update stream ended.");
                return;
            }
            Err(error) => {
                let pause = retry_in;
                retry_in = (retry_in * 2).min(FETCH_RETRY_MAX);
                if tx
                    .send(Pumped::Failed {
                        error,
                        retry_in: pause,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        if tx.send(item).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests;
