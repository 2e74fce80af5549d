//! The Telegram Bot API simulator as a process, for the sandbox and the load generator.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::{bail, Context};
use sim::process::{self, StopSignal};
use sim::{SimConfig, TelegramSim};

const DEFAULT_ADDR: &str = "127.0.0.1:8081";

const USAGE: &str = "usage: telegram-sim [--addr HOST:PORT] [--enforce-limits]
                    [--chat-rate N] [--chat-burst N] [--global-rate N] [--global-burst N]
                    [--max-calls N]
  --addr defaults to $SIM_ADDR, then 127.0.0.1:8081 (port 0 picks a free one).
  Prints 'telegram-sim listening on HOST:PORT' once bound, then JSON log lines (RUST_LOG).
  Control API: GET /_sim/calls?since=SEQ, POST /_sim/faults, GET /_sim/violations,
  POST /_sim/reset, GET /_sim/health.";

#[tokio::main]
async fn main() -> ExitCode {
    process::exit_code("telegram-sim", run().await)
}

async fn run() -> anyhow::Result<()> {
    let Some((addr, config)) =
        parse_args(std::env::args().skip(1), std::env::var("SIM_ADDR").ok())?
    else {
        println!("{USAGE}");
        return Ok(());
    };
    let stop = StopSignal::install()?;
    let sim = TelegramSim::start_with(addr, config).await?;
    process::announce("telegram-sim", sim.local_addr());
    tracing::info!(addr = %sim.local_addr(), "Telegram simulator started.");

    stop.wait().await?;
    tracing::info!("Stopping the Telegram simulator.");
    sim.shutdown().await;
    Ok(())
}

/// `Ok(None)` means `--help`.
fn parse_args(
    mut args: impl Iterator<Item = String>,
    env_addr: Option<String>,
) -> anyhow::Result<Option<(SocketAddr, SimConfig)>> {
    let mut addr = env_addr.unwrap_or_else(|| DEFAULT_ADDR.to_owned());
    let mut config = SimConfig::default();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        let number = |name: &str, v: String| -> anyhow::Result<f64> {
            v.parse()
                .with_context(|| format!("{name}: not a number: {v}"))
        };
        match arg.as_str() {
            "--addr" => addr = value("--addr")?,
            "--enforce-limits" => config.limits.enforce = true,
            "--chat-rate" => config.limits.chat_rate = number(&arg, value(&arg)?)?,
            "--chat-burst" => config.limits.chat_burst = number(&arg, value(&arg)?)?,
            "--global-rate" => config.limits.global_rate = number(&arg, value(&arg)?)?,
            "--global-burst" => config.limits.global_burst = number(&arg, value(&arg)?)?,
            "--max-calls" => {
                let v = value(&arg)?;
                config.max_recorded_calls =
                    v.parse().with_context(|| format!("--max-calls: {v}"))?;
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

    fn parse(args: &[&str], env: Option<&str>) -> anyhow::Result<Option<(SocketAddr, SimConfig)>> {
        parse_args(args.iter().map(|a| a.to_string()), env.map(str::to_owned))
    }

    #[test]
    fn addr_from_flag_then_env_then_default() {
        let addr = |args: &[&str], env| parse(args, env).unwrap().unwrap().0.to_string();
        assert_eq!(addr(&[], None), DEFAULT_ADDR);
        assert_eq!(addr(&[], Some("127.0.0.1:9")), "127.0.0.1:9");
        assert_eq!(
            addr(&["--addr", "127.0.0.1:0"], Some("127.0.0.1:9")),
            "127.0.0.1:0"
        );
    }

    #[test]
    fn limit_flags() {
        let (_, config) = parse(
            &[
                "--enforce-limits",
                "--global-rate",
                "100",
                "--max-calls",
                "5",
            ],
            None,
        )
        .unwrap()
        .unwrap();
        assert!(config.limits.enforce);
        assert_eq!(config.limits.global_rate, 100.0);
        assert_eq!(config.max_recorded_calls, 5);
    }

    #[test]
    fn bad_arguments_are_errors() {
        assert!(parse(&["--addr"], None).is_err());
        assert!(parse(&["--chat-rate", "fast"], None).is_err());
        assert!(parse(&["--what"], None).is_err());
        assert!(parse(&[], Some("nonsense")).is_err());
        assert!(parse(&["--help"], None).unwrap().is_none());
    }
}
