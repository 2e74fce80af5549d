use crate::helpers::*;
use sim::updates;

#[tokio::test]
async fn start_answers_with_the_main_keyboard_and_registers_the_user() {
    let sys = TestSystem::start().await;
    let ana = user(1001).with_language("en");
    sys.say(1, &ana, "/start").await;
    let sent = sys.wait_for_sends(1001, 1).await;
    assert_eq!(sent.len(), 1);
    assert!(text_of(&sent[0]).starts_with("Hi, Ana!"));
    let keyboard = &sent[0].params["reply_markup"]["inline_keyboard"];
    let labels: Vec<&str> = keyboard
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap())
        .map(|b| b["text"].as_str().unwrap())
        .collect();
    for label in ["Balance", "Top up", "Shop", "History", "Help"] {
        assert!(
            labels.iter().any(|l| l.contains(label)),
            "{label} missing in {labels:?}"
        );
    }
    let db = sys.db.client().await.unwrap();
    let row = db
        .query_one(
            "SELECT username, language_code FROM users WHERE id = 1001",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>(0).as_deref(), Some("ana"));
    assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some("en"));
    sys.finish().await;
}

#[tokio::test]
async fn russian_users_get_russian_texts() {
    let sys = TestSystem::start().await;
    let ivan = sim::SimUser::new(1002, "Иван").with_language("ru");
    sys.say(1, &ivan, "/start").await;
    sys.say(2, &ivan, "/balance").await;
    let sent = sys.wait_for_sends(1002, 2).await;
    assert!(text_of(&sent[0]).starts_with("Привет, Иван!"));
    assert_eq!(text_of(&sent[1]), "Баланс: 0.00 USD");
    sys.finish().await;
}

#[tokio::test]
async fn balance_of_a_new_user_is_zero_and_history_is_empty() {
    let sys = TestSystem::start().await;
    let ana = user(1003);
    sys.say(1, &ana, "/balance").await;
    let sent = sys.wait_for_sends(1003, 1).await;
    assert_eq!(text_of(&sent[0]), "Balance: 0.00 USD");
    sys.say(2, &ana, "/history").await;
    let sent = sys.wait_for_sends(1003, 2).await;
    assert_eq!(text_of(&sent[1]), "No top-ups or purchases yet.");
    sys.finish().await;
}

#[tokio::test]
async fn balance_reflects_the_database_once_the_cache_is_invalidated() {
    let sys = TestSystem::start().await;
    let ana = user(1004);
    sys.say(1, &ana, "/start").await;
    sys.wait_for_sends(1004, 1).await;
    let db = sys.db.client().await.unwrap();
    db.execute(
        "INSERT INTO balances (user_id, balance) VALUES (1004, 12.5)",
        &[],
    )
    .await
    .unwrap();
    let mut conn = sys.redis().await;
    let key = workers::updates::balance_cache_key(&sys.keys, 1004);
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    sys.say(2, &ana, "/balance").await;
    let sent = sys.wait_for_sends(1004, 2).await;
    assert_eq!(text_of(&sent[1]), "Balance: 12.50 USD");
    sys.finish().await;
}

#[tokio::test]
async fn help_and_unknown_input_get_help() {
    let sys = TestSystem::start().await;
    let ana = user(1005);
    sys.say(1, &ana, "/help").await;
    sys.say(2, &ana, "what is this?").await;
    sys.say(3, &ana, "/nonsense").await;
    let sent = sys.wait_for_sends(1005, 3).await;
    assert_eq!(sent.len(), 3);
    for s in &sent {
        assert!(text_of(s).starts_with("What I can do:"), "{}", text_of(s));
    }
    sys.finish().await;
}

#[tokio::test]
async fn buttons_are_answered_and_act_and_tampered_data_changes_nothing() {
    let sys = TestSystem::start().await;
    let ana = user(1006);
    sys.say(1, &ana, "/start").await;
    let sent = sys.wait_for_sends(1006, 1).await;
    let balance_data = sent[0].params["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        .as_str()
        .unwrap()
        .to_owned();
    let message_id = 1;
    assert_eq!(
        sys.post_update(&updates::callback_query(2, &ana, message_id, &balance_data))
            .await,
        reqwest::StatusCode::OK
    );
    let sent = sys.wait_for_sends(1006, 2).await;
    assert_eq!(text_of(&sent[1]), "Balance: 0.00 USD");

    let tampered = balance_data.replacen("m:bal", "m:his", 1);
    sys.post_update(&updates::callback_query(3, &ana, message_id, &tampered))
        .await;
    sys.post_update(&updates::callback_query(4, &ana, message_id, "m:bal"))
        .await;
    let answers = sys
        .sim
        .wait_until(WAIT, |calls| {
            calls
                .iter()
                .filter(|c| c.method == "answerCallbackQuery")
                .count()
                >= 3
        })
        .await
        .unwrap();
    let answers: Vec<_> = answers
        .iter()
        .filter(|c| c.method == "answerCallbackQuery")
        .collect();
    assert_eq!(answers.len(), 3, "every callback answered once");
    for bad in &answers[1..] {
        assert!(bad.params["text"]
            .as_str()
            .unwrap()
            .contains("no longer valid"));
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        sys.sim.sends_to(1006).len(),
        2,
        "tampered buttons send nothing"
    );
    sys.finish().await;
}

#[tokio::test]
async fn health_and_metrics_endpoints_answer() {
    let mut sys = TestSystem::start_without_workers().await;
    let addr = sys.spawn_worker(&[]).await;
    sys.say(1, &user(1007), "/help").await;
    sys.wait_for_sends(1007, 1).await;
    let get = |path: &str| {
        let url = format!("http://{addr}{path}");
        let http = sys.http.clone();
        async move {
            let r = http.get(url).send().await.unwrap();
            (r.status(), r.text().await.unwrap())
        }
    };
    assert_eq!(get("/healthz").await.0, reqwest::StatusCode::OK);
    assert_eq!(get("/readyz").await.0, reqwest::StatusCode::OK);
    let (status, body) = get("/metrics").await;
    assert_eq!(status, reqwest::StatusCode::OK);
    assert!(
        body.contains("stream_entries_processed_total{outcome=\"ok\",role=\"updates\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("telegram_sends_total{result=\"ok\"} 1"),
        "{body}"
    );
    sys.redis.stop().await;
    assert_eq!(
        get("/readyz").await.0,
        reqwest::StatusCode::SERVICE_UNAVAILABLE
    );
    sys.redis.resume().await.unwrap();
    sys.finish().await;
}

#[tokio::test]
async fn stats_are_for_admins_only() {
    let mut sys = TestSystem::start_without_workers().await;
    sys.spawn_worker(&[("ADMIN_IDS", "1101, 1102")]).await;
    let admin = user(1101);
    let someone = user(1108);
    sys.say(1, &someone, "/start").await;
    sys.say(2, &someone, "/stats").await;
    let sent = sys.wait_for_sends(1108, 2).await;
    assert!(
        text_of(&sent[1]).starts_with("What I can do:"),
        "not for users"
    );
    sys.say(3, &admin, "/stats").await;
    let sent = sys.wait_for_sends(1101, 1).await;
    let stats = text_of(&sent[0]);
    assert!(stats.starts_with("Users: 1 (0 blocked the bot)"), "{stats}");
    assert!(
        stats.contains("credited 0.00 USD, 0 purchases for 0.00 USD"),
        "{stats}"
    );
    assert!(stats.contains("updates: "), "{stats}");
    assert!(stats.contains("outbound: "), "{stats}");
    sys.finish().await;
}
