use ingress::Settings;
use shared::config::Env;
use std::process::ExitCode;

/// Settings errors and usage errors; runtime failures exit 1.
const EXIT_USAGE: u8 = 2;

#[tokio::main]
async fn main() -> ExitCode {
    shared::telemetry::init();
    match std::env::args().nth(1).as_deref() {
        None => {}
        Some("mtproto") => return run_gateway().await,
        Some(other) => {
            eprintln!("ingress: unknown argument {other:?} (usage: ingress [mtproto])");
            return ExitCode::from(EXIT_USAGE);
        }
    }
    let settings = match Settings::from_env(&Env::from_process()) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("ingress: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match run(settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error.message = %e, error.cause_chain = ?e, "Ingress failed.");
            eprintln!("ingress: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `ingress mtproto`: the MTProto gateway, with the same exit codes.
async fn run_gateway() -> ExitCode {
    let settings = match gateway::GatewaySettings::from_env(&Env::from_process()) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("ingress mtproto: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match gateway::run(settings, shared::shutdown::token_cancelled_on_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error.message = %e, error.cause_chain = ?e, "Gateway failed.");
            eprintln!("ingress mtproto: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(settings: Settings) -> anyhow::Result<()> {
    let app = ingress::build(settings).await?;
    app.run_until_stopped(shared::shutdown::token_cancelled_on_signal())
        .await
}
