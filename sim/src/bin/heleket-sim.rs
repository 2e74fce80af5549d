//! The Heleket API simulator as a process, for the sandbox and the load generator.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::str::FromStr;

use anyhow::{bail, Context};
use rust_decimal::Decimal;
use shared::secret::SecretString;
use sim::heleket::{HeleketSim, HeleketSimConfig, SANDBOX_API_KEY, SANDBOX_MERCHANT_ID};
use sim::process::{self, StopSignal};

const DEFAULT_ADDR: &str = "127.0.0.1:8082";

const USAGE: &str =
    "usage: heleket-sim [--addr HOST:PORT] [--public-url URL] [--no-expiry-webhooks]
                   [--webhook-attempts N] [--commission-percent P] [--escape-unicode]
  --addr defaults to $HELEKET_SIM_ADDR, then 127.0.0.1:8082 (port 0 picks a free one).
  --public-url (base of invoice pages) defaults to $HELEKET_SIM_PUBLIC_URL, then http://ADDR.
  Merchant and payment key come from $HELEKET_MERCHANT_ID and $HELEKET_API_KEY, else the
  built-in sandbox pair.
  Prints 'heleket-sim listening on HOST:PORT' once bound, then JSON log lines (RUST_LOG).
  Control API: GET /_sim/health, GET /_sim/invoices[?order_id=], POST /_sim/pay,
  POST /_sim/expire, POST /_sim/faults, POST /_sim/clock, GET /_sim/calls?since=SEQ,
  GET /_sim/deliveries?since=SEQ[&uuid=], POST /_sim/reset.";

#[tokio::main]
async fn main() -> ExitCode {
    process::exit_code("heleket-sim", run().await)
}

async fn run() -> anyhow::Result<()> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let Some((addr, config)) = parse_args(std::env::args().skip(1), env)? else {
        println!("{USAGE}");
        return Ok(());
    };
    let stop = StopSignal::install()?;
    let sim = HeleketSim::start(addr, config).await?;
    process::announce("heleket-sim", sim.local_addr());
    tracing::info!(
        addr = %sim.local_addr(),
        merchant = sim.merchant_id(),
        public_url = sim.public_url(),
        "Heleket simulator started."
    );

    stop.wait().await?;
    tracing::info!("Stopping the Heleket simulator.");
    sim.shutdown().await;
    Ok(())
}

/// `Ok(None)` means `--help`. `env` reads a variable (unset and empty are the same).
fn parse_args(
    mut args: impl Iterator<Item = String>,
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Option<(SocketAddr, HeleketSimConfig)>> {
    let mut addr = env("HELEKET_SIM_ADDR").unwrap_or_else(|| DEFAULT_ADDR.to_owned());
    let mut config = HeleketSimConfig::new(
        env("HELEKET_MERCHANT_ID").unwrap_or_else(|| SANDBOX_MERCHANT_ID.to_owned()),
        SecretString::new(env("HELEKET_API_KEY").unwrap_or_else(|| SANDBOX_API_KEY.to_owned())),
    );
    config.public_url = env("HELEKET_SIM_PUBLIC_URL");
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--addr" => addr = value("--addr")?,
            "--public-url" => config.public_url = Some(value("--public-url")?),
            "--no-expiry-webhooks" => config.cancel_webhook_on_expiry = false,
            "--escape-unicode" => config.escape_unicode = true,
            "--webhook-attempts" => {
                let v = value(&arg)?;
                config.webhook_attempts = v.parse().with_context(|| format!("{arg}: {v}"))?;
            }
            "--commission-percent" => {
                let v = value(&arg)?;
                config.commission_percent =
                    Decimal::from_str(&v).with_context(|| format!("{arg}: {v}"))?;
            }
            "-h" | "--help" => return Ok(None),
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    Ok(Some((process::listen_addr(&addr)?, config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(
        args: &[&str],
        vars: &[(&str, &str)],
    ) -> anyhow::Result<Option<(SocketAddr, HeleketSimConfig)>> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse_args(args.iter().map(|a| a.to_string()), move |name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn defaults_are_the_sandbox() {
        let (addr, config) = parse(&[], &[]).unwrap().unwrap();
        assert_eq!(addr.to_string(), DEFAULT_ADDR);
        assert_eq!(config.merchant_id, SANDBOX_MERCHANT_ID);
        assert_eq!(config.api_key.expose_secret(), SANDBOX_API_KEY);
        assert!(config.cancel_webhook_on_expiry);
        assert_eq!(config.public_url, None);
    }

    #[test]
    fn env_then_flags() {
        let vars = [
            ("HELEKET_SIM_ADDR", "127.0.0.1:9"),
            ("HELEKET_MERCHANT_ID", "m"),
            ("HELEKET_API_KEY", "k"),
            ("HELEKET_SIM_PUBLIC_URL", "http://pay.local"),
        ];
        let (addr, config) = parse(&[], &vars).unwrap().unwrap();
        assert_eq!(addr.to_string(), "127.0.0.1:9");
        assert_eq!(config.merchant_id, "m");
        assert_eq!(config.api_key.expose_secret(), "k");
        assert_eq!(config.public_url.as_deref(), Some("http://pay.local"));
        let (addr, config) = parse(
            &[
                "--addr",
                "127.0.0.1:0",
                "--no-expiry-webhooks",
                "--webhook-attempts",
                "2",
                "--commission-percent",
                "1.5",
            ],
            &vars,
        )
        .unwrap()
        .unwrap();
        assert_eq!(addr.to_string(), "127.0.0.1:0");
        assert!(!config.cancel_webhook_on_expiry);
        assert_eq!(config.webhook_attempts, 2);
        assert_eq!(config.commission_percent, Decimal::new(15, 1));
    }

    #[test]
    fn bad_arguments_are_errors() {
        assert!(parse(&["--addr"], &[]).is_err());
        assert!(parse(&["--webhook-attempts", "many"], &[]).is_err());
        assert!(parse(&["--what"], &[]).is_err());
        assert!(parse(&[], &[("HELEKET_SIM_ADDR", "nonsense")]).is_err());
        assert!(parse(&["--help"], &[]).unwrap().is_none());
    }
}
