//! Live progress: an indicatif bar on a terminal, a plain line every few seconds otherwise
//! (CI logs), nothing with `--progress off`.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::stats::{Stats, C};

pub struct Progress {
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Progress {
    /// Shows `label` and the live counters until [`Progress::finish`]; `secs` sizes the bar.
    pub fn start(mode: &str, label: String, secs: f64, stats: Arc<Stats>) -> Progress {
        let stop = CancellationToken::new();
        let bar = match mode {
            "off" => None,
            "bar" => Some(true),
            "plain" => Some(false),
            _ => Some(std::io::stderr().is_terminal()),
        };
        let task = bar.map(|bar| tokio::spawn(show(bar, label, secs, stats, stop.clone())));
        Progress { stop, task }
    }

    pub async fn finish(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

fn line(stats: &Stats, rate: f64) -> String {
    format!(
        "{rate:>6.0} upd/s | replies {} | p99 {:.1} ms | in flight {} | missing {} | unexpected {} | wrong {} | skipped {}",
        stats.get(C::RepliesMatched),
        stats.p99_ms(),
        stats.get(C::Actions) - stats.get(C::ActionsDone),
        stats.get(C::Missing),
        stats.get(C::Unexpected),
        stats.get(C::WrongContent) + stats.get(C::WrongStatus),
        stats.get(C::Skipped),
    )
}

async fn show(bar: bool, label: String, secs: f64, stats: Arc<Stats>, stop: CancellationToken) {
    let started = Instant::now();
    let pb = bar.then(|| {
        let pb = ProgressBar::new((secs * 10.0) as u64);
        pb.set_style(
            ProgressStyle::with_template("{prefix} [{elapsed_precise}] {wide_bar} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        pb.set_prefix(label.clone());
        pb
    });
    let every = if bar {
        Duration::from_millis(250)
    } else {
        Duration::from_secs(5)
    };
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    let mut last = (Instant::now(), stats.get(C::Updates));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => break,
        }
        let now = Instant::now();
        let updates = stats.get(C::Updates);
        let rate = (updates - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
        last = (now, updates);
        let text = line(&stats, rate);
        match &pb {
            Some(pb) => {
                pb.set_position((started.elapsed().as_secs_f64() * 10.0) as u64);
                pb.set_message(text);
            }
            None => eprintln!("{label} {:>5.0}s {text}", started.elapsed().as_secs_f64()),
        }
    }
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
}
