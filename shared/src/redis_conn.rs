use crate::config::RedisSettings;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;

/// A multiplexed, self-reconnecting Redis connection. It is created without contacting Redis,
/// so a process starts (and reports not-ready) while Redis is down, and recovers by itself
/// when Redis returns.
pub fn connect(settings: &RedisSettings) -> redis::RedisResult<ConnectionManager> {
    connect_with_timeout(settings, settings.response_timeout)
}

/// A connection for blocking commands (`XREADGROUP ... BLOCK`): a blocked command holds its
/// whole connection, so these never share one with other traffic, and their response timeout
/// must outlast the block.
pub fn connect_for_blocking(
    settings: &RedisSettings,
    block: Duration,
) -> redis::RedisResult<ConnectionManager> {
    connect_with_timeout(settings, settings.response_timeout + block)
}

fn connect_with_timeout(
    settings: &RedisSettings,
    response_timeout: Duration,
) -> redis::RedisResult<ConnectionManager> {
    let client = redis::Client::open(settings.url.as_str())?;
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(response_timeout))
        .set_connection_timeout(Some(settings.connect_timeout))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_lazy_with_config(client, config)
}

/// `PING` within the response timeout: what `/readyz` asks.
pub async fn ping(conn: &mut ConnectionManager) -> bool {
    matches!(
        redis::cmd("PING").query_async::<String>(conn).await,
        Ok(ref pong) if pong == "PONG"
    )
}
