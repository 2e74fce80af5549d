use crate::helpers::*;
use std::time::Duration;

#[tokio::test]
async fn a_flooding_user_gets_bounded_replies() {
    let mut sys = TestSystem::start_without_workers().await;
    sys.spawn_worker(&[("RATE_LIMIT_PER_MINUTE", "6"), ("RATE_LIMIT_BURST", "3")])
        .await;
    let ana = user(3001);
    for id in 1..=20 {
        sys.say(id, &ana, "/help").await;
    }
    let sent = sys.wait_for_sends(3001, 4).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let sent_after = sys.sim.sends_to(3001);
    assert_eq!(sent_after.len(), sent.len());
    let slow_downs = sent_after
        .iter()
        .filter(|c| text_of(c).contains("slow down"))
        .count();
    assert_eq!(slow_downs, 1, "one notice per window");
    assert!(
        sent_after.len() <= 3 + 1 + 1,
        "burst of 3 (plus one cell refilled) and one notice, got {}",
        sent_after.len()
    );
    // Another user is not affected.
    sys.say(100, &user(3002), "/help").await;
    sys.wait_for_sends(3002, 1).await;
    sys.finish().await;
}

#[tokio::test]
async fn telegram_429_retry_after_is_obeyed() {
    let sys = TestSystem::start().await;
    sys.sim.fail_with_429(1, 2, None);
    let ana = user(3003);
    sys.say(1, &ana, "/help").await;
    let sent = sys.wait_for_sends(3003, 1).await;
    let calls = sys.sim.calls();
    let refused = calls
        .iter()
        .find(|c| c.status == 429)
        .expect("a 429 was served");
    let delivered = &sent[0];
    let waited = delivered.at_ms - refused.at_ms;
    assert!(
        waited >= 2000,
        "retried after {waited} ms, before retry_after"
    );
    assert!(waited < 5000, "retried after {waited} ms, far too late");
    assert_eq!(calls.len(), 2, "one refusal, one delivery: {calls:?}");
    sys.finish().await;
}

#[tokio::test]
async fn a_403_marks_the_user_blocked_and_stops_writing() {
    let sys = TestSystem::start().await;
    let ana = user(3004);
    sys.sim.block_chat(3004);
    sys.say(1, &ana, "/start").await;
    sys.sim
        .wait_until(WAIT, |calls| calls.iter().any(|c| c.status == 403))
        .await
        .unwrap();
    let db = sys.db.client().await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let blocked: bool = db
            .query_one(
                "SELECT blocked_at IS NOT NULL FROM users WHERE id = 3004",
                &[],
            )
            .await
            .map(|r| r.get(0))
            .unwrap_or(false);
        if blocked {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "user never marked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sys.say(2, &ana, "/balance").await;
    sys.say(3, &ana, "/help").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let to_ana: Vec<_> = sys
        .sim
        .calls()
        .into_iter()
        .filter(|c| c.chat_id == Some(3004))
        .collect();
    assert_eq!(to_ana.len(), 1, "nothing written after the 403: {to_ana:?}");

    // Starting the bot again (Telegram sends my_chat_member "member") makes them reachable.
    sys.sim.unblock_chat(3004);
    sys.post_update(&sim::updates::my_chat_member(4, &ana, "kicked", "member"))
        .await;
    sys.say(5, &ana, "/balance").await;
    let sent = sys.wait_for_sends(3004, 1).await;
    assert_eq!(text_of(&sent[0]), "Balance: 0.00 USD");
    sys.finish().await;
}

#[tokio::test]
async fn server_errors_are_retried_until_delivered() {
    let sys = TestSystem::start().await;
    sys.sim.fail_with_500(2);
    let ana = user(3005);
    sys.say(1, &ana, "/help").await;
    let sent = sys.wait_for_sends(3005, 1).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sys.sim.calls().iter().filter(|c| c.status == 500).count(),
        2
    );
    sys.finish().await;
}

#[tokio::test]
async fn the_global_send_rate_holds_across_senders() {
    let mut sys = TestSystem::start_without_workers().await;
    let limits = [("TELEGRAM_SEND_RATE", "10"), ("ROLES", "sender")];
    sys.spawn_worker(&limits).await;
    sys.spawn_worker(&limits).await;
    sys.spawn_worker(&[("ROLES", "updates")]).await;
    for i in 0..30 {
        sys.say(i + 1, &user(3100 + i), "/help").await;
    }
    let calls = sys
        .sim
        .wait_until(WAIT, |calls| calls.len() >= 30)
        .await
        .unwrap();
    // 10/s with a burst of 10: 30 messages need at least ~2 s.
    let span = calls.last().unwrap().at_ms - calls.first().unwrap().at_ms;
    assert!(span >= 1800, "30 messages in {span} ms breaks 10/s");
    sys.finish().await;
}
