//! Load generators for paystream, run by the scripts beside this crate.
//!
//! - `loadtest mixed`: the whole system from outside, as Telegram and Heleket see it: simulated
//!   users post updates to the ingress at an open-loop rate, pay invoices at the embedded
//!   Heleket simulator, and read the bot's replies at the embedded Telegram simulator; then a
//!   money audit. Also the burst, slow-Telegram and `--find-max` runs. See [`run`].
//! - `loadtest storm`: many invoices paid at once, every webhook duplicated.
//! - `loadtest payments`: the payment path alone (signed webhooks straight to the ingress,
//!   invoices inserted in PostgreSQL); see [`payments`].

mod actions;
mod args;
mod audit;
mod cpu;
mod driver;
mod http;
mod mix;
mod payments;
mod progress;
mod report;
mod run;
mod sims;
mod stats;
mod user;

use std::process::ExitCode;

const USAGE: &str = "usage: loadtest payments|mixed|storm [flags]  (loadtest SUBCOMMAND --help)";

#[tokio::main]
async fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    match argv.first().map(String::as_str) {
        Some("payments") => payments::run(&argv).await,
        Some("mixed" | "storm") => run::run(&argv).await,
        _ => {
            eprintln!("loadtest: {USAGE}");
            ExitCode::from(2)
        }
    }
}
