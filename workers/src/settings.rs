//! The worker's settings, read once at start.

use crate::payments::CreditPolicy;
use rust_decimal::Decimal;
use shared::config::{
    socket_addr, BotApiSettings, ConfigError, Env, HeleketSettings, RedisSettings, Transport,
};
use shared::secret::SecretString;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Updates,
    Payments,
    Sender,
    Reconciler,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::Updates,
        Role::Payments,
        Role::Sender,
        Role::Reconciler,
    ];

    fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == s)
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::Updates => "updates",
            Role::Payments => "payments",
            Role::Sender => "sender",
            Role::Reconciler => "reconciler",
        }
    }
}

/// Top-ups and how their payments are settled.
#[derive(Debug, Clone)]
pub struct PaymentSettings {
    pub min_topup: Decimal,
    pub max_topup: Decimal,
    /// Amounts offered as buttons under "Top up".
    pub presets: Vec<Decimal>,
    pub invoice_lifetime: Duration,
    /// `{PUBLIC_URL}/heleket/webhook` is each invoice's `url_callback`.
    pub public_url: Option<String>,
    pub credit_policy: CreditPolicy,
    /// Invoices still open this long after creation are asked about.
    pub reconcile_after: Duration,
    pub reconcile_interval: Duration,
}

impl PaymentSettings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let invalid = |var: &'static str, reason: &str| ConfigError::Invalid {
            var,
            reason: reason.to_owned(),
        };
        let min_topup: Decimal = env.parsed_or("TOPUP_MIN_AMOUNT", Decimal::new(100, 2))?;
        let max_topup: Decimal = env.parsed_or("TOPUP_MAX_AMOUNT", Decimal::new(1_000_000, 2))?;
        if min_topup <= Decimal::ZERO || max_topup < min_topup {
            return Err(invalid(
                "TOPUP_MIN_AMOUNT",
                "need 0 < TOPUP_MIN_AMOUNT <= TOPUP_MAX_AMOUNT",
            ));
        }
        let presets = env
            .get("TOPUP_PRESETS")
            .unwrap_or("5,10,25,50")
            .split(',')
            .map(|p| p.trim().parse::<Decimal>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| invalid("TOPUP_PRESETS", "a comma list of amounts"))?;
        let lifetime: u64 = env.parsed_or("INVOICE_LIFETIME_SECS", 3600)?;
        if !(300..=43_200).contains(&lifetime) {
            return Err(invalid(
                "INVOICE_LIFETIME_SECS",
                "Heleket accepts 300 to 43200 seconds",
            ));
        }
        let public_url = env
            .get("PUBLIC_URL")
            .map(|u| u.trim_end_matches('/').to_owned());
        if public_url
            .as_deref()
            .is_some_and(|u| !u.starts_with("http"))
        {
            return Err(invalid("PUBLIC_URL", "must be an http(s) URL"));
        }
        Ok(Self {
            min_topup,
            max_topup,
            presets,
            invoice_lifetime: Duration::from_secs(lifetime),
            public_url,
            credit_policy: env.parsed_or("PAYMENT_CREDIT_POLICY", CreditPolicy::Invoice)?,
            reconcile_after: Duration::from_secs(env.parsed_or("RECONCILE_AFTER_SECS", 120)?),
            reconcile_interval: Duration::from_secs(env.parsed_or("RECONCILE_INTERVAL_SECS", 60)?),
        })
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

pub use consumer::ConsumerSettings;

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
    /// Absent when `HELEKET_API_KEY` is not set: top-ups then answer that payments are off.
    pub heleket: Option<HeleketSettings>,
    pub payments: PaymentSettings,
    pub admin_ids: HashSet<i64>,
    /// Bearer token of the admin HTTP API; the API is off without it.
    pub admin_token: Option<SecretString>,
    pub shutdown_grace: Duration,
    /// Test-only fault injection (`PAYSTREAM_FAILPOINT`): `crash_after_credit_commit` aborts
    /// the process right after a credit committed, before its notification is published.
    pub failpoint: Option<String>,
}

impl Settings {
    /// `roles` comes from the command line (`--roles`); `None` means every role.
    pub fn from_env(env: &Env, roles: Option<&str>) -> Result<Self, ConfigError> {
        let explicit_roles = roles.is_some();
        let mut roles = parse_roles(roles)?;
        // Over MTProto the gateway sends: a sender role here would race it to Telegram.
        if Transport::from_env(env)? == Transport::MtProto && roles.contains(&Role::Sender) {
            if explicit_roles {
                return Err(ConfigError::Invalid {
                    var: "--roles",
                    reason: "the sender role is the gateway's with TELEGRAM_TRANSPORT=mtproto"
                        .into(),
                });
            }
            roles.remove(&Role::Sender);
        }
        let heleket = match env.get("HELEKET_API_KEY") {
            Some(_) => Some(HeleketSettings::from_env(env)?),
            None => None,
        };
        Ok(Self {
            database_url: env.secret("DATABASE_URL")?,
            database_pool_size: env.parsed_or("DATABASE_POOL_SIZE", 16)?,
            redis: RedisSettings::from_env(env)?,
            bot: BotApiSettings::from_env(env)?,
            metrics_addr: socket_addr(env, "WORKER_METRICS_ADDR", "0.0.0.0:9090")?,
            roles,
            consumer: ConsumerSettings::from_env(env)?,
            rate_limits: RateLimits::from_env(env)?,
            heleket,
            payments: PaymentSettings::from_env(env)?,
            admin_ids: parse_admin_ids(env.get("ADMIN_IDS"))?,
            admin_token: env.get("ADMIN_TOKEN").map(SecretString::new),
            shutdown_grace: Duration::from_secs(env.parsed_or("SHUTDOWN_GRACE_SECS", 20)?),
            failpoint: env.get("PAYSTREAM_FAILPOINT").map(str::to_owned),
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
        assert_eq!(parse_roles(None).unwrap().len(), 4);
        assert_eq!(
            parse_roles(Some("sender")).unwrap(),
            [Role::Sender].into_iter().collect()
        );
        assert!(parse_roles(Some("bogus")).is_err());
        assert!(parse_roles(Some("")).is_err());
    }

    #[test]
    fn over_mtproto_the_sender_role_is_left_to_the_gateway() {
        let env = Env::from_pairs([
            ("DATABASE_URL", "postgres://x@localhost/db"),
            ("TELEGRAM_BOT_TOKEN", "1:abc"),
            ("TELEGRAM_TRANSPORT", "mtproto"),
        ]);
        let all = Settings::from_env(&env, None).unwrap();
        assert!(!all.roles.contains(&Role::Sender));
        assert_eq!(all.roles.len(), 3);
        let err = Settings::from_env(&env, Some("updates,sender")).unwrap_err();
        assert!(err.to_string().contains("gateway"), "{err}");
    }

    #[test]
    fn missing_database_url_is_one_line() {
        let err = Settings::from_env(&Env::default(), None).unwrap_err();
        assert_eq!(err.to_string(), "missing setting DATABASE_URL");
    }
}
