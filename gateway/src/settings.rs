//! Everything `ingress mtproto` reads from its environment, loaded once at startup.

use crate::lease::LeaseSettings;
use consumer::ConsumerSettings;
use shared::config::{self, BotApiSettings, ConfigError, Env, RedisSettings, Transport};
use shared::secret::SecretString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_ADDR: &str = "0.0.0.0:8080";
pub const DEFAULT_SESSION_PATH: &str = "paystream.session";
pub const DEFAULT_LEASE_TTL_MS: u64 = 15_000;

#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// `/healthz`, `/readyz`, `/metrics` (the gateway has no webhook routes).
    pub addr: SocketAddr,
    pub redis: RedisSettings,
    pub bot: BotApiSettings,
    pub credentials: MtprotoCredentials,
    pub consumer: ConsumerSettings,
    pub lease_ttl: Duration,
    pub shutdown_grace: Duration,
}

/// The MTProto application and where its session lives.
#[derive(Debug, Clone)]
pub struct MtprotoCredentials {
    pub api_id: i32,
    pub api_hash: SecretString,
    pub session_path: PathBuf,
}

impl GatewaySettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        if Transport::from_env(env)? != Transport::MtProto {
            return Err(ConfigError::Invalid {
                var: "TELEGRAM_TRANSPORT",
                reason: "`ingress mtproto` runs only with TELEGRAM_TRANSPORT=mtproto".into(),
            });
        }
        let api_id = match env.required("TELEGRAM_API_ID")?.trim().parse::<i32>() {
            Ok(id) if id > 0 => id,
            _ => {
                return Err(ConfigError::Invalid {
                    var: "TELEGRAM_API_ID",
                    reason: "must be the positive number from my.telegram.org".into(),
                })
            }
        };
        let lease_ttl = env.millis_or("GATEWAY_LEASE_TTL_MS", DEFAULT_LEASE_TTL_MS)?;
        if lease_ttl < Duration::from_secs(1) {
            return Err(ConfigError::Invalid {
                var: "GATEWAY_LEASE_TTL_MS",
                reason: "must be at least 1000".into(),
            });
        }
        Ok(Self {
            addr: config::socket_addr(env, "INGRESS_ADDR", DEFAULT_ADDR)?,
            redis: RedisSettings::from_env(env)?,
            bot: BotApiSettings::from_env(env)?,
            credentials: MtprotoCredentials {
                api_id,
                api_hash: env.secret("TELEGRAM_API_HASH")?,
                session_path: PathBuf::from(
                    env.get("TELEGRAM_SESSION_PATH")
                        .unwrap_or(DEFAULT_SESSION_PATH),
                ),
            },
            consumer: ConsumerSettings::from_env(env)?,
            lease_ttl,
            shutdown_grace: Duration::from_secs(env.parsed_or("SHUTDOWN_GRACE_SECS", 20)?),
        })
    }

    pub fn lease(&self) -> LeaseSettings {
        LeaseSettings::new(
            format!("{}:{{gateway}}:lease", self.redis.namespace),
            self.lease_ttl,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: [(&str, &str); 4] = [
        ("TELEGRAM_TRANSPORT", "mtproto"),
        ("TELEGRAM_BOT_TOKEN", "123:abc"),
        ("TELEGRAM_API_ID", "12345"),
        ("TELEGRAM_API_HASH", "0123456789abcdef0123456789abcdef"),
    ];

    fn without(var: &str) -> Env {
        Env::from_pairs(BASE.into_iter().filter(|(k, _)| *k != var))
    }

    #[test]
    fn complete_settings_load_with_defaults() {
        let s = GatewaySettings::from_env(&Env::from_pairs(BASE)).unwrap();
        assert_eq!(s.credentials.api_id, 12345);
        assert_eq!(
            s.credentials.session_path,
            PathBuf::from("paystream.session")
        );
        assert_eq!(s.lease_ttl, Duration::from_secs(15));
        assert_eq!(s.addr, DEFAULT_ADDR.parse().unwrap());
    }

    #[test]
    fn each_missing_credential_is_named() {
        for var in ["TELEGRAM_BOT_TOKEN", "TELEGRAM_API_ID", "TELEGRAM_API_HASH"] {
            let err = GatewaySettings::from_env(&without(var)).unwrap_err();
            assert_eq!(err, ConfigError::Missing { var }, "{var}");
            assert_eq!(err.to_string(), format!("missing setting {var}"));
        }
    }

    #[test]
    fn refuses_the_botapi_transport() {
        let err = GatewaySettings::from_env(&without("TELEGRAM_TRANSPORT")).unwrap_err();
        assert!(
            err.to_string().contains("TELEGRAM_TRANSPORT=mtproto"),
            "{err}"
        );
    }

    #[test]
    fn refuses_a_non_numeric_api_id() {
        let mut pairs: Vec<_> = BASE.to_vec();
        pairs.retain(|(k, _)| *k != "TELEGRAM_API_ID");
        pairs.push(("TELEGRAM_API_ID", "abc"));
        let err = GatewaySettings::from_env(&Env::from_pairs(pairs)).unwrap_err();
        assert!(err.to_string().contains("TELEGRAM_API_ID"), "{err}");
    }
}
