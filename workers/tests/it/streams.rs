use crate::helpers::*;
use shared::streams::{SINGLE_PARTITION, UPDATES_GROUP};
use std::time::Duration;

async fn dead_letters(
    conn: &mut redis::aio::MultiplexedConnection,
    stream: &str,
) -> Vec<std::collections::HashMap<String, String>> {
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query_async(conn)
        .await
        .unwrap();
    reply
        .ids
        .into_iter()
        .map(|id| {
            id.map
                .into_iter()
                .map(|(k, v)| (k, redis::from_redis_value::<String>(v).unwrap()))
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn a_poison_entry_goes_to_the_dead_letter_stream_and_blocks_nothing() {
    let sys = TestSystem::start().await;
    let mut conn = sys.redis().await;
    let stream = sys.keys.updates_stream(SINGLE_PARTITION);
    sys.append_raw(&stream, "{\"not\": \"an event\"}").await;
    sys.say(1, &user(4001), "/help").await;
    sys.wait_for_sends(4001, 1).await;
    let dead_stream = sys.keys.dead_letter_stream(&stream);
    let deadline = tokio::time::Instant::now() + WAIT;
    let dead = loop {
        let dead = dead_letters(&mut conn, &dead_stream).await;
        if !dead.is_empty() || tokio::time::Instant::now() > deadline {
            break dead;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0]["reason"].starts_with("undecodable"),
        "{:?}",
        dead[0]
    );
    assert_eq!(dead[0]["d"], "{\"not\": \"an event\"}");
    sys.finish().await;
}

#[tokio::test]
async fn an_entry_that_keeps_failing_is_dead_lettered_after_max_deliveries() {
    let sys = TestSystem::start().await;
    // Telegram answers 500 to everything: each delivery tries 3 times, then the entry waits
    // for the next delivery; after STREAM_MAX_DELIVERIES (3) it is dead-lettered.
    sys.sim.fail_with_500(1000);
    sys.say(1, &user(4002), "/help").await;
    let mut conn = sys.redis().await;
    let outbound = sys.keys.outbound_stream(SINGLE_PARTITION);
    let dead_stream = sys.keys.dead_letter_stream(&outbound);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let dead = loop {
        let dead = dead_letters(&mut conn, &dead_stream).await;
        if !dead.is_empty() || tokio::time::Instant::now() > deadline {
            break dead;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(dead.len(), 1, "dead-lettered once");
    assert!(dead[0]["reason"].contains("500"), "{:?}", dead[0]);
    let attempts = sys.sim.calls().len();
    assert_eq!(attempts, 9, "3 deliveries × 3 attempts");
    sys.finish().await;
}

async fn xack(conn: &mut redis::aio::MultiplexedConnection, stream: &str, group: &str, id: &str) {
    let _: u64 = redis::cmd("XACK")
        .arg(stream)
        .arg(group)
        .arg(id)
        .query_async(conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn trimming_keeps_every_unacknowledged_entry() {
    let sys = TestSystem::start_without_workers().await;
    let mut conn = sys.redis().await;
    let stream = sys.keys.updates_stream(SINGLE_PARTITION);
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&stream)
        .arg(UPDATES_GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&stream)
        .arg("audit")
        .arg("0")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..10 {
        let id: String = redis::cmd("XADD")
            .arg(&stream)
            .arg("*")
            .arg("d")
            .arg(i.to_string())
            .query_async(&mut conn)
            .await
            .unwrap();
        ids.push(id);
    }
    // `updates` read all ten and acked all but the fourth; `audit` read six and acked five.
    let read = |group: &'static str, n: usize| {
        redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(group)
            .arg("c1")
            .arg("COUNT")
            .arg(n)
            .arg("STREAMS")
            .arg(&stream)
            .arg(">")
            .clone()
    };
    let _: redis::Value = read(UPDATES_GROUP, 10)
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: redis::Value = read("audit", 6).query_async(&mut conn).await.unwrap();
    for (i, id) in ids.iter().enumerate() {
        if i != 3 {
            xack(&mut conn, &stream, UPDATES_GROUP, id).await;
        }
        if i < 6 && i != 5 {
            xack(&mut conn, &stream, "audit", id).await;
        }
    }
    let mut managed = shared::redis_conn::connect(&shared::config::RedisSettings::for_url(
        sys.redis.url(),
        "x",
    ))
    .unwrap();
    let bound = consumer::trim_acknowledged(&mut managed, &stream)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        bound.to_string(),
        ids[3],
        "oldest unacknowledged of any group"
    );
    assert_eq!(stream_len(&mut conn, &stream).await, 7);

    // Once everything is acknowledged, only the last delivered entry is kept.
    xack(&mut conn, &stream, UPDATES_GROUP, &ids[3]).await;
    xack(&mut conn, &stream, "audit", &ids[5]).await;
    let bound = consumer::trim_acknowledged(&mut managed, &stream)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        bound.to_string(),
        ids[5],
        "audit has not read past the sixth"
    );
    assert_eq!(stream_len(&mut conn, &stream).await, 5);
    sys.finish().await;
}

#[tokio::test]
async fn streams_are_trimmed_while_the_system_runs() {
    let sys = TestSystem::start().await;
    for i in 0..30 {
        sys.say(i + 1, &user(4100 + i), "/help").await;
    }
    sys.sim
        .wait_until(WAIT, |calls| calls.len() >= 30)
        .await
        .unwrap();
    let mut conn = sys.redis().await;
    let updates = sys.keys.updates_stream(SINGLE_PARTITION);
    let outbound = sys.keys.outbound_stream(SINGLE_PARTITION);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (u, o) = (
            stream_len(&mut conn, &updates).await,
            stream_len(&mut conn, &outbound).await,
        );
        if u <= 1 && o <= 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "streams not trimmed: updates {u}, outbound {o}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sys.finish().await;
}
