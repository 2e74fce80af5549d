//! The worker's settings, read once at start.

use shared::config::{socket_addr, BotApiSettings, ConfigError, Env, RedisSettings};
use shared::secret::SecretString;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Updates,
    Sender,
}

impl Role {
    pub const ALL: [Role; 2] = [Role::Updates, Role::Sender];

    fn parse(s: &str) -> Option<Role> {
        match s {
            "updates" => Some(Role::Updates),
            "sender" => Some(Role::Sender),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::Updates => "updates",
            Role::Sender => "sender",
        }
    }
}

/// How a consumer reads its stream.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// Entries read per `XREADGROUP`.
    pub batch_size: usize,
    /// How long one `XREADGROUP` blocks when the stream is empty.
    pub block: Duration,
    /// An entry pending this long with a consumer is taken over by another (`XAUTOCLAIM`).
    pub claim_idle: Duration,
    /// How often each consumer looks for such entries.
    pub claim_interval: Duration,
    /// After this many deliveries an entry goes to the dead-letter stream.
    pub max_deliveries: u64,
    /// How often acknowledged entries are trimmed from the streams.
    pub trim_interval: Duration,
    /// Dead-letter streams keep about this many entries.
    pub dead_letter_max_len: usize,
}

impl ConsumerSettings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let s = Self {
            batch_size: env.parsed_or("STREAM_BATCH_SIZE", 64)?,
            block: env.millis_or("STREAM_BLOCK_MS", 2_000)?,
            claim_idle: env.millis_or("STREAM_CLAIM_IDLE_MS", 30_000)?,
            claim_interval: env.millis_or("STREAM_CLAIM_INTERVAL_MS", 5_000)?,
            max_deliveries: env.parsed_or("STREAM_MAX_DELIVERIES", 5)?,
            trim_interval: env.millis_or("STREAM_TRIM_INTERVAL_MS", 10_000)?,
            dead_letter_max_len: env.parsed_or("STREAM_DEAD_LETTER_MAX_LEN", 100_000)?,
        };
        if s.batch_size == 0 || s.max_deliveries == 0 {
            return Err(ConfigError::Invalid {
                var: "STREAM_BATCH_SIZE",
                reason: "batch size and max deliveries must be positive".into(),
            });
        }
        Ok(s)
    }
}

/// A per-user limit: `rate` actions per `period`, with bursts of up to `burst`.
#[derive(Debug, Clone, Copy)]
pub struct LimitSettings {
    pub rate: u32,
    pub period: Duration,
    pub burst: u32,
}

#[derive(Debug, Clone, Copy)]
pub struct RateLimits {
    /// Every message and button press.
    pub messages: LimitSettings,
    /// Expensive actions such as creating an invoice.
    pub expensive: LimitSettings,
}

impl RateLimits {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let minute = Duration::from_secs(60);
        let limits = Self {
            messages: LimitSettings {
                rate: env.parsed_or("RATE_LIMIT_PER_MINUTE", 30)?,
                period: minute,
                burst: env.parsed_or("RATE_LIMIT_BURST", 10)?,
            },
            expensive: LimitSettings {
                rate: env.parsed_or("RATE_LIMIT_EXPENSIVE_PER_MINUTE", 5)?,
                period: minute,
                burst: env.parsed_or("RATE_LIMIT_EXPENSIVE_BURST", 2)?,
            },
        };
        for l in [limits.messages, limits.expensive] {
            if l.rate == 0 || l.burst == 0 {
                return Err(ConfigError::Invalid {
                    var: "RATE_LIMIT_PER_MINUTE",
                    reason: "rates and bursts must be positive".into(),
                });
            }
        }
        Ok(limits)
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: SecretString,
    pub database_pool_size: u32,
    pub redis: RedisSettings,
    pub bot: BotApiSettings,
    pub metrics_addr: SocketAddr,
    pub roles: HashSet<Role>,
    pub consumer: ConsumerSettings,
    pub rate_limits: RateLimits,
    pub admin_ids: HashSet<i64>,
    pub shutdown_grace: Duration,
}

impl Settings {
    /// `roles` comes from the command line (`--roles`); `None` means every role.
    pub fn from_env(env: &Env, roles: Option<&str>) -> Result<Self, ConfigError> {
        Ok(Self {
            database_url: env.secret("DATABASE_URL")?,
            database_pool_size: env.parsed_or("DATABASE_POOL_SIZE", 16)?,
            redis: RedisSettings::from_env(env)?,
            bot: BotApiSettings::from_env(env)?,
            metrics_addr: socket_addr(env, "WORKER_METRICS_ADDR", "0.0.0.0:9090")?,
            roles: parse_roles(roles)?,
            consumer: ConsumerSettings::from_env(env)?,
            rate_limits: RateLimits::from_env(env)?,
            admin_ids: parse_admin_ids(env.get("ADMIN_IDS"))?,
            shutdown_grace: Duration::from_secs(env.parsed_or("SHUTDOWN_GRACE_SECS", 20)?),
        })
    }
}

fn parse_roles(raw: Option<&str>) -> Result<HashSet<Role>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Role::ALL.into_iter().collect());
    };
    let mut roles = HashSet::new();
    for name in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let role = Role::parse(name).ok_or_else(|| ConfigError::Invalid {
            var: "--roles",
            reason: format!("unknown role {name:?} (known: updates, sender)"),
        })?;
        roles.insert(role);
    }
    if roles.is_empty() {
        return Err(ConfigError::Invalid {
            var: "--roles",
            reason: "no role given".into(),
        });
    }
    Ok(roles)
}

fn parse_admin_ids(raw: Option<&str>) -> Result<HashSet<i64>, ConfigError> {
    raw.unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse().map_err(|_| ConfigError::Invalid {
                var: "ADMIN_IDS",
                reason: "expected a comma list of Telegram user ids".into(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse() {
        assert_eq!(parse_roles(None).unwrap().len(), 2);
        assert_eq!(
            parse_roles(Some("sender")).unwrap(),
            [Role::Sender].into_iter().collect()
        );
        assert!(parse_roles(Some("bogus")).is_err());
        assert!(parse_roles(Some("")).is_err());
    }

    #[test]
    fn missing_database_url_is_one_line() {
        let err = Settings::from_env(&Env::default(), None).unwrap_err();
        assert_eq!(err.to_string(), "missing setting DATABASE_URL");
    }
}
