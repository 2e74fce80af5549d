use crate::helpers::*;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use shared::money::Money;
use shared::secret::SecretString;
use sim::heleket::PayOptions;
use std::process::Stdio;
use std::str::FromStr;
use std::time::Duration;

/// `/topup AMOUNT` as `user`; returns the invoice's uuid at the simulator, once the user got
/// the link.
pub(crate) async fn top_up(
    sys: &TestSystem,
    update_id: i64,
    user: &sim::SimUser,
    amount: &str,
) -> String {
    let before = sys.sim.sends_to(user.id).len();
    sys.say(update_id, user, &format!("/topup {amount}")).await;
    let sent = sys.wait_for_sends(user.id, before + 1).await;
    let reply = &sent[before];
    let url = reply.params["reply_markup"]["inline_keyboard"][0][0]["url"]
        .as_str()
        .unwrap_or_else(|| panic!("no pay button in {}", reply.params));
    let invoice = sys
        .heleket
        .invoices()
        .into_iter()
        .find(|i| i.url == url)
        .expect("the button opens a simulator invoice");
    invoice.uuid
}

async fn balance(sys: &TestSystem, user_id: i64) -> Decimal {
    let db = sys.db.client().await.unwrap();
    db.query_opt(
        "SELECT balance FROM balances WHERE user_id = $1",
        &[&user_id],
    )
    .await
    .unwrap()
    .map(|r| r.get(0))
    .unwrap_or(Decimal::ZERO)
}

async fn count(sys: &TestSystem, sql: &str) -> i64 {
    let db = sys.db.client().await.unwrap();
    db.query_one(sql, &[]).await.unwrap().get(0)
}

fn notices(sys: &TestSystem, user_id: i64) -> Vec<String> {
    sys.sim
        .sends_to(user_id)
        .iter()
        .map(|c| text_of(c).to_owned())
        .filter(|t| t.starts_with("Payment received"))
        .collect()
}

pub(crate) async fn wait_for_notices(sys: &TestSystem, user_id: i64, n: usize) -> Vec<String> {
    sys.sim
        .wait_until(WAIT, |_| notices(sys, user_id).len() >= n)
        .await
        .expect("notification arrives");
    tokio::time::sleep(Duration::from_millis(500)).await;
    notices(sys, user_id)
}

#[tokio::test]
async fn a_paid_invoice_is_credited_once_with_one_notification() {
    let sys = TestSystem::start().await;
    let ana = user(6001);
    let uuid = top_up(&sys, 1, &ana, "10").await;
    let invoice = sys.heleket.invoice(&uuid).unwrap();
    assert_eq!(
        (invoice.amount.as_str(), invoice.currency.as_str()),
        ("10.00", "USD")
    );
    assert_eq!(
        invoice.url_callback.as_deref(),
        Some(format!("{}/heleket/webhook", sys.ingress_url).as_str())
    );
    sys.heleket.pay(&uuid, PayOptions::default()).await.unwrap();
    let got = wait_for_notices(&sys, 6001, 1).await;
    assert_eq!(
        got,
        vec!["Payment received: +10.00 USD. Balance: 10.00 USD"]
    );
    sys.say(2, &ana, "/balance").await;
    let sent = sys.wait_for_sends(6001, 3).await;
    assert_eq!(text_of(&sent[2]), "Balance: 10.00 USD");
    // The audit trail holds the body as Heleket sent it, signature included.
    let verbatim = count(
        &sys,
        "SELECT count(*) FROM payment_events WHERE payload ? 'sign' AND outcome = 'credited'",
    )
    .await;
    assert_eq!(verbatim, 1);
    sys.finish().await;
}

#[tokio::test]
async fn twenty_concurrent_deliveries_of_one_paid_webhook_credit_once() {
    let mut sys = TestSystem::start().await;
    sys.spawn_worker(&[]).await;
    let ana = user(6002);
    let uuid = top_up(&sys, 1, &ana, "7.5").await;
    let options = PayOptions {
        duplicates: 19,
        ..PayOptions::default()
    };
    sys.heleket.pay(&uuid, options).await.unwrap();
    let got = wait_for_notices(&sys, 6002, 1).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(notices(&sys, 6002).len(), 1, "{got:?}");
    assert_eq!(
        balance(&sys, 6002).await,
        Decimal::from_str("7.50").unwrap()
    );
    assert_eq!(
        count(&sys, "SELECT count(*) FROM ledger WHERE user_id = 6002").await,
        1
    );
    sys.finish().await;
}

#[tokio::test]
async fn events_after_paid_change_nothing_and_stale_ones_are_ignored() {
    let sys = TestSystem::start().await;
    let ana = user(6003);
    let uuid = top_up(&sys, 1, &ana, "10").await;
    let options = PayOptions {
        also_send_before: vec!["process".into(), "confirm_check".into()],
        out_of_order: true,
        ..PayOptions::default()
    };
    sys.heleket.pay(&uuid, options).await.unwrap();
    wait_for_notices(&sys, 6003, 1).await;
    // And a cancel after paid, signed by "Heleket".
    let cancel = signed_webhook(&uuid, "tu6003_1", "cancel", "10.00");
    assert_eq!(post_webhook(&sys, &cancel).await, reqwest::StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        balance(&sys, 6003).await,
        Decimal::from_str("10.00").unwrap()
    );
    assert_eq!(notices(&sys, 6003).len(), 1);
    let db = sys.db.client().await.unwrap();
    let status: String = db
        .query_one(
            "SELECT status FROM payments WHERE order_id = 'tu6003_1'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "paid");
    let ignored = count(
        &sys,
        "SELECT count(*) FROM payment_events WHERE outcome = 'ignored_final'",
    )
    .await;
    assert_eq!(ignored, 3, "process, confirm_check and cancel after paid");
    sys.finish().await;
}

fn signed_webhook(uuid: &str, order_id: &str, status: &str, amount: &str) -> Vec<u8> {
    let fields = json!({
        "type": "payment", "uuid": uuid, "order_id": order_id, "amount": amount,
        "payment_amount": amount, "payment_amount_usd": amount, "merchant_amount": amount,
        "commission": "0.00", "is_final": true, "status": status, "from": null,
        "wallet_address_uuid": null, "network": "tron", "currency": "USD",
        "payer_currency": "USDT", "additional_data": null, "txid": "ab/cd"
    });
    let Value::Object(map) = fields else {
        unreachable!()
    };
    shared::heleket::sign::signed_webhook_body(&map, &SecretString::new(HELEKET_KEY), false)
}

async fn post_webhook(sys: &TestSystem, body: &[u8]) -> reqwest::StatusCode {
    sys.http
        .post(format!("{}/heleket/webhook", sys.ingress_url))
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn a_signed_webhook_for_an_unknown_invoice_is_accepted_and_parked() {
    let sys = TestSystem::start().await;
    let body = signed_webhook(
        "5b8f8e1e-8d1c-4c3b-9a57-0d2f1f7f0001",
        "nobody_1",
        "paid",
        "99.00",
    );
    assert_eq!(post_webhook(&sys, &body).await, reqwest::StatusCode::OK);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let parked = count(&sys, "SELECT count(*) FROM payment_events WHERE outcome = 'unknown_invoice' AND reason IS NOT NULL").await;
        if parked == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never parked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(count(&sys, "SELECT count(*) FROM ledger").await, 0);
    sys.finish().await;
}

#[tokio::test]
async fn forged_and_tampered_webhooks_are_refused_and_credit_nothing() {
    let sys = TestSystem::start().await;
    let ana = user(6005);
    let uuid = top_up(&sys, 1, &ana, "10").await;
    let genuine = signed_webhook(&uuid, "tu6005_1", "paid", "10.00");
    let tampered = String::from_utf8(genuine.clone())
        .unwrap()
        .replace("\"amount\":\"10.00\"", "\"amount\":\"99.00\"");
    assert_eq!(
        post_webhook(&sys, tampered.as_bytes()).await,
        reqwest::StatusCode::UNAUTHORIZED
    );
    let other_key = {
        let Value::Object(map) = serde_json::from_slice::<Value>(&genuine).unwrap() else {
            unreachable!()
        };
        let mut map = map;
        map.remove("sign");
        shared::heleket::sign::signed_webhook_body(
            &map,
            &SecretString::new("another-merchant-key"),
            false,
        )
    };
    assert_eq!(
        post_webhook(&sys, &other_key).await,
        reqwest::StatusCode::UNAUTHORIZED
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(balance(&sys, 6005).await, Decimal::ZERO);
    assert_eq!(count(&sys, "SELECT count(*) FROM payment_events").await, 0);
    sys.finish().await;
}

/// The payments worker dies right after committing the credit, before the notification
/// left: a new worker publishes it from the outbox, once.
#[tokio::test]
async fn a_crash_between_commit_and_notification_still_notifies_exactly_once() {
    let mut sys = TestSystem::start_without_workers().await;
    sys.spawn_worker(&[("ROLES", "updates,sender")]).await;
    let ana = user(6006);
    let uuid = top_up(&sys, 1, &ana, "10").await;
    let mut doomed = tokio::process::Command::new(env!("CARGO_BIN_EXE_worker"))
        .args(["--roles", "payments"])
        .env_clear()
        .envs(sys.worker_env(&[
            ("PAYSTREAM_FAILPOINT", "crash_after_credit_commit"),
            ("RUST_LOG", "warn"),
        ]))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    sys.heleket.pay(&uuid, PayOptions::default()).await.unwrap();
    let status = tokio::time::timeout(WAIT, doomed.wait())
        .await
        .expect("worker crashes")
        .unwrap();
    assert!(!status.success(), "the failpoint aborted the process");
    assert_eq!(
        balance(&sys, 6006).await,
        Decimal::from_str("10.00").unwrap()
    );
    assert!(
        notices(&sys, 6006).is_empty(),
        "nothing published before the crash"
    );
    sys.spawn_worker(&[("ROLES", "payments")]).await;
    let got = wait_for_notices(&sys, 6006, 1).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(notices(&sys, 6006).len(), 1, "{got:?}");
    assert_eq!(
        balance(&sys, 6006).await,
        Decimal::from_str("10.00").unwrap()
    );
    sys.finish().await;
}

#[tokio::test]
async fn a_lost_webhook_is_found_by_the_reconciler() {
    let mut sys = TestSystem::start_without_workers().await;
    sys.spawn_worker(&[
        ("RECONCILE_AFTER_SECS", "0"),
        ("RECONCILE_INTERVAL_SECS", "1"),
    ])
    .await;
    let ana = user(6007);
    let uuid = top_up(&sys, 1, &ana, "12.34").await;
    let options = PayOptions {
        deliver: false,
        ..PayOptions::default()
    };
    sys.heleket.pay(&uuid, options).await.unwrap();
    let got = wait_for_notices(&sys, 6007, 1).await;
    assert_eq!(
        got,
        vec!["Payment received: +12.34 USD. Balance: 12.34 USD"]
    );
    assert!(
        sys.heleket.deliveries().is_empty(),
        "no webhook was ever sent"
    );
    let source: String = sys
        .db
        .client()
        .await
        .unwrap()
        .query_one(
            "SELECT source FROM payment_events WHERE status = 'paid'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(source, "reconciler");
    sys.finish().await;
}

#[tokio::test]
async fn invalid_amounts_are_refused_and_create_nothing() {
    let sys = TestSystem::start().await;
    let ana = user(6008);
    let cases = [
        ("-5", "the amount must be positive"),
        ("0", "the amount must be positive"),
        ("abc", "that is not an amount"),
        ("10.001", "at most 2 decimals"),
        ("100000", "the maximum is 10000.00 USD"),
    ];
    for (i, (amount, _)) in cases.iter().enumerate() {
        sys.say(i as i64 + 1, &ana, &format!("/topup {amount}"))
            .await;
    }
    let sent = sys.wait_for_sends(6008, cases.len()).await;
    for (reply, (amount, reason)) in sent.iter().zip(cases) {
        assert!(
            text_of(reply).contains(reason),
            "{amount}: {}",
            text_of(reply)
        );
    }
    assert_eq!(count(&sys, "SELECT count(*) FROM payments").await, 0);
    assert!(sys.heleket.calls().is_empty());
    sys.finish().await;
}

#[tokio::test]
async fn heleket_down_opens_the_circuit_and_it_recovers_on_its_own() {
    let mut sys = TestSystem::start_without_workers().await;
    sys.spawn_worker(&[
        ("HELEKET_RETRIES", "1"),
        ("HELEKET_BREAKER_FAILURES", "2"),
        ("HELEKET_BREAKER_OPEN_SECS", "2"),
    ])
    .await;
    sys.heleket.set_down(true);
    let ana = user(6009);
    for id in 1..=4 {
        sys.say(id, &ana, &format!("/topup {id}")).await;
        sys.wait_for_sends(6009, id as usize).await;
    }
    let sent = sys.sim.sends_to(6009);
    assert!(sent
        .iter()
        .all(|c| text_of(c).starts_with("Payments are temporarily unavailable")));
    // Two calls (with one retry each) opened the breaker; the last two never reached Heleket
    // and wrote no invoice row.
    assert_eq!(sys.heleket.calls().len(), 4);
    assert_eq!(count(&sys, "SELECT count(*) FROM payments").await, 2);
    assert_eq!(
        count(
            &sys,
            "SELECT count(*) FROM payments WHERE status = 'pending'"
        )
        .await,
        2
    );
    sys.heleket.set_down(false);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let uuid = top_up(&sys, 10, &ana, "5").await;
    assert!(sys.heleket.invoice(&uuid).is_some());
    sys.finish().await;
}

#[tokio::test]
async fn asking_again_for_the_same_amount_reuses_the_unpaid_invoice() {
    let sys = TestSystem::start().await;
    let ana = user(6010);
    let first = top_up(&sys, 1, &ana, "10").await;
    let again = top_up(&sys, 2, &ana, "10.00").await;
    assert_eq!(first, again, "same link while unpaid");
    let other = top_up(&sys, 3, &ana, "20").await;
    assert_ne!(first, other);
    assert_eq!(sys.heleket.invoices().len(), 2);
    sys.heleket
        .pay(&first, PayOptions::default())
        .await
        .unwrap();
    wait_for_notices(&sys, 6010, 1).await;
    let after_payment = top_up(&sys, 4, &ana, "10").await;
    assert_ne!(first, after_payment, "a paid invoice is not offered again");
    sys.finish().await;
}

/// Only one reconciliation pass runs at a time across all copies.
#[tokio::test]
async fn a_reconciler_pass_waits_for_the_lease() {
    let sys = TestSystem::start_without_workers().await;
    let env: Vec<(String, String)> = sys.worker_env(&[("RECONCILE_AFTER_SECS", "0")]);
    let env = shared::config::Env::from_pairs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let settings = workers::Settings::from_env(&env, None).unwrap();
    let conn = shared::redis_conn::connect(&settings.redis).unwrap();
    let reconciler = || workers::payments::Reconciler {
        pool: workers::db::pool(&settings.database_url, 2).unwrap(),
        conn: conn.clone(),
        keys: sys.keys.clone(),
        client: settings.heleket.as_ref().unwrap().client().unwrap(),
        settings: settings.payments.clone(),
        metrics: workers::metrics::Metrics::new(),
    };
    let lease = sys.keys.key(format_args!("reconciler:lease"));
    let mut redis = sys.redis().await;
    let _: () = redis::cmd("SET")
        .arg(&lease)
        .arg("another-copy")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(
        reconciler().pass_if_leader().await.unwrap(),
        None,
        "another copy holds the lease"
    );
    let _: () = redis::cmd("DEL")
        .arg(&lease)
        .query_async(&mut redis)
        .await
        .unwrap();
    let free = reconciler();
    assert!(
        free.pass_if_leader().await.unwrap().is_some(),
        "a free lease is taken"
    );
    let held: Option<String> = redis::cmd("GET")
        .arg(&lease)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(held, None, "released after the pass");
    sys.finish().await;
}

fn button_data(call: &sim::RecordedCall, label: &str) -> String {
    call.params["reply_markup"]["inline_keyboard"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap())
        .find(|b| b["text"].as_str().unwrap().contains(label))
        .and_then(|b| b["callback_data"].as_str())
        .unwrap_or_else(|| panic!("no {label:?} button in {}", call.params))
        .to_owned()
}

#[tokio::test]
async fn top_up_buttons_preset_and_other_amount() {
    let sys = TestSystem::start().await;
    let ana = user(6011);
    sys.say(1, &ana, "/start").await;
    let sent = sys.wait_for_sends(6011, 1).await;
    let system = &sys;
    let press = |id: i64, data: String| {
        let update = sim::updates::callback_query(id, &ana, 1, &data);
        async move { assert_eq!(system.post_update(&update).await, reqwest::StatusCode::OK) }
    };
    press(2, button_data(&sent[0], "Top up")).await;
    let sent = sys.wait_for_sends(6011, 2).await;
    assert_eq!(text_of(&sent[1]), "How much would you like to top up?");
    press(3, button_data(&sent[1], "25.00 USD")).await;
    let sent = sys.wait_for_sends(6011, 3).await;
    assert!(
        text_of(&sent[2]).starts_with("Invoice for 25.00 USD"),
        "{}",
        text_of(&sent[2])
    );
    press(4, button_data(&sent[1], "Other amount")).await;
    let sent = sys.wait_for_sends(6011, 4).await;
    assert!(text_of(&sent[3]).starts_with("Send the amount in USD"));
    sys.say(5, &ana, "12,75").await;
    let sent = sys.wait_for_sends(6011, 5).await;
    assert!(
        text_of(&sent[4]).starts_with("Invoice for 12.75 USD"),
        "{}",
        text_of(&sent[4])
    );
    // The next plain message is a message again, not an amount.
    sys.say(6, &ana, "13").await;
    let sent = sys.wait_for_sends(6011, 6).await;
    assert!(text_of(&sent[5]).starts_with("What I can do:"));
    let amounts: Vec<String> = sys
        .heleket
        .invoices()
        .into_iter()
        .map(|i| i.amount)
        .collect();
    assert_eq!(amounts.len(), 2);
    assert!(amounts.contains(&"25.00".to_owned()) && amounts.contains(&"12.75".to_owned()));
    sys.finish().await;
}

#[tokio::test]
async fn an_expired_invoice_is_closed_and_credits_nothing() {
    let sys = TestSystem::start().await;
    let ana = user(6012);
    let uuid = top_up(&sys, 1, &ana, "10").await;
    sys.heleket.expire(&uuid).expect("invoice expires");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let closed = count(
            &sys,
            "SELECT count(*) FROM payments WHERE order_id = 'tu6012_1' AND status = 'cancel'",
        )
        .await;
        if closed == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never closed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Paying after expiry changes nothing either: the invoice is final.
    let late = signed_webhook(&uuid, "tu6012_1", "paid", "10.00");
    assert_eq!(post_webhook(&sys, &late).await, reqwest::StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(balance(&sys, 6012).await, Decimal::ZERO);
    assert!(notices(&sys, 6012).is_empty());
    sys.finish().await;
}

/// Several invoices of one user paid at once (usually one read, one transaction): the
/// balance is their sum, and each ledger line and notification shows the balance right after
/// its own credit.
#[tokio::test]
async fn simultaneous_credits_to_one_user_chain_their_balances() {
    let sys = TestSystem::start_without_workers().await;
    let mut sys = sys;
    sys.spawn_worker(&[("ROLES", "updates,sender")]).await;
    let ana = user(6013);
    let a = top_up(&sys, 1, &ana, "10").await;
    let b = top_up(&sys, 2, &ana, "5").await;
    let c = top_up(&sys, 3, &ana, "2.5").await;
    for uuid in [&a, &b, &c] {
        let options = PayOptions {
            duplicates: 2,
            ..PayOptions::default()
        };
        sys.heleket.pay(uuid, options).await.unwrap();
    }
    // Only now does a payments worker read: all nine deliveries in one batch.
    sys.spawn_worker(&[("ROLES", "payments")]).await;
    let got = wait_for_notices(&sys, 6013, 3).await;
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(
        balance(&sys, 6013).await,
        Decimal::from_str("17.50").unwrap()
    );
    let db = sys.db.client().await.unwrap();
    let rows = db
        .query(
            "SELECT amount, balance_after FROM ledger WHERE user_id = 6013 ORDER BY balance_after",
            &[],
        )
        .await
        .unwrap();
    let mut running = Decimal::ZERO;
    for row in &rows {
        let (amount, after): (Decimal, Decimal) = (row.get(0), row.get(1));
        running += amount;
        assert_eq!(after, running, "ledger lines chain");
        let notice = format!(
            "Payment received: +{}. Balance: {}",
            Money::new(amount),
            Money::new(after)
        );
        assert!(got.contains(&notice), "{notice} not in {got:?}");
    }
    assert_eq!(rows.len(), 3);
    sys.finish().await;
}
