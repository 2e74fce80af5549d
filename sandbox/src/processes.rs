//! The system's processes, started from the binaries built next to this one, with their
//! logs in files so the terminal stays a chat.

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

pub struct Processes {
    bin_dir: PathBuf,
    log_dir: PathBuf,
    children: Vec<(String, Child)>,
}

impl Processes {
    pub fn new(log_dir: &Path) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("Cannot locate the sandbox binary")?;
        let bin_dir = exe
            .parent()
            .context("The sandbox binary has no directory")?
            .to_owned();
        std::fs::create_dir_all(log_dir)
            .with_context(|| format!("Cannot create {}", log_dir.display()))?;
        Ok(Self {
            bin_dir,
            log_dir: log_dir.to_owned(),
            children: Vec::new(),
        })
    }

    fn command(&self, binary: &str, args: &[&str], env: &[(&str, String)]) -> Command {
        let mut cmd = Command::new(self.bin_dir.join(binary));
        cmd.args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// Runs a command to completion (e.g. `worker migrate`).
    pub async fn run_once(
        &self,
        binary: &str,
        args: &[&str],
        env: &[(&str, String)],
    ) -> anyhow::Result<()> {
        let output = self
            .command(binary, args, env)
            .output()
            .await
            .with_context(|| format!("Cannot run {binary}; build it with cargo build"))?;
        anyhow::ensure!(
            output.status.success(),
            "{binary} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
        Ok(())
    }

    /// Starts a long-running process, logging to `<log_dir>/<name>.log`.
    pub fn spawn(
        &mut self,
        name: &str,
        binary: &str,
        args: &[&str],
        env: &[(&str, String)],
    ) -> anyhow::Result<PathBuf> {
        let log_path = self.log_dir.join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("Cannot create {}", log_path.display()))?;
        let child = self
            .command(binary, args, env)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("Cannot start {binary}; build it with cargo build"))?;
        self.children.push((name.to_owned(), child));
        Ok(log_path)
    }

    /// Fails if any process already exited (a bad setting, a taken port).
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        for (name, child) in &mut self.children {
            if let Some(status) = child.try_wait()? {
                anyhow::bail!(
                    "{name} exited ({status}); see {}",
                    self.log_dir.join(format!("{name}.log")).display()
                );
            }
        }
        Ok(())
    }

    /// SIGTERM to each, newest first, then a bounded wait; SIGKILL for stragglers.
    pub async fn stop_all(&mut self) {
        while let Some((name, mut child)) = self.children.pop() {
            if let Some(pid) = child.id() {
                let _ = Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status()
                    .await;
            }
            match tokio::time::timeout(Duration::from_secs(10), child.wait()).await {
                Ok(Ok(status)) if status.success() => {}
                Ok(Ok(status)) => eprintln!("sandbox: {name} exited with {status}"),
                _ => {
                    eprintln!("sandbox: {name} did not stop in time; killing it");
                    let _ = child.kill().await;
                }
            }
        }
    }
}

/// Polls `url` until it answers 200.
pub async fn wait_ready(http: &reqwest::Client, url: &str, what: &str) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(url).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{what} did not become ready at {url}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
