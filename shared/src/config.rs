//! Typed settings read once from the environment (see `contract.md`). Each process builds its
//! own struct from these parts; a missing or invalid variable is one `ConfigError` line.

use crate::secret::SecretString;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("missing setting {var}")]
    Missing { var: &'static str },
    #[error("invalid setting {var}: {reason}")]
    Invalid { var: &'static str, reason: String },
}

/// Where settings come from: the process environment, or a map in tests.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    pub fn from_process() -> Self {
        Self {
            vars: std::env::vars().collect(),
        }
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }

    /// Empty values count as unset, as a shell's `VAR=` usually means "not configured".
    pub fn get(&self, var: &str) -> Option<&str> {
        self.vars
            .get(var)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// For the few settings where "set but empty" means something (an empty allow-list).
    pub fn get_even_if_empty(&self, var: &str) -> Option<&str> {
        self.vars.get(var).map(String::as_str)
    }

    pub fn required(&self, var: &'static str) -> Result<&str, ConfigError> {
        self.get(var).ok_or(ConfigError::Missing { var })
    }

    pub fn secret(&self, var: &'static str) -> Result<SecretString, ConfigError> {
        self.required(var).map(SecretString::new)
    }

    pub fn parsed_or<T>(&self, var: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.get(var) {
            None => Ok(default),
            Some(raw) => raw
                .trim()
                .parse()
                .map_err(|e: T::Err| ConfigError::Invalid {
                    var,
                    reason: e.to_string(),
                }),
        }
    }

    pub fn millis_or(&self, var: &'static str, default_ms: u64) -> Result<Duration, ConfigError> {
        self.parsed_or(var, default_ms).map(Duration::from_millis)
    }
}

fn invalid(var: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        var,
        reason: reason.into(),
    }
}

#[derive(Debug, Clone)]
pub struct RedisSettings {
    pub url: String,
    /// Prefix of every key this deployment owns, so several deployments (or tests) can share
    /// one Redis.
    pub namespace: String,
    pub response_timeout: Duration,
    pub connect_timeout: Duration,
}

impl RedisSettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let url = env.get("REDIS_URL").unwrap_or("redis://127.0.0.1:6379");
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err(invalid(
                "REDIS_URL",
                "must start with redis:// or rediss://",
            ));
        }
        let namespace = env.get("PAYSTREAM_NAMESPACE").unwrap_or("ps").to_owned();
        if namespace.contains(['{', '}', ' ']) {
            return Err(invalid(
                "PAYSTREAM_NAMESPACE",
                "must not contain braces or spaces",
            ));
        }
        Ok(Self {
            url: url.to_owned(),
            namespace,
            response_timeout: env.millis_or("REDIS_TIMEOUT_MS", 2_000)?,
            connect_timeout: env.millis_or("REDIS_CONNECT_TIMEOUT_MS", 1_000)?,
        })
    }

    pub fn for_url(url: impl Into<String>, namespace: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            namespace: namespace.into(),
            response_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    BotApi,
    MtProto,
}

impl Transport {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        match env.get("TELEGRAM_TRANSPORT").unwrap_or("botapi") {
            "botapi" => Ok(Self::BotApi),
            "mtproto" => Ok(Self::MtProto),
            other => Err(invalid(
                "TELEGRAM_TRANSPORT",
                format!("expected botapi or mtproto, got {other:?}"),
            )),
        }
    }
}

/// The secret Telegram sends in `X-Telegram-Bot-Api-Secret-Token`: 1–256 of `A-Za-z0-9_-`.
pub fn webhook_secret(env: &Env) -> Result<SecretString, ConfigError> {
    let secret = env.secret("TELEGRAM_WEBHOOK_SECRET")?;
    let value = secret.expose_secret();
    let well_formed = (1..=256).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if well_formed {
        Ok(secret)
    } else {
        Err(invalid(
            "TELEGRAM_WEBHOOK_SECRET",
            "must be 1-256 characters of A-Za-z0-9_-",
        ))
    }
}

#[derive(Debug, Clone)]
pub struct BotApiSettings {
    pub token: SecretString,
    pub api_url: String,
    pub request_timeout: Duration,
    /// Messages per second across every sender copy.
    pub send_rate: f64,
    /// Messages per second to one private chat.
    pub chat_send_rate: f64,
}

impl BotApiSettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let token = env.secret("TELEGRAM_BOT_TOKEN")?;
        let token_ok = !token.expose_secret().is_empty()
            && !token.expose_secret().contains(['/', '?', '#', ' ']);
        if !token_ok {
            return Err(invalid("TELEGRAM_BOT_TOKEN", "not a bot token"));
        }
        let api_url = env
            .get("TELEGRAM_API_URL")
            .unwrap_or("https://api.telegram.org")
            .trim_end_matches('/')
            .to_owned();
        if !(api_url.starts_with("http://") || api_url.starts_with("https://")) {
            return Err(invalid("TELEGRAM_API_URL", "must be an http(s) URL"));
        }
        let send_rate: f64 = env.parsed_or("TELEGRAM_SEND_RATE", 30.0)?;
        let chat_send_rate: f64 = env.parsed_or("TELEGRAM_CHAT_SEND_RATE", 1.0)?;
        for (var, rate) in [
            ("TELEGRAM_SEND_RATE", send_rate),
            ("TELEGRAM_CHAT_SEND_RATE", chat_send_rate),
        ] {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(invalid(var, "must be a positive number"));
            }
        }
        Ok(Self {
            token,
            api_url,
            request_timeout: env.millis_or("TELEGRAM_TIMEOUT_MS", 10_000)?,
            send_rate,
            chat_send_rate,
        })
    }
}

/// Heleket's documented webhook sender address (`HELEKET_ALLOWED_IPS` default).
pub const HELEKET_WEBHOOK_IP: &str = "31.133.220.8";

#[derive(Debug, Clone)]
pub struct HeleketSettings {
    pub merchant_id: String,
    /// The payment API key: signs requests and verifies webhooks.
    pub api_key: SecretString,
    pub api_url: String,
    /// Limit on each HTTP attempt, connect to last body byte (`HELEKET_TIMEOUT_MS`).
    pub request_timeout: Duration,
    /// Retries after the first attempt of a call, for retryable failures only
    /// (`HELEKET_RETRIES`, default 3, at most 10).
    pub retries: u32,
    /// First backoff cap; doubles per retry up to `retry_max`, full jitter
    /// (`HELEKET_RETRY_BASE_MS`, default 200).
    pub retry_base: Duration,
    /// Largest backoff between two attempts (`HELEKET_RETRY_MAX_MS`, default 5000).
    pub retry_max: Duration,
    /// Consecutive failed calls that open the circuit breaker (`HELEKET_BREAKER_FAILURES`,
    /// default 5, at least 1).
    pub breaker_failures: u32,
    /// How long the breaker stays open before a trial call (`HELEKET_BREAKER_OPEN_SECS`,
    /// default 30).
    pub breaker_open_for: Duration,
}

impl HeleketSettings {
    /// Settings for a given API base (tests, simulators) with the defaults of `from_env`.
    pub fn for_url(
        api_url: impl Into<String>,
        merchant_id: impl Into<String>,
        api_key: SecretString,
    ) -> Self {
        Self {
            merchant_id: merchant_id.into(),
            api_key,
            api_url: api_url.into().trim_end_matches('/').to_owned(),
            request_timeout: Duration::from_secs(10),
            retries: 3,
            retry_base: Duration::from_millis(200),
            retry_max: Duration::from_secs(5),
            breaker_failures: 5,
            breaker_open_for: Duration::from_secs(30),
        }
    }

    /// The one place a Heleket client is built. Build it once per process and clone it:
    /// clones share the connection pool and the circuit breaker.
    pub fn client(
        &self,
    ) -> Result<crate::heleket::client::HeleketClient, crate::heleket::client::BuildError> {
        crate::heleket::client::HeleketClient::new(self)
    }

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let merchant_id = env.required("HELEKET_MERCHANT_ID")?.to_owned();
        if !merchant_id.bytes().all(|b| b.is_ascii_graphic()) {
            // Sent as the `merchant` header.
            return Err(invalid(
                "HELEKET_MERCHANT_ID",
                "must be printable ASCII without spaces",
            ));
        }
        let api_key = env.secret("HELEKET_API_KEY")?;
        let api_url = env
            .get("HELEKET_API_URL")
            .unwrap_or("https://api.heleket.com")
            .trim_end_matches('/')
            .to_owned();
        if !(api_url.starts_with("http://") || api_url.starts_with("https://")) {
            return Err(invalid("HELEKET_API_URL", "must be an http(s) URL"));
        }
        let retries: u32 = env.parsed_or("HELEKET_RETRIES", 3)?;
        if retries > 10 {
            return Err(invalid("HELEKET_RETRIES", "must be at most 10"));
        }
        let breaker_failures: u32 = env.parsed_or("HELEKET_BREAKER_FAILURES", 5)?;
        if breaker_failures == 0 {
            return Err(invalid("HELEKET_BREAKER_FAILURES", "must be at least 1"));
        }
        Ok(Self {
            merchant_id,
            api_key,
            api_url,
            request_timeout: positive(
                env.millis_or("HELEKET_TIMEOUT_MS", 10_000)?,
                "HELEKET_TIMEOUT_MS",
            )?,
            retries,
            retry_base: env.millis_or("HELEKET_RETRY_BASE_MS", 200)?,
            retry_max: env.millis_or("HELEKET_RETRY_MAX_MS", 5_000)?,
            breaker_failures,
            breaker_open_for: env
                .parsed_or("HELEKET_BREAKER_OPEN_SECS", 30u64)
                .map(Duration::from_secs)?,
        })
    }
}

fn positive(d: Duration, var: &'static str) -> Result<Duration, ConfigError> {
    if d.is_zero() {
        Err(invalid(var, "must be greater than zero"))
    } else {
        Ok(d)
    }
}

/// Who may post Heleket webhooks: the allowed sender addresses (empty = any) and the
/// proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookSources {
    pub allowed: Vec<std::net::IpAddr>,
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl WebhookSources {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        // Unset means Heleket's documented address; set but empty means any sender.
        let allowed = env
            .get_even_if_empty("HELEKET_ALLOWED_IPS")
            .unwrap_or(HELEKET_WEBHOOK_IP);
        Ok(Self {
            allowed: ip_list("HELEKET_ALLOWED_IPS", allowed)?,
            trusted_proxies: ip_list(
                "HELEKET_TRUSTED_PROXIES",
                env.get("HELEKET_TRUSTED_PROXIES").unwrap_or(""),
            )?,
        })
    }
}

fn ip_list(var: &'static str, raw: &str) -> Result<Vec<std::net::IpAddr>, ConfigError> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|_| invalid(var, format!("{s:?} is not an IP address")))
        })
        .collect()
}

pub fn socket_addr(env: &Env, var: &'static str, default: &str) -> Result<SocketAddr, ConfigError> {
    env.get(var)
        .unwrap_or(default)
        .parse()
        .map_err(|e: std::net::AddrParseError| invalid(var, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_secret_is_validated_without_echoing_it() {
        let env = Env::from_pairs([("TELEGRAM_WEBHOOK_SECRET", "bad secret!")]);
        let err = webhook_secret(&env).unwrap_err();
        assert!(!err.to_string().contains("bad secret"));
        assert_eq!(
            webhook_secret(&Env::default()).unwrap_err(),
            ConfigError::Missing {
                var: "TELEGRAM_WEBHOOK_SECRET"
            }
        );
        let ok = Env::from_pairs([("TELEGRAM_WEBHOOK_SECRET", "abc_DEF-123")]);
        assert_eq!(webhook_secret(&ok).unwrap().expose_secret(), "abc_DEF-123");
    }

    #[test]
    fn rates_must_be_positive() {
        let env = Env::from_pairs([("TELEGRAM_BOT_TOKEN", "1:x"), ("TELEGRAM_SEND_RATE", "0")]);
        assert!(matches!(
            BotApiSettings::from_env(&env),
            Err(ConfigError::Invalid {
                var: "TELEGRAM_SEND_RATE",
                ..
            })
        ));
    }

    #[test]
    fn webhook_sources_default_to_heleket_and_empty_means_any() {
        let default = WebhookSources::from_env(&Env::default()).unwrap();
        assert_eq!(
            default.allowed,
            vec![HELEKET_WEBHOOK_IP.parse::<std::net::IpAddr>().unwrap()]
        );
        let any =
            WebhookSources::from_env(&Env::from_pairs([("HELEKET_ALLOWED_IPS", "")])).unwrap();
        assert!(any.allowed.is_empty());
        assert!(
            WebhookSources::from_env(&Env::from_pairs([("HELEKET_TRUSTED_PROXIES", "nope")]))
                .is_err()
        );
    }

    #[test]
    fn heleket_defaults_and_limits() {
        let base = [("HELEKET_MERCHANT_ID", "m-1"), ("HELEKET_API_KEY", "k")];
        let s = HeleketSettings::from_env(&Env::from_pairs(base)).unwrap();
        assert_eq!(s.api_url, "https://api.heleket.com");
        assert_eq!(s.retries, 3);
        assert_eq!(s.breaker_failures, 5);
        assert_eq!(s.breaker_open_for, Duration::from_secs(30));
        assert!(s.retry_base <= s.retry_max);
        for bad in [
            ("HELEKET_RETRIES", "11"),
            ("HELEKET_BREAKER_FAILURES", "0"),
            ("HELEKET_TIMEOUT_MS", "0"),
            ("HELEKET_BREAKER_OPEN_SECS", "soon"),
            ("HELEKET_MERCHANT_ID", "m 1"),
        ] {
            let env = Env::from_pairs(base.into_iter().chain([bad]));
            assert!(
                matches!(
                    HeleketSettings::from_env(&env),
                    Err(ConfigError::Invalid { var, .. }) if var == bad.0
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn redis_defaults() {
        let s = RedisSettings::from_env(&Env::default()).unwrap();
        assert_eq!(s.url, "redis://127.0.0.1:6379");
        assert_eq!(s.namespace, "ps");
        assert!(RedisSettings::from_env(&Env::from_pairs([("REDIS_URL", "http://x")])).is_err());
    }
}
