use shared::config::{self, ConfigError, Env, RedisSettings, Transport, WebhookSources};
use shared::secret::SecretString;
use std::net::SocketAddr;
use std::time::Duration;

/// Everything the `ingress` process reads from its environment, loaded once at startup.
#[derive(Debug, Clone)]
pub struct Settings {
    pub addr: SocketAddr,
    pub redis: RedisSettings,
    pub telegram: TelegramInput,
    /// `None` without `HELEKET_API_KEY`: a Telegram-only deployment, `/heleket/webhook` is 404.
    pub heleket: Option<HeleketInput>,
    pub max_body_bytes: usize,
    pub max_connections: usize,
    /// How long in-flight requests may take to finish after shutdown is asked for.
    pub shutdown_grace: Duration,
}

/// How Telegram updates reach the stream.
#[derive(Debug, Clone)]
pub enum TelegramInput {
    /// Bot API webhooks, authenticated by `X-Telegram-Bot-Api-Secret-Token`.
    Webhook { secret: SecretString },
    /// The MTProto gateway is the only source, so the webhook route does not exist.
    MtProto,
}

/// Heleket payment webhooks: verified with the payment API key, accepted from `sources`.
#[derive(Debug, Clone)]
pub struct HeleketInput {
    pub api_key: SecretString,
    pub sources: WebhookSources,
}

impl HeleketInput {
    /// Read only when `HELEKET_API_KEY` is set; without it payments are off.
    pub fn from_env(env: &Env) -> Result<Option<Self>, ConfigError> {
        if env.get("HELEKET_API_KEY").is_none() {
            return Ok(None);
        }
        Ok(Some(Self {
            api_key: env.secret("HELEKET_API_KEY")?,
            sources: WebhookSources::from_env(env)?,
        }))
    }
}

pub const DEFAULT_ADDR: &str = "0.0.0.0:8080";
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

impl Settings {
    /// Defaults for everything but the parts a test must choose; listens on an ephemeral
    /// loopback port.
    pub fn new(redis: RedisSettings, telegram: TelegramInput) -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            redis,
            telegram,
            heleket: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        }
    }

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let telegram = match Transport::from_env(env)? {
            Transport::BotApi => TelegramInput::Webhook {
                secret: config::webhook_secret(env)?,
            },
            Transport::MtProto => TelegramInput::MtProto,
        };
        Ok(Self {
            addr: config::socket_addr(env, "INGRESS_ADDR", DEFAULT_ADDR)?,
            redis: RedisSettings::from_env(env)?,
            telegram,
            heleket: HeleketInput::from_env(env)?,
            max_body_bytes: positive(env, "INGRESS_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)?,
            max_connections: positive(env, "INGRESS_MAX_CONNECTIONS", DEFAULT_MAX_CONNECTIONS)?,
            shutdown_grace: Duration::from_secs(
                env.parsed_or("SHUTDOWN_GRACE_SECS", DEFAULT_SHUTDOWN_GRACE.as_secs())?,
            ),
        })
    }
}

/// A zero cap would refuse every request, which is never what an operator meant.
fn positive(env: &Env, var: &'static str, default: usize) -> Result<usize, ConfigError> {
    match env.parsed_or(var, default)? {
        0 => Err(ConfigError::Invalid {
            var,
            reason: "must be greater than zero".to_owned(),
        }),
        n => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: (&str, &str) = ("TELEGRAM_WEBHOOK_SECRET", "s3cret_value");

    #[test]
    fn defaults() {
        let s = Settings::from_env(&Env::from_pairs([SECRET])).unwrap();
        assert_eq!(s.addr, DEFAULT_ADDR.parse().unwrap());
        assert_eq!(s.max_body_bytes, 262_144);
        assert_eq!(s.max_connections, 10_000);
        assert_eq!(s.shutdown_grace, Duration::from_secs(20));
        assert!(
            matches!(s.telegram, TelegramInput::Webhook { ref secret } if secret.expose_secret() == "s3cret_value")
        );
    }

    #[test]
    fn botapi_requires_the_secret_and_mtproto_does_not() {
        assert_eq!(
            Settings::from_env(&Env::default()).unwrap_err(),
            ConfigError::Missing {
                var: "TELEGRAM_WEBHOOK_SECRET"
            }
        );
        let s = Settings::from_env(&Env::from_pairs([("TELEGRAM_TRANSPORT", "mtproto")])).unwrap();
        assert!(matches!(s.telegram, TelegramInput::MtProto));
    }

    #[test]
    fn invalid_values_name_the_variable() {
        for (var, value) in [
            ("INGRESS_ADDR", "nowhere"),
            ("INGRESS_MAX_BODY_BYTES", "0"),
            ("INGRESS_MAX_CONNECTIONS", "-1"),
            ("SHUTDOWN_GRACE_SECS", "soon"),
            ("TELEGRAM_TRANSPORT", "pigeon"),
        ] {
            let err = Settings::from_env(&Env::from_pairs([SECRET, (var, value)])).unwrap_err();
            assert!(
                matches!(err, ConfigError::Invalid { var: v, .. } if v == var),
                "{var}: {err}"
            );
        }
    }

    #[test]
    fn debug_output_redacts_the_secret() {
        let s = Settings::from_env(&Env::from_pairs([SECRET, HELEKET_KEY])).unwrap();
        assert!(!format!("{s:?}").contains("s3cret_value"));
        assert!(!format!("{s:?}").contains("payment-key-value"));
    }

    const HELEKET_KEY: (&str, &str) = ("HELEKET_API_KEY", "payment-key-value");

    #[test]
    fn payments_are_off_without_the_api_key() {
        let s = Settings::from_env(&Env::from_pairs([SECRET])).unwrap();
        assert!(s.heleket.is_none());
        // The allow-list is not even read then.
        let s =
            Settings::from_env(&Env::from_pairs([SECRET, ("HELEKET_ALLOWED_IPS", "x")])).unwrap();
        assert!(s.heleket.is_none());
    }

    #[test]
    fn payments_with_the_api_key_default_to_heleket_s_address() {
        let s = Settings::from_env(&Env::from_pairs([SECRET, HELEKET_KEY])).unwrap();
        let heleket = s.heleket.unwrap();
        assert_eq!(heleket.api_key.expose_secret(), "payment-key-value");
        assert_eq!(
            heleket.sources.allowed,
            vec![config::HELEKET_WEBHOOK_IP
                .parse::<std::net::IpAddr>()
                .unwrap()]
        );
        assert!(heleket.sources.trusted_proxies.is_empty());

        let s = Settings::from_env(&Env::from_pairs([
            SECRET,
            HELEKET_KEY,
            ("HELEKET_ALLOWED_IPS", ""),
            ("HELEKET_TRUSTED_PROXIES", "10.0.0.5, ::1"),
        ]))
        .unwrap();
        let sources = s.heleket.unwrap().sources;
        assert!(sources.allowed.is_empty());
        assert_eq!(sources.trusted_proxies.len(), 2);

        let err = Settings::from_env(&Env::from_pairs([
            SECRET,
            HELEKET_KEY,
            ("HELEKET_ALLOWED_IPS", "31.133.220.8,nope"),
        ]))
        .unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                var: "HELEKET_ALLOWED_IPS",
                ..
            }
        ));
    }
}
