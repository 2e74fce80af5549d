//! The simulator over real HTTP, as the sender and the load generator will use it.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sim::{Fault, RateLimits, RecordedCall, TelegramSim};

mod common;
use common::control;

const TOKEN: &str = "5550001:TEST-token";
const CHAT: i64 = 123_456_789;

async fn start() -> TelegramSim {
    TelegramSim::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

async fn call(sim: &TelegramSim, method: &str, params: Value) -> (u16, Value) {
    let url = format!("{}/bot{TOKEN}/{method}", sim.api_url());
    let response = reqwest::Client::new()
        .post(url)
        .json(&params)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn send(sim: &TelegramSim, chat_id: i64, text: &str) -> (u16, Value) {
    call(
        sim,
        "sendMessage",
        json!({"chat_id": chat_id, "text": text}),
    )
    .await
}

fn bad_request(description: &str) -> Value {
    json!({"ok": false, "error_code": 400, "description": format!("Bad Request: {description}")})
}

#[tokio::test]
async fn send_message_answers_a_message_and_is_recorded() {
    let sim = start().await;
    let keyboard = json!({"inline_keyboard": [[
        {"text": "Pay", "callback_data": "pay:5"},
        {"text": "Terms", "url": "https://example.com/terms"}
    ]]});
    let (status, body) = call(
        &sim,
        "sendMessage",
        json!({"chat_id": CHAT, "text": "Pay <b>5.00 USD</b>?", "parse_mode": "HTML", "reply_markup": keyboard}),
    )
    .await;

    assert_eq!(status, 200);
    assert_eq!(body["ok"], true);
    let message = &body["result"];
    assert_eq!(message["message_id"], 1);
    assert_eq!(message["chat"], json!({"id": CHAT, "type": "private"}));
    assert_eq!(message["from"]["id"], 5_550_001);
    assert_eq!(message["from"]["is_bot"], true);
    assert_eq!(message["text"], "Pay 5.00 USD?", "entities are parsed out");
    assert_eq!(message["reply_markup"], keyboard);
    assert!(message["date"].as_i64().unwrap() > 1_700_000_000);

    let (_, second) = send(&sim, CHAT, "again").await;
    assert_eq!(second["result"]["message_id"], 2, "ids grow per chat");
    let (_, other) = send(&sim, CHAT + 1, "elsewhere").await;
    assert_eq!(other["result"]["message_id"], 1);

    let calls = sim.sends_to(CHAT);
    assert_eq!(calls.len(), 2);
    let first = &calls[0];
    assert_eq!(first.method, "sendMessage");
    assert_eq!(first.token, TOKEN);
    assert_eq!(first.chat_id, Some(CHAT));
    assert_eq!(first.status, 200);
    assert_eq!(first.params["reply_markup"], keyboard);
    assert!(first.seq < calls[1].seq);
}

#[tokio::test]
async fn form_encoded_and_query_parameters_are_accepted() {
    let sim = start().await;
    let response = reqwest::Client::new()
        .post(format!(
            "{}/bot{TOKEN}/SENDMESSAGE?chat_id={CHAT}",
            sim.api_url()
        ))
        .form(&[
            ("text", "hello"),
            (
                "reply_markup",
                r#"{"inline_keyboard":[[{"text":"Go","callback_data":"go"}]]}"#,
            ),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["result"]["text"], "hello");
    assert_eq!(
        body["result"]["reply_markup"]["inline_keyboard"][0][0]["callback_data"],
        "go"
    );
    assert_eq!(
        sim.calls()[0].method,
        "sendMessage",
        "method names are case-insensitive"
    );

    let me: Value = reqwest::get(format!("{}/bot{TOKEN}/getMe", sim.api_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["result"]["is_bot"], true);
    assert_eq!(me["result"]["username"], sim::BOT_USERNAME);
}

#[tokio::test]
async fn injected_429_looks_like_telegram_flood_control() {
    let sim = start().await;
    sim.fail_with_429(2, 7, Some(CHAT));

    assert_eq!(send(&sim, CHAT + 1, "other chat").await.0, 200);
    let expected = json!({
        "ok": false,
        "error_code": 429,
        "description": "Too Many Requests: retry after 7",
        "parameters": {"retry_after": 7}
    });
    assert_eq!(send(&sim, CHAT, "one").await, (429, expected.clone()));
    assert_eq!(send(&sim, CHAT, "two").await, (429, expected));
    assert_eq!(send(&sim, CHAT, "three").await.0, 200);
    assert_eq!(
        sim.sends_to(CHAT).len(),
        1,
        "refused sends are not deliveries"
    );
    assert_eq!(sim.calls().iter().filter(|c| c.status == 429).count(), 2);
}

#[tokio::test]
async fn a_share_of_calls_gets_429_and_early_retries_are_counted() {
    let sim = start().await;
    let (status, _) = control(
        &sim,
        reqwest::Method::POST,
        "faults",
        Some(json!({"fault": "too_many_requests_share", "share": 0.5, "retry_after": 30})),
    )
    .await;
    assert_eq!(status, 200);
    let statuses = [
        send(&sim, CHAT, "a").await.0,
        send(&sim, CHAT + 1, "b").await.0,
        send(&sim, CHAT, "c").await.0,
    ];
    assert_eq!(statuses, [200, 429, 200], "every second call");
    assert_eq!(
        sim.violations().retry_after,
        0,
        "CHAT was not told to wait before its second send"
    );
    send(&sim, CHAT + 1, "d: too early").await;
    assert_eq!(sim.violations().retry_after, 1);
    sim.fail_share_with_429(0.0, 1);
    assert_eq!(send(&sim, CHAT + 2, "e").await.0, 200);
}

#[tokio::test]
async fn the_call_hook_sees_every_answered_call_in_order() {
    let sim = start().await;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    let before = Instant::now();
    sim.on_call(move |call: &RecordedCall, at: Instant| {
        sink.lock()
            .unwrap()
            .push((call.seq, call.chat_id, call.status, at));
    });
    sim.fail_with_429(1, 1, None);
    send(&sim, CHAT, "refused").await;
    send(&sim, CHAT + 1, "delivered").await;
    let seen = seen.lock().unwrap().clone();
    let summary: Vec<_> = seen.iter().map(|s| (s.0, s.1, s.2)).collect();
    assert_eq!(summary, [(1, Some(CHAT), 429), (2, Some(CHAT + 1), 200)]);
    assert!(seen.iter().all(|s| s.3 >= before && s.3 <= Instant::now()));
    sim.clear_call_hook();
    send(&sim, CHAT, "unseen").await;
}

#[tokio::test]
async fn blocked_chat_gets_403_until_unblocked() {
    let sim = start().await;
    let (_, sent) = send(&sim, CHAT, "before").await;
    sim.block_chat(CHAT);

    let forbidden = json!({"ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the user"});
    assert_eq!(send(&sim, CHAT, "hi").await, (403, forbidden.clone()));
    let edit =
        json!({"chat_id": CHAT, "message_id": sent["result"]["message_id"], "text": "edited"});
    assert_eq!(call(&sim, "editMessageText", edit).await, (403, forbidden));
    assert_eq!(send(&sim, CHAT + 1, "hi").await.0, 200);

    sim.unblock_chat(CHAT);
    assert_eq!(send(&sim, CHAT, "hi").await.0, 200);
}

#[tokio::test]
async fn server_errors_and_bad_gateway() {
    let sim = start().await;
    sim.fail_with_500(1);
    assert_eq!(
        call(&sim, "getMe", json!({})).await,
        (
            500,
            json!({"ok": false, "error_code": 500, "description": "Internal Server Error"})
        )
    );
    assert_eq!(call(&sim, "getMe", json!({})).await.0, 200);

    sim.apply_fault(Fault::BadGateway {
        times: 1,
        chat_id: None,
        method: Some("sendmessage".into()),
    });
    assert_eq!(
        call(&sim, "getMe", json!({})).await.0,
        200,
        "only sendMessage is affected"
    );
    let response = reqwest::Client::new()
        .post(format!("{}/bot{TOKEN}/sendMessage", sim.api_url()))
        .json(&json!({"chat_id": CHAT, "text": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    assert!(response.text().await.unwrap().contains("502 Bad Gateway"));
}

#[tokio::test]
async fn invalid_requests_get_telegrams_400s() {
    let sim = start().await;
    let button = |b: Value| json!({"chat_id": CHAT, "text": "x", "reply_markup": {"inline_keyboard": [[b]]}});

    assert_eq!(
        send(&sim, CHAT, "").await,
        (400, bad_request("message text is empty"))
    );
    assert_eq!(
        send(&sim, CHAT, " \n ").await,
        (400, bad_request("message text is empty"))
    );
    assert_eq!(
        send(&sim, CHAT, &"я".repeat(4097)).await,
        (400, bad_request("message is too long"))
    );
    assert_eq!(send(&sim, CHAT, &"я".repeat(4096)).await.0, 200);
    assert_eq!(
        call(&sim, "sendMessage", json!({"text": "x"})).await,
        (400, bad_request("chat_id is empty"))
    );
    // 33 two-byte characters are 66 bytes: over the limit although under 64 characters.
    let long_data = "ж".repeat(33);
    for data in [json!(""), json!(long_data)] {
        assert_eq!(
            call(
                &sim,
                "sendMessage",
                button(json!({"text": "b", "callback_data": data}))
            )
            .await,
            (400, bad_request("BUTTON_DATA_INVALID"))
        );
    }
    assert_eq!(
        call(
            &sim,
            "sendMessage",
            button(json!({"text": "b", "callback_data": "x".repeat(64)}))
        )
        .await
        .0,
        200
    );
    let (status, body) = call(
        &sim,
        "sendMessage",
        button(json!({"text": "b", "url": "https://x.y", "callback_data": "d"})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body["description"]
        .as_str()
        .unwrap()
        .starts_with("Bad Request: can't parse inline keyboard button"));
    let (status, _) = call(&sim, "sendMessage", button(json!({"text": "b"}))).await;
    assert_eq!(status, 400, "a button needs an action");
    assert_eq!(
        call(
            &sim,
            "sendMessage",
            button(json!({"text": "b", "url": "example.com"}))
        )
        .await,
        (400, bad_request("BUTTON_URL_INVALID"))
    );
    assert_eq!(
        call(
            &sim,
            "sendMessage",
            json!({"chat_id": CHAT, "text": "a <b> c", "parse_mode": "HTML"})
        )
        .await,
        (
            400,
            bad_request(
                "can't parse entities: Can't find end tag corresponding to start tag \"b\""
            )
        )
    );
    assert_eq!(
        call(&sim, "sendMessage", json!({"chat_id": CHAT, "text": "12.50 USD", "parse_mode": "MarkdownV2"})).await,
        (
            400,
            bad_request("can't parse entities: Character '.' is reserved and must be escaped with the preceding '\\'")
        )
    );
    assert_eq!(
        call(&sim, "frobnicate", json!({})).await,
        (
            404,
            json!({"ok": false, "error_code": 404, "description": "Not Found: method not found"})
        )
    );

    let response = reqwest::Client::new()
        .post(format!("{}/bot{TOKEN}/sendMessage", sim.api_url()))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.json::<Value>().await.unwrap()["ok"], false);
    assert_eq!(sim.calls().last().unwrap().params, Value::Null);
    assert!(sim.sends_to(CHAT).len() == 2, "only the valid sends count");
}

#[tokio::test]
async fn edits_need_an_existing_message_and_a_change() {
    let sim = start().await;
    let (_, sent) = send(&sim, CHAT, "Choose:").await;
    let id = sent["result"]["message_id"].clone();

    assert_eq!(
        call(
            &sim,
            "editMessageText",
            json!({"chat_id": CHAT, "message_id": 99, "text": "x"})
        )
        .await,
        (400, bad_request("message to edit not found"))
    );
    assert_eq!(
        call(
            &sim,
            "editMessageText",
            json!({"chat_id": CHAT + 1, "message_id": id, "text": "x"})
        )
        .await,
        (400, bad_request("message to edit not found"))
    );
    let (status, edited) = call(
        &sim,
        "editMessageText",
        json!({"chat_id": CHAT, "message_id": id, "text": "Paid"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(edited["result"]["text"], "Paid");
    assert!(edited["result"]["edit_date"].is_i64());

    let (status, body) = call(
        &sim,
        "editMessageText",
        json!({"chat_id": CHAT, "message_id": id, "text": "Paid"}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body["description"]
        .as_str()
        .unwrap()
        .starts_with("Bad Request: message is not modified"));

    let markup = json!({"inline_keyboard": [[{"text": "Again", "callback_data": "again"}]]});
    let (status, body) = call(
        &sim,
        "editMessageReplyMarkup",
        json!({"chat_id": CHAT, "message_id": id, "reply_markup": markup}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["result"]["text"], "Paid");
    assert_eq!(body["result"]["reply_markup"], markup);
    assert_eq!(sim.sends_to(CHAT).len(), 3);
}

#[tokio::test]
async fn callback_queries_are_answered_once() {
    let sim = start().await;
    let answer = json!({"callback_query_id": "42", "text": "Done"});
    assert_eq!(
        call(&sim, "answerCallbackQuery", answer.clone()).await,
        (200, json!({"ok": true, "result": true}))
    );
    let (status, body) = call(&sim, "answerCallbackQuery", answer).await;
    assert_eq!(status, 400);
    assert!(body["description"]
        .as_str()
        .unwrap()
        .contains("query ID is invalid"));
}

#[tokio::test]
async fn webhook_methods_keep_state() {
    let sim = start().await;
    let set = json!({
        "url": "https://bot.example/telegram/webhook",
        "secret_token": "s3cr3t_-",
        "allowed_updates": ["message", "callback_query"],
        "max_connections": 100
    });
    assert_eq!(
        call(&sim, "setWebhook", set).await,
        (
            200,
            json!({"ok": true, "result": true, "description": "Webhook was set"})
        )
    );
    let (_, info) = call(&sim, "getWebhookInfo", json!({})).await;
    assert_eq!(
        info["result"]["url"],
        "https://bot.example/telegram/webhook"
    );
    assert_eq!(
        info["result"]["allowed_updates"],
        json!(["message", "callback_query"])
    );
    assert_eq!(info["result"]["pending_update_count"], 0);
    assert_eq!(
        call(
            &sim,
            "setWebhook",
            json!({"url": "https://x.y", "secret_token": "no spaces"})
        )
        .await
        .0,
        400
    );
    assert_eq!(
        call(&sim, "deleteWebhook", json!({})).await.1["description"],
        "Webhook was deleted"
    );
    assert_eq!(
        call(&sim, "deleteWebhook", json!({})).await.1["description"],
        "Webhook is already deleted"
    );
    assert_eq!(
        call(&sim, "getWebhookInfo", json!({})).await.1["result"]["url"],
        ""
    );
}

#[tokio::test]
async fn control_api_drives_another_process() {
    let sim = start().await;
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;

    assert_eq!(
        control(&sim, get.clone(), "health", None).await,
        (200, json!({"ok": true}))
    );
    let faults = json!([
        {"fault": "too_many_requests", "times": 1, "retry_after": 3},
        {"fault": "block_chat", "chat_id": 777},
        {"fault": "limits", "chat_burst": 1, "chat_rate": 0.01, "enforce": true}
    ]);
    assert_eq!(
        control(&sim, post.clone(), "faults", Some(faults)).await.0,
        200
    );
    assert_eq!(send(&sim, CHAT, "a").await.0, 429);
    assert_eq!(send(&sim, 777, "b").await.0, 403);
    assert_eq!(send(&sim, CHAT, "c").await.0, 200);
    let (status, over) = send(&sim, CHAT, "d").await;
    assert_eq!(status, 429, "enforced per-chat limit");
    assert_eq!(
        over["parameters"]["retry_after"], 100,
        "one token per 100 s"
    );

    let (_, violations) = control(&sim, get.clone(), "violations", None).await;
    assert_eq!(violations["per_chat"], 1);
    assert_eq!(violations["by_chat"][CHAT.to_string()], 1);
    assert_eq!(violations["limits"]["enforce"], true);
    assert_eq!(sim.violations().per_chat, 1);

    let (_, calls) = control(&sim, get.clone(), "calls?since=2", None).await;
    let calls: Vec<RecordedCall> = serde_json::from_value(calls).unwrap();
    assert_eq!(calls.iter().map(|c| c.seq).collect::<Vec<_>>(), vec![3, 4]);
    assert_eq!(calls[0].params["text"], "c");
    let (_, only_777) = control(&sim, get.clone(), &format!("calls?chat_id={}", 777), None).await;
    assert_eq!(only_777.as_array().unwrap().len(), 1);

    let (status, error) = control(
        &sim,
        post.clone(),
        "faults",
        Some(json!({"fault": "explode"})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(error["description"]
        .as_str()
        .unwrap()
        .contains("unknown variant"));

    assert_eq!(control(&sim, post.clone(), "reset", None).await.0, 200);
    assert!(sim.calls().is_empty());
    assert_eq!(sim.violations().per_chat, 0);
    assert_eq!(send(&sim, 777, "unblocked by reset").await.0, 200);
    assert_eq!(sim.calls()[0].seq, 5, "seq keeps growing across a reset");
    assert_eq!(
        send(&sim, 777, "x").await.1["result"]["message_id"],
        2,
        "message ids restart"
    );
}

#[tokio::test]
async fn unenforced_limits_only_count() {
    let sim = start().await;
    sim.set_limits(RateLimits {
        global_burst: 4.0,
        // Slow refills keep the counts exact however slowly the test runs.
        global_rate: 0.01,
        chat_rate: 0.01,
        ..RateLimits::default()
    });
    for i in 0..6 {
        assert_eq!(send(&sim, CHAT + i, "burst").await.0, 200);
    }
    for _ in 0..4 {
        assert_eq!(send(&sim, CHAT + 100, "same chat").await.0, 200);
    }
    let v = sim.violations();
    assert_eq!(v.sends, 10);
    assert_eq!(v.global, 6, "everything after the global burst of 4");
    assert_eq!(
        v.per_chat, 1,
        "the fourth send to one chat exceeds its burst of 3"
    );
}

#[tokio::test]
async fn wait_until_sees_calls_made_later() {
    let sim = start().await;
    let sender = sim.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        send(&sender, CHAT, "late").await;
    });
    let calls = sim
        .wait_until(Duration::from_secs(5), |calls| {
            calls.iter().any(|c| c.chat_id == Some(CHAT))
        })
        .await
        .unwrap();
    assert_eq!(calls.len(), 1);

    let error = sim
        .wait_until(Duration::from_millis(50), |calls| calls.len() > 1)
        .await
        .unwrap_err();
    assert_eq!(error.calls.len(), 1);
    assert!(
        error.to_string().contains("sendMessage(123456789)=200"),
        "{error}"
    );
}

#[tokio::test]
async fn latency_delays_answers() {
    let sim = start().await;
    sim.set_latency(Duration::from_millis(150));
    let started = Instant::now();
    assert_eq!(call(&sim, "getMe", json!({})).await.0, 200);
    assert!(started.elapsed() >= Duration::from_millis(150));
    sim.set_latency(Duration::ZERO);
}

#[tokio::test]
async fn shutdown_closes_the_port() {
    let sim = start().await;
    let url = sim.api_url();
    assert_eq!(call(&sim, "getMe", json!({})).await.0, 200);
    sim.shutdown().await;
    assert!(reqwest::get(format!("{url}/bot{TOKEN}/getMe"))
        .await
        .is_err());
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_server() {
    let sim = start().await;
    let addr = sim.local_addr();
    let clone = sim.clone();
    drop(sim);
    assert_eq!(
        call(&clone, "getMe", json!({})).await.0,
        200,
        "a clone keeps it alive"
    );
    drop(clone);
    let deadline = Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(Instant::now() < deadline, "still accepting");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
