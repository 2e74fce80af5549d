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

fn spawn_worker_process(sys: &TestSystem) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_worker"))
        .env_clear()
        .envs(sys.worker_env(&[("RUST_LOG", "warn"), ("STREAM_BATCH_SIZE", "8")]))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

async fn terminate(mut worker: tokio::process::Child) {
    let pid = worker.id().unwrap().to_string();
    tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(15), worker.wait())
        .await
        .expect("worker drains within its grace period")
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

/// Updates keep coming while every worker is replaced in turn with SIGTERM: each update is
/// answered exactly once.
#[tokio::test]
async fn a_rolling_restart_under_load_loses_and_doubles_nothing() {
    let sys = TestSystem::start_without_workers().await;
    let first = spawn_worker_process(&sys);
    let second = spawn_worker_process(&sys);
    let total: i64 = 150;
    let http = sys.http.clone();
    let url = format!("{}/telegram/webhook", sys.ingress_url);
    let load = tokio::spawn(async move {
        for i in 0..total {
            let update = sim::updates::message_text(i + 1, &user(5100 + i), "/help");
            let status = http
                .post(&url)
                .header("X-Telegram-Bot-Api-Secret-Token", SECRET)
                .json(&update)
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status, reqwest::StatusCode::OK);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    terminate(first).await;
    let third = spawn_worker_process(&sys);
    tokio::time::sleep(Duration::from_millis(400)).await;
    terminate(second).await;
    let fourth = spawn_worker_process(&sys);
    load.await.unwrap();
    sys.sim
        .wait_until(WAIT, |calls| calls.len() >= total as usize)
        .await
        .expect("every update answered");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let calls = sys.sim.calls();
    assert_eq!(calls.len(), total as usize, "nothing doubled");
    for i in 0..total {
        assert_eq!(sys.sim.sends_to(5100 + i).len(), 1, "user {}", 5100 + i);
    }
    terminate(third).await;
    terminate(fourth).await;
    sys.finish().await;
}
