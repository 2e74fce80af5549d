//! The gateway's life: wait as a standby for the lease; while holding it, run MTProto
//! sessions (updates onto the stream, the outbound stream out to Telegram), rebuilding a
//! session that breaks; stop everything before the lease could pass to a standby.

use crate::blocked::StreamBlockedRecorder;
use crate::lease::{HeldLease, Lease, LeaseSettings};
use crate::metrics::GatewayMetrics;
use crate::relay::{Relay, RelayEnd};
use crate::source::UpdateSource;
use consumer::{Backoff, Consumer, ConsumerSettings};
use redis::aio::ConnectionManager;
use sender::{SenderHandler, Transport, TurnScript};
use shared::config::RedisSettings;
use shared::gcra::Rate;
use shared::redis_conn;
use shared::streams::{Keys, SENDER_GROUP, SINGLE_PARTITION};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Opens a session with Telegram: its updates and its way of sending.
pub trait Connector: Send + Sync + 'static {
    type Source: UpdateSource + 'static;
    type Transport: Transport;

    fn connect(
        &self,
    ) -> impl Future<Output = anyhow::Result<(Self::Source, Self::Transport)>> + Send;
}

type OutboundConsumer<T> = Consumer<SenderHandler<T, StreamBlockedRecorder>>;

/// What the gateway needs besides its connector; tests build it directly.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub redis: RedisSettings,
    pub consumer: ConsumerSettings,
    pub lease: LeaseSettings,
    pub global_rate: Rate,
    pub chat_rate: Rate,
}

pub struct Gateway<C> {
    config: GatewayConfig,
    connector: C,
    conn: ConnectionManager,
    keys: Keys,
    metrics: GatewayMetrics,
}

/// How one session ended.
enum SessionEnd {
    Stopped,
    Lost(String),
    FailedToConnect(anyhow::Error),
}

impl<C: Connector> Gateway<C> {
    pub fn new(
        config: GatewayConfig,
        connector: C,
        conn: ConnectionManager,
        metrics: GatewayMetrics,
    ) -> Self {
        let keys = Keys::new(config.redis.namespace.clone());
        Self {
            config,
            connector,
            conn,
            keys,
            metrics,
        }
    }

    /// Runs until `shutdown`: on return the session is closed and the lease released.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let lease = Lease::new(self.conn.clone(), self.config.lease.clone())?;
        let mut retry = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        loop {
            let held = match lease.acquire(&shutdown).await {
                Ok(Some(held)) => held,
                Ok(None) => return Ok(()),
                Err(e) => {
                    tracing::warn!(error.message = %e, "Could not contend for the gateway lease; retrying.");
                    if pause(retry.next_delay(), &shutdown).await {
                        continue;
                    }
                    return Ok(());
                }
            };
            retry.reset();
            self.metrics.set_lease_active(true);
            self.while_held(&held, &shutdown).await;
            self.metrics.set_lease_active(false);
            if held.lost().is_cancelled() && !shutdown.is_cancelled() {
                tracing::warn!(
                    fencing_token = held.fencing_token(),
                    "Gateway lease lost; Telegram sessions stopped, waiting as a standby."
                );
            }
            if let Err(e) = held.release().await {
                tracing::warn!(error.message = %e, "Could not release the gateway lease; it expires by itself.");
            }
            if shutdown.is_cancelled() {
                return Ok(());
            }
        }
    }

    /// Sessions, one after another, until the lease is lost or shutdown comes.
    async fn while_held(&self, held: &HeldLease, shutdown: &CancellationToken) {
        let active = shutdown.child_token();
        let lost = held.lost();
        let watcher = {
            let active = active.clone();
            tokio::spawn(async move {
                lost.cancelled().await;
                active.cancel();
            })
        };
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        while !active.is_cancelled() {
            match self.session(&active).await {
                SessionEnd::Stopped => self.metrics.session_ended("stopped"),
                SessionEnd::Lost(reason) => {
                    self.metrics.session_ended("lost");
                    tracing::warn!(%reason, "MTProto session lost; reconnecting.");
                }
                SessionEnd::FailedToConnect(e) => {
                    self.metrics.session_ended("failed_to_connect");
                    tracing::error!(error.message = %format!("{e:#}"), "Could not open an MTProto session; retrying.");
                    if !pause(backoff.next_delay(), &active).await {
                        break;
                    }
                    continue;
                }
            }
            backoff.reset();
        }
        watcher.abort();
    }

    async fn session(&self, active: &CancellationToken) -> SessionEnd {
        let (mut source, transport) = match self.connector.connect().await {
            Ok(opened) => opened,
            Err(e) => return SessionEnd::FailedToConnect(e),
        };
        tracing::info!("MTProto session open; relaying updates and sending.");
        let session = active.child_token();
        let sending = match self.sender(transport, &session) {
            Ok(consumer) => consumer,
            Err(e) => {
                source.close().await;
                return SessionEnd::FailedToConnect(e);
            }
        };
        let tasks = [
            tokio::spawn(Arc::clone(&sending).run(session.clone())),
            tokio::spawn(sending.run_trimmer(session.clone())),
        ];
        let relay = Relay {
            conn: self.conn.clone(),
            stream: self.keys.updates_stream(SINGLE_PARTITION),
            metrics: self.metrics.clone(),
        };
        let end = relay.run(&mut source, &session).await;
        // Sending stops with the session: its connection is about to close.
        session.cancel();
        for task in tasks {
            let _ = task.await;
        }
        source.close().await;
        match end {
            RelayEnd::Stopped => SessionEnd::Stopped,
            RelayEnd::Lost(e) => SessionEnd::Lost(e.to_string()),
        }
    }

    fn sender(
        &self,
        transport: C::Transport,
        session: &CancellationToken,
    ) -> anyhow::Result<Arc<OutboundConsumer<C::Transport>>> {
        let updates_stream = self.keys.updates_stream(SINGLE_PARTITION);
        let handler = SenderHandler {
            transport,
            blocked: StreamBlockedRecorder {
                conn: self.conn.clone(),
                updates_stream,
            },
            conn: self.conn.clone(),
            keys: self.keys.clone(),
            turn: TurnScript::default(),
            global_rate: self.config.global_rate,
            chat_rate: self.config.chat_rate,
            metrics: self.metrics.sends.clone(),
            shutdown: session.clone(),
        };
        let stream = self.keys.outbound_stream(SINGLE_PARTITION);
        let blocking =
            redis_conn::connect_for_blocking(&self.config.redis, self.config.consumer.block)?;
        Ok(Arc::new(Consumer::new(
            self.conn.clone(),
            blocking,
            stream.clone(),
            self.keys.dead_letter_stream(&stream),
            SENDER_GROUP,
            self.config.consumer.clone(),
            Arc::new(handler),
            self.metrics.consumer.clone(),
        )))
    }
}

/// Sleeps unless `token` fires first; false means "stop".
async fn pause(d: Duration, token: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = token.cancelled() => false,
    }
}
