//! `scripts/run` ends here. Without `TELEGRAM_BOT_TOKEN` it runs the whole system against the
//! Telegram simulator and lets the operator chat with the bot in the terminal (or plays a
//! short scripted exchange when there is no terminal). With a token it runs the ingress and a
//! worker against real Telegram.

mod chat;
mod processes;

use anyhow::Context;
use processes::{free_port, wait_ready, Processes};
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const SANDBOX_TOKEN: &str = "100000001:SANDBOX-token-not-for-telegram";
const SEED: &str = include_str!("../seed.sql");
const SCRIPT: &[&str] = &[
    "/start",
    "1",
    "/topup 10",
    "/pay",
    "/shop",
    "/buy 1",
    "/history",
    "/balance",
    "/help",
];

#[tokio::main]
async fn main() -> ExitCode {
    let mut processes = match log_dir().and_then(|d| Processes::new(&d)) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("sandbox: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let result = match std::env::var("TELEGRAM_BOT_TOKEN") {
        Ok(token) if !token.is_empty() => real(&mut processes).await,
        _ => sandbox(&mut processes).await,
    };
    processes.stop_all().await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sandbox: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn log_dir() -> anyhow::Result<PathBuf> {
    let dev = std::env::var("PAYSTREAM_DEV_DIR").unwrap_or_else(|_| ".dev".to_owned());
    Ok(PathBuf::from(dev).join("logs"))
}

fn required(var: &str) -> anyhow::Result<String> {
    std::env::var(var).with_context(|| format!("{var} is not set; start me through scripts/run"))
}

/// Against real Telegram: every setting comes from the environment, as in production.
async fn real(processes: &mut Processes) -> anyhow::Result<()> {
    required("DATABASE_URL")?;
    processes.run_once("worker", &["migrate"], &[]).await?;
    let ingress_log = processes.spawn("ingress", "ingress", &[], &[])?;
    let worker_log = processes.spawn("worker", "worker", &[], &[])?;
    println!(
        "Running against Telegram. Logs: {} and {}.\nPoint the bot's webhook at PUBLIC_URL/telegram/webhook with setWebhook (secret_token = TELEGRAM_WEBHOOK_SECRET). Ctrl-C stops.",
        ingress_log.display(),
        worker_log.display()
    );
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_secs(1)) => processes.check_alive()?,
        }
    }
}

async fn sandbox(processes: &mut Processes) -> anyhow::Result<()> {
    let database_url = required("DATABASE_URL")?;
    let redis_url = required("REDIS_URL")?;
    let (sim_port, ingress_port, metrics_port) = (free_port()?, free_port()?, free_port()?);
    let heleket_port = free_port()?;
    let sim_url = format!("http://127.0.0.1:{sim_port}");
    let heleket_url = format!("http://127.0.0.1:{heleket_port}");
    let ingress_url = format!("http://127.0.0.1:{ingress_port}");
    let secret = format!("sandbox_{}", uuid::Uuid::new_v4().simple());
    let env: Vec<(&str, String)> = vec![
        ("DATABASE_URL", database_url),
        ("REDIS_URL", redis_url),
        ("TELEGRAM_BOT_TOKEN", SANDBOX_TOKEN.to_owned()),
        ("TELEGRAM_API_URL", sim_url.clone()),
        ("TELEGRAM_WEBHOOK_SECRET", secret.clone()),
        ("INGRESS_ADDR", format!("127.0.0.1:{ingress_port}")),
        ("WORKER_METRICS_ADDR", format!("127.0.0.1:{metrics_port}")),
        ("SIM_ADDR", format!("127.0.0.1:{sim_port}")),
        ("HELEKET_SIM_ADDR", format!("127.0.0.1:{heleket_port}")),
        (
            "HELEKET_MERCHANT_ID",
            sim::heleket::SANDBOX_MERCHANT_ID.to_owned(),
        ),
        ("HELEKET_API_KEY", sim::heleket::SANDBOX_API_KEY.to_owned()),
        ("HELEKET_API_URL", heleket_url.clone()),
        // The simulator posts webhooks from loopback, not from Heleket's address.
        ("HELEKET_ALLOWED_IPS", String::new()),
        ("PUBLIC_URL", ingress_url.clone()),
        // The simulators forget everything when the sandbox stops, so Redis state that
        // points into them (cached invoice links) must not outlive a run either.
        (
            "PAYSTREAM_NAMESPACE",
            format!("sandbox{}", std::process::id()),
        ),
        ("RECONCILE_AFTER_SECS", "60".to_owned()),
        ("RECONCILE_INTERVAL_SECS", "30".to_owned()),
    ];
    processes.spawn("telegram-sim", "telegram-sim", &[], &env)?;
    processes.spawn("heleket-sim", "heleket-sim", &[], &env)?;
    processes.run_once("worker", &["migrate"], &env).await?;
    seed(&env[0].1).await?;
    processes.spawn("ingress", "ingress", &[], &env)?;
    processes.spawn("worker", "worker", &[], &env)?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let ready = async {
        wait_ready(&http, &format!("{sim_url}/_sim/health"), "telegram-sim").await?;
        wait_ready(&http, &format!("{heleket_url}/_sim/health"), "heleket-sim").await?;
        wait_ready(&http, &format!("{ingress_url}/readyz"), "ingress").await?;
        wait_ready(
            &http,
            &format!("http://127.0.0.1:{metrics_port}/readyz"),
            "worker",
        )
        .await
    };
    if let Err(e) = ready.await {
        processes.check_alive()?;
        return Err(e);
    }

    let name = std::env::var("USER").unwrap_or_else(|_| "Operator".to_owned());
    let language = std::env::var("SANDBOX_LANGUAGE").unwrap_or_else(|_| "en".to_owned());
    let user = sim::SimUser::new(1001, name).with_language(language);
    let mut chat = chat::Chat::new(http, ingress_url, sim_url, heleket_url, secret, user);
    println!(
        "paystream sandbox: ingress, worker and a Telegram simulator are running (logs in {}).",
        log_dir()?.display()
    );
    if std::io::stdin().is_terminal() {
        println!("You are a Telegram user. Type messages (/start, /topup 10, /shop, …); type a button's number to press it; /pay pays the last invoice at the Heleket simulator; Ctrl-D or /quit to leave.\n");
        let mut lines = stdin_lines();
        loop {
            tokio::select! {
                line = lines.recv() => match line {
                    Some(l) if l.trim() == "/quit" => break,
                    Some(l) if l.trim().is_empty() => {}
                    Some(l) => chat.send(&l).await?,
                    None => break,
                },
                _ = tokio::signal::ctrl_c() => break,
            }
            processes.check_alive()?;
        }
    } else {
        let mut piped: Vec<String> = std::io::stdin()
            .lock()
            .lines()
            .map_while(Result::ok)
            .collect();
        piped.retain(|l| !l.trim().is_empty());
        let script: Vec<String> = if piped.is_empty() {
            println!("No terminal: playing a scripted exchange.\n");
            SCRIPT.iter().map(|s| (*s).to_owned()).collect()
        } else {
            piped
        };
        for line in script {
            println!("you: {line}");
            chat.send(&line).await?;
        }
    }
    println!("\nStopping.");
    Ok(())
}

/// The sandbox catalogue: a few products, one with a stock of keys.
async fn seed(database_url: &str) -> anyhow::Result<()> {
    let (client, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls)
        .await
        .context("Cannot connect to PostgreSQL to seed the shop")?;
    tokio::spawn(connection);
    client
        .batch_execute(SEED)
        .await
        .context("Cannot seed the shop")?;
    Ok(())
}

fn stdin_lines() -> tokio::sync::mpsc::Receiver<String> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    rx
}
