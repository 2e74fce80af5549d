//! The `worker` binary as an operator runs it.

use crate::helpers::*;
use std::process::Stdio;
use std::time::Duration;

#[tokio::test]
async fn a_missing_setting_stops_the_worker_with_one_line() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_worker"))
        .env_clear()
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr, "worker: missing setting DATABASE_URL\n");
}

#[tokio::test]
async fn sigterm_drains_and_exits_zero() {
    let sys = TestSystem::start_without_workers().await;
    let mut worker = tokio::process::Command::new(env!("CARGO_BIN_EXE_worker"))
        .env_clear()
        .envs(sys.worker_env(&[("RUST_LOG", "warn")]))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    sys.say(1, &user(5001), "/help").await;
    sys.wait_for_sends(5001, 1).await;
    let pid = worker.id().unwrap().to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), worker.wait())
        .await
        .expect("worker stops within its grace period")
        .unwrap();
    assert_eq!(status.code(), Some(0));
    sys.finish().await;
}
