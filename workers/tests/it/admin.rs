use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::Value;
use shared::streams::SINGLE_PARTITION;
use sim::heleket::PayOptions;
use std::time::Duration;

const TOKEN: &str = "admin-token-for-tests";

#[tokio::test]
async fn the_admin_api_needs_the_token_and_answers_operators() {
    let mut sys = TestSystem::start_without_workers().await;
    let addr = sys.spawn_worker(&[("ADMIN_TOKEN", TOKEN)]).await;
    let base = format!("http://{addr}/admin");
    let call = |method: reqwest::Method, path: &str, token: Option<&str>| {
        let mut req = sys.http.request(method, format!("{base}{path}"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        async move {
            let r = req.send().await.unwrap();
            let status = r.status();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    use reqwest::Method;
    assert_eq!(
        call(Method::GET, "/users/1", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(Method::GET, "/users/1", Some("wrong")).await.0,
        StatusCode::UNAUTHORIZED
    );

    // A user who topped up 10.00.
    let ana = user(8001);
    sys.say(1, &ana, "/topup 10").await;
    let sent = sys.wait_for_sends(8001, 1).await;
    let url = sent[0].params["reply_markup"]["inline_keyboard"][0][0]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let uuid = sys
        .heleket
        .invoices()
        .into_iter()
        .find(|i| i.url == url)
        .unwrap()
        .uuid;
    sys.heleket.pay(&uuid, PayOptions::default()).await.unwrap();
    sys.wait_for_sends(8001, 2).await;

    let (status, body) = call(Method::GET, "/users/8001", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["balance"], "10.00");
    assert_eq!(body["ledger"][0]["kind"], "topup");
    let (status, body) = call(Method::GET, "/invoices/tu8001_1", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "paid");
    assert_eq!(body["events"][0]["outcome"], "credited");
    let (status, body) = call(Method::POST, "/invoices/tu8001_1/reconcile", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["heleket_status"], "paid");
    assert_eq!(
        call(Method::GET, "/invoices/nope", Some(TOKEN)).await.0,
        StatusCode::NOT_FOUND
    );

    // A poison entry lands in the dead letters; replaying it puts it back (and it dies again).
    let stream = sys.keys.updates_stream(SINGLE_PARTITION);
    sys.append_raw(&stream, "garbage").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let id = loop {
        let (_, body) = call(Method::GET, "/dead-letters/updates", Some(TOKEN)).await;
        if let Some(id) = body["entries"][0]["id"].as_str() {
            assert!(body["entries"][0]["fields"]["reason"]
                .as_str()
                .unwrap()
                .starts_with("undecodable"));
            break id.to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (status, body) = call(
        Method::POST,
        &format!("/dead-letters/updates/{id}/replay"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["replayed_as"].as_str().is_some());
    let (_, body) = call(Method::GET, "/dead-letters/updates", Some(TOKEN)).await;
    assert!(body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["id"] != id.as_str()));
    sys.finish().await;
}
