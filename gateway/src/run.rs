//! `ingress mtproto`: the gateway process, from settings to a clean stop.

use crate::http::{serve, HttpState};
use crate::metrics::GatewayMetrics;
use crate::settings::GatewaySettings;
use crate::telegram::MtprotoConnector;
use crate::{Gateway, GatewayConfig};
use anyhow::Context;
use shared::gcra::Rate;
use shared::redis_conn;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Runs until `shutdown`, then stops sending and relaying, closes the MTProto session and
/// releases the lease, within the grace period.
pub async fn run(settings: GatewaySettings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let conn = redis_conn::connect(&settings.redis).context("Failed to configure Redis")?;
    let metrics = GatewayMetrics::new();
    let listener = TcpListener::bind(settings.addr)
        .await
        .with_context(|| format!("Failed to bind {}", settings.addr))?;
    let http_stop = CancellationToken::new();
    let http = tokio::spawn(serve(
        listener,
        HttpState {
            conn: conn.clone(),
            metrics: metrics.clone(),
        },
        http_stop.clone(),
    ));
    let bot = &settings.bot;
    let config = GatewayConfig {
        redis: settings.redis.clone(),
        consumer: settings.consumer.clone(),
        lease: settings.lease(),
        global_rate: Rate::per_second(bot.send_rate, bot.send_rate.ceil().max(1.0) as u32),
        chat_rate: Rate::per_second(bot.chat_send_rate, sender::CHAT_BURST),
    };
    let connector = MtprotoConnector {
        settings: mtproto::MtprotoSettings {
            api_id: settings.credentials.api_id,
            api_hash: settings.credentials.api_hash.clone(),
            bot_token: bot.token.clone(),
            session_path: settings.credentials.session_path.clone(),
        },
        metrics: metrics.clone(),
    };
    tracing::info!(addr = %settings.addr, "MTProto gateway started; contending for the lease.");
    let stop = CancellationToken::new();
    let mut gateway =
        tokio::spawn(Gateway::new(config, connector, conn, metrics).run(stop.clone()));
    let ended = tokio::select! {
        ended = &mut gateway => Some(ended),
        _ = shutdown.cancelled() => None,
    };
    let result = match ended {
        Some(ended) => ended.context("gateway task")?,
        None => {
            stop.cancel();
            match tokio::time::timeout(settings.shutdown_grace, gateway).await {
                Ok(ended) => ended.context("gateway task")?,
                Err(_) => {
                    tracing::warn!("Grace period over; the lease expires by itself.");
                    Ok(())
                }
            }
        }
    };
    http_stop.cancel();
    let _ = http.await;
    tracing::info!("MTProto gateway stopped.");
    result
}
