use anyhow::Context;
use shared::config::Env;
use std::process::ExitCode;
use workers::Settings;

const USAGE: &str = "usage: worker [--roles updates,sender] | worker migrate";

#[tokio::main]
async fn main() -> ExitCode {
    shared::telemetry::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let env = Env::from_process();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["migrate"] => migrate(&env).await,
        [] => run(&env, None).await,
        ["--roles", roles] => run(&env, Some(roles)).await,
        [flag] if flag.starts_with("--roles=") => run(&env, flag.strip_prefix("--roles=")).await,
        _ => Err(Exit::Config(USAGE.to_owned())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Exit::Config(line)) => {
            eprintln!("worker: {line}");
            ExitCode::from(2)
        }
        Err(Exit::Failed(e)) => {
            tracing::error!(error.message = %e, error.cause_chain = ?e, "Worker failed.");
            eprintln!("worker: {e:#}");
            ExitCode::FAILURE
        }
    }
}

enum Exit {
    Config(String),
    Failed(anyhow::Error),
}

async fn migrate(env: &Env) -> Result<(), Exit> {
    let url = env
        .secret("DATABASE_URL")
        .map_err(|e| Exit::Config(e.to_string()))?;
    workers::db::migrate(&url)
        .await
        .context("Failed to apply schema.sql")
        .map_err(Exit::Failed)?;
    tracing::info!("Schema applied.");
    Ok(())
}

async fn run(env: &Env, roles: Option<&str>) -> Result<(), Exit> {
    let settings = Settings::from_env(env, roles).map_err(|e| Exit::Config(e.to_string()))?;
    let app = workers::build(settings).await.map_err(Exit::Failed)?;
    let shutdown = shared::shutdown::token_cancelled_on_signal();
    app.run_until_stopped(shutdown).await.map_err(Exit::Failed)
}
