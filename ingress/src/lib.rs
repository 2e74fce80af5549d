//! The HTTP front door: verifies each request, appends it to a Redis stream, answers.

pub mod error;
pub mod metrics;
mod routes;
mod server;
pub mod settings;

pub use error::{status_for, IngressError};
pub use routes::Route;
pub use settings::{HeleketInput, Settings, TelegramInput};

use anyhow::Context;
use shared::streams::Keys;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A bound, not yet serving ingress.
pub struct App {
    listener: TcpListener,
    local_addr: SocketAddr,
    state: Arc<routes::State>,
    limits: server::Limits,
}

/// Binds the listener and prepares the Redis client without contacting Redis, so the ingress
/// comes up (and reports not ready) while Redis is down.
pub async fn build(settings: Settings) -> anyhow::Result<App> {
    let redis = shared::redis_conn::connect(&settings.redis)
        .context("Failed to create the Redis client")?;
    let metrics = metrics::Metrics::new().context("Failed to register the metrics")?;
    let keys = Keys::new(settings.redis.namespace.clone());
    let heleket = settings
        .heleket
        .map(|h| routes::HeleketRoute::new(h.api_key, h.sources, &keys));
    let webhook = match settings.telegram {
        TelegramInput::Webhook { secret } => Some(routes::Webhook::new(secret, keys)),
        TelegramInput::MtProto => None,
    };
    let listener = TcpListener::bind(settings.addr)
        .await
        .with_context(|| format!("Failed to bind {}", settings.addr))?;
    let local_addr = listener
        .local_addr()
        .context("Failed to read the listener's address")?;
    Ok(App {
        listener,
        local_addr,
        state: Arc::new(routes::State {
            redis,
            redis_timeout: settings.redis.response_timeout,
            webhook,
            heleket,
            metrics,
            max_body_bytes: settings.max_body_bytes,
        }),
        limits: server::Limits {
            max_connections: settings.max_connections,
            shutdown_grace: settings.shutdown_grace,
        },
    })
}

impl App {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` is cancelled, then stops accepting and lets in-flight requests
    /// finish within the grace period.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(
            addr = %self.local_addr,
            payments = self.state.heleket.is_some(),
            "Ingress listening."
        );
        server::serve(self.listener, self.state, self.limits, shutdown).await
    }
}
