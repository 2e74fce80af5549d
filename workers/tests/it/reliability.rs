use crate::helpers::*;
use reqwest::StatusCode;
use shared::streams::{SINGLE_PARTITION, UPDATES_GROUP};
use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

#[tokio::test]
async fn a_duplicate_update_gets_one_reply() {
    let sys = TestSystem::start().await;
    let ana = user(2001);
    let update = sim::updates::message_text(77, &ana, "/balance");
    // Telegram redelivers when it saw no 2xx in time: the same update_id twice, concurrently.
    let (a, b) = tokio::join!(sys.post_update(&update), sys.post_update(&update));
    assert_eq!((a, b), (StatusCode::OK, StatusCode::OK));
    sys.post_update(&update).await;
    sys.say(78, &ana, "/help").await;
    let sent = sys.wait_for_sends(2001, 2).await;
    assert_eq!(sent.len(), 2, "one reply per update id: {sent:?}");
    sys.finish().await;
}

/// Copies of one update read by different workers at the same moment: both pass the "done?"
/// check, and only one may publish replies.
#[tokio::test]
async fn concurrent_copies_of_an_update_on_several_workers_get_one_reply() {
    let mut sys = TestSystem::start().await;
    sys.spawn_worker(&[]).await;
    sys.spawn_worker(&[]).await;
    let users: Vec<_> = (0..100).map(|i| user(2_100 + i)).collect();
    for (i, u) in users.iter().enumerate() {
        let update = sim::updates::message_text(1_000 + i as i64, u, "/help");
        let (a, b) = tokio::join!(sys.post_update(&update), sys.post_update(&update));
        assert_eq!((a, b), (StatusCode::OK, StatusCode::OK));
    }
    sys.sim
        .wait_until(WAIT, |_| {
            users.iter().all(|u| !sys.sim.sends_to(u.id).is_empty())
        })
        .await
        .expect("every user answered");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let doubled: Vec<i64> = users
        .iter()
        .filter(|u| sys.sim.sends_to(u.id).len() > 1)
        .map(|u| u.id)
        .collect();
    assert!(doubled.is_empty(), "answered twice: {doubled:?}");
    sys.finish().await;
}

#[tokio::test]
async fn a_redelivered_outbound_message_is_not_sent_twice() {
    let sys = TestSystem::start().await;
    let message = shared::outbound::OutboundMessage {
        dedupe_key: "test:once".into(),
        chat_id: 2002,
        action: shared::outbound::OutboundAction::SendMessage {
            text: "only once".into(),
            keyboard: None,
        },
    };
    let payload = serde_json::to_string(&message).unwrap();
    for _ in 0..3 {
        sys.append_raw(&sys.keys.outbound_stream(SINGLE_PARTITION), &payload)
            .await;
    }
    let sent = sys.wait_for_sends(2002, 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sys.sim.sends_to(2002).len(), 1, "{sent:?}");
    sys.finish().await;
}

/// A worker process is SIGKILLed while it holds a batch; another process claims the orphaned
/// entries after the idle timeout. Every update is answered, none twice.
#[tokio::test]
async fn a_killed_worker_loses_nothing_and_doubles_nothing() {
    let mut sys = TestSystem::start_without_workers().await;
    // Replies go out through an in-process sender, so only the updates side is killed.
    sys.spawn_worker(&[("ROLES", "sender")]).await;
    let users: Vec<_> = (0..10).map(|i| user(2100 + i)).collect();
    let mut update_id = 0;
    for round in 0..4 {
        for u in &users {
            update_id += 1;
            let text = if round % 2 == 0 { "/balance" } else { "/help" };
            sys.say(update_id, u, text).await;
        }
    }
    let worker_bin = env!("CARGO_BIN_EXE_worker");
    let spawn = |sys: &TestSystem| {
        tokio::process::Command::new(worker_bin)
            .args(["--roles", "updates"])
            .env_clear()
            .envs(sys.worker_env(&[("STREAM_BATCH_SIZE", "8"), ("RUST_LOG", "warn")]))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("worker binary starts")
    };
    let mut doomed = spawn(&sys);
    // Kill it once some replies went out while it still holds entries it has not acked.
    let mut conn = sys.redis().await;
    let stream = sys.keys.updates_stream(SINGLE_PARTITION);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let pending: redis::Value = redis::cmd("XPENDING")
            .arg(&stream)
            .arg(UPDATES_GROUP)
            .query_async(&mut conn)
            .await
            .unwrap_or(redis::Value::Nil);
        let has_pending = matches!(&pending, redis::Value::Array(v) if matches!(v.first(), Some(redis::Value::Int(n)) if *n > 0));
        if (has_pending && !sys.sim.calls().is_empty()) || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    doomed.start_kill().unwrap();
    doomed.wait().await.unwrap();
    let answered_before = sys.sim.calls().len();
    eprintln!("killed the worker after {answered_before} replies");

    let mut survivor = spawn(&sys);
    let total: usize = 40;
    sys.sim
        .wait_until(WAIT, |calls| calls.len() >= total)
        .await
        .expect("every update answered");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let calls = sys.sim.calls();
    let mut per_chat: HashMap<i64, usize> = HashMap::new();
    for c in &calls {
        *per_chat.entry(c.chat_id.unwrap()).or_default() += 1;
    }
    assert_eq!(
        calls.len(),
        total,
        "answered before kill: {answered_before}"
    );
    assert!(per_chat.values().all(|&n| n == 4), "{per_chat:?}");
    survivor.start_kill().unwrap();
    survivor.wait().await.unwrap();
    sys.finish().await;
}

#[tokio::test]
async fn workers_can_join_and_leave_at_any_moment() {
    let mut sys = TestSystem::start().await;
    let users: Vec<_> = (0..20).map(|i| user(2200 + i)).collect();
    let mut update_id = 0;
    let mut post_round = |sys: &TestSystem| {
        let updates: Vec<_> = users
            .iter()
            .map(|u| {
                update_id += 1;
                sim::updates::message_text(update_id, u, "/help")
            })
            .collect();
        let http = sys.http.clone();
        let url = format!("{}/telegram/webhook", sys.ingress_url);
        async move {
            for u in updates {
                let status = http
                    .post(&url)
                    .header("X-Telegram-Bot-Api-Secret-Token", SECRET)
                    .json(&u)
                    .send()
                    .await
                    .unwrap()
                    .status();
                assert_eq!(status, StatusCode::OK);
            }
        }
    };
    post_round(&sys).await;
    sys.spawn_worker(&[]).await;
    sys.spawn_worker(&[]).await;
    post_round(&sys).await;
    // Two leave while the third round is in flight; one joins.
    let leaving = sys.take_worker();
    let round = post_round(&sys);
    let (_, _) = tokio::join!(round, leaving.stop());
    let leaving = sys.take_worker();
    leaving.stop().await;
    sys.spawn_worker(&[]).await;
    post_round(&sys).await;
    sys.sim
        .wait_until(WAIT, |calls| calls.len() >= 80)
        .await
        .expect("all answered");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sys.sim.calls().len(), 80);
    for u in &users {
        assert_eq!(sys.sim.sends_to(u.id).len(), 4, "user {}", u.id);
    }
    sys.finish().await;
}

/// Redis restarts (here without persistence, so streams and groups are gone): the ingress
/// answers 503 meanwhile, and afterwards ingress and workers carry on without a restart.
#[tokio::test]
async fn the_system_recovers_after_redis_comes_back() {
    let mut sys = TestSystem::start().await;
    let ana = user(2301);
    sys.say(1, &ana, "/help").await;
    sys.wait_for_sends(2301, 1).await;
    sys.redis.stop().await;
    let refused = sys
        .post_update(&sim::updates::message_text(2, &ana, "/help"))
        .await;
    assert_eq!(refused, StatusCode::SERVICE_UNAVAILABLE);
    tokio::time::sleep(Duration::from_millis(500)).await;
    sys.redis.resume().await.unwrap();
    // The first request after the restart may still find the old connection broken.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let status = sys
            .post_update(&sim::updates::message_text(3, &ana, "/balance"))
            .await;
        if status == StatusCode::OK {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "ingress never recovered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sent = sys.wait_for_sends(2301, 2).await;
    assert_eq!(sent.len(), 2, "the refused update was never enqueued");
    assert_eq!(text_of(&sent[1]), "Balance: 0.00 USD");
    sys.finish().await;
}
