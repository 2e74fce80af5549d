//! What both simulators' handles share: waiting for recordings and describing them when a
//! wait gives up, binding the listener, and joining the background tasks on shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Waits until `done` holds for what `read` returns, re-reading after every `changed`
/// notification. On timeout `Err` carries one last reading (for which `done` did not hold).
pub(crate) async fn wait_until<T>(
    changed: &Notify,
    timeout: Duration,
    read: impl Fn() -> Vec<T>,
    done: impl Fn(&[T]) -> bool,
) -> Result<Vec<T>, Vec<T>> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        // Registered before looking, so a recording made in between still wakes us.
        let notified = changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let items = read();
        if done(&items) {
            return Ok(items);
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            let items = read();
            if done(&items) {
                return Ok(items);
            }
            return Err(items);
        }
    }
}

/// The last items in one line, enough to see why a wait failed.
pub(crate) fn summarize<T>(items: &[T], describe: impl Fn(&T) -> String) -> String {
    const SHOWN: usize = 10;
    let skipped = items.len().saturating_sub(SHOWN);
    let mut parts: Vec<String> = items[skipped..].iter().map(describe).collect();
    if skipped > 0 {
        parts.insert(0, format!("… {skipped} earlier"));
    }
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    }
}

/// Binds `addr` for the simulator called `name` ("Telegram", "Heleket") and returns the
/// listener with the address it actually got.
pub(crate) async fn bind(
    addr: SocketAddr,
    name: &str,
) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("Failed to bind the {name} simulator to {addr}"))?;
    let addr = listener
        .local_addr()
        .context("Failed to read the simulator's bound address")?;
    Ok((listener, addr))
}

/// Waits for the simulator's background tasks, logging any that panicked.
pub(crate) async fn join(tasks: impl IntoIterator<Item = JoinHandle<()>>, name: &str) {
    for task in tasks {
        if let Err(error) = task.await {
            tracing::warn!(%error, "{name} simulator task failed.");
        }
    }
}
