//! Start-up shared by the `telegram-sim` and `heleket-sim` binaries: exit status, stop
//! signals, logging and the listen address. Not part of the simulators' API.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tracing_subscriber::EnvFilter;

/// The process's exit status for what `run` returned; errors go to stderr as `{name}: …`.
pub fn exit_code(name: &str, result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{name}: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// SIGTERM or SIGINT (Ctrl-C), whichever comes first.
pub struct StopSignal {
    terminate: Signal,
}

impl StopSignal {
    /// Install before starting the simulator, so an early SIGTERM still exits cleanly.
    pub fn install() -> anyhow::Result<StopSignal> {
        let terminate = signal(SignalKind::terminate()).context("Failed to listen for SIGTERM")?;
        Ok(StopSignal { terminate })
    }

    pub async fn wait(mut self) -> anyhow::Result<()> {
        tokio::select! {
            _ = self.terminate.recv() => {}
            result = tokio::signal::ctrl_c() => result.context("Failed to listen for SIGINT")?,
        }
        Ok(())
    }
}

/// Prints `{name} listening on {addr}` (what launchers wait for), then sends logs to stdout
/// as JSON lines, filtered by `RUST_LOG` (default `info`).
pub fn announce(name: &str, addr: SocketAddr) {
    println!("{name} listening on {addr}");
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stdout)
        .init();
}

/// The `--addr` value (or its default) as a socket address.
pub fn listen_addr(addr: &str) -> anyhow::Result<SocketAddr> {
    addr.parse()
        .with_context(|| format!("invalid listen address {addr:?} (want HOST:PORT)"))
}
