//! The scaling proof (issue 5): under steady load the pool of `worker` processes grows from
//! one to four and shrinks back to one, and afterwards nothing is lost, nothing doubled and
//! every balance is exact.

use crate::helpers::*;
use crate::metrics::parse;
use redis::streams::{StreamInfoGroupsReply, StreamPendingReply};
use rust_decimal::Decimal;
use serde_json::Value;
use shared::money::Money;
use shared::streams::{PAYMENTS_GROUP, SENDER_GROUP, SINGLE_PARTITION, UPDATES_GROUP};
use sim::heleket::{HeleketSim, PayOptions};
use sim::{RecordedCall, TelegramSim};
use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

/// Message update `i` comes from user `MESSAGE_USERS + i`, its only update: "one reply per
/// update" is then exactly "one message in that chat".
const MESSAGE_USERS: i64 = 8_000_000;
/// Top-up `k` is update `TOPUP_UPDATES + k` from payer `PAYERS + k % PAYER_COUNT`, so each
/// payer's balance collects many concurrent credits.
const TOPUP_UPDATES: i64 = 5_000_000;
const PAYERS: i64 = 8_900_000;
const PAYER_COUNT: i64 = 8;
const MESSAGE_EVERY: Duration = Duration::from_millis(25);
const TOPUP_EVERY: Duration = Duration::from_millis(200);
/// Each phase lasts at least this long, so load flows through every pool size.
const PHASE_MIN: Duration = Duration::from_secs(3);
/// Every wait on a condition gives up only after this; a healthy run needs a fraction.
const PATIENCE: Duration = Duration::from_secs(60);

const PHASES: [(&str, &str); 5] = [
    ("1 worker", "1"),
    ("growing", "1->4"),
    ("4 workers", "4"),
    ("shrinking", "4->1"),
    ("1 worker again", "1"),
];

/// A `worker` process of the pool, as an operator runs it.
struct Worker {
    name: &'static str,
    roles: &'static str,
    child: Child,
    metrics_url: String,
}

/// Stream entries a worker handled successfully, per role.
#[derive(Debug, Clone, Copy, Default)]
struct Handled {
    updates: Option<u64>,
    payments: Option<u64>,
    sender: Option<u64>,
}

impl Worker {
    async fn start(sys: &TestSystem, name: &'static str, roles: &'static str) -> Worker {
        let mut child = Command::new(env!("CARGO_BIN_EXE_worker"))
            .args(["--roles", roles])
            .env_clear()
            .envs(sys.worker_env(&[
                // Only the start-up line (it names the metrics address) and warnings.
                ("RUST_LOG", "warn,workers::app=info"),
                ("STREAM_BATCH_SIZE", "8"),
                // An entry moves to another consumer after 2 s without acknowledgement: soon
                // enough after a kill, and long enough that a live worker on a busy machine
                // keeps what it is working on. Deliveries and grace are the production values.
                ("STREAM_CLAIM_IDLE_MS", "2000"),
                ("STREAM_MAX_DELIVERIES", "5"),
                ("SHUTDOWN_GRACE_SECS", "20"),
                // A slow moment must not turn a top-up into "temporarily unavailable".
                ("HELEKET_TIMEOUT_MS", "15000"),
            ]))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("worker binary starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (started, addr) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let mut started = Some(started);
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let log: Value = serde_json::from_str(&line).unwrap_or_default();
                match (log["fields"]["metrics_addr"].as_str(), started.take()) {
                    (Some(addr), Some(tx)) => {
                        let _ = tx.send(addr.to_owned());
                    }
                    (_, tx) => {
                        started = tx;
                        if log["level"] != "INFO" {
                            eprintln!("[worker {name}] {line}");
                        }
                    }
                }
            }
        });
        let addr = tokio::time::timeout(PATIENCE, addr)
            .await
            .expect("worker starts in time")
            .expect("worker logs its metrics address");
        Worker {
            name,
            roles,
            child,
            metrics_url: format!("http://{addr}/metrics"),
        }
    }

    fn pid(&self) -> String {
        self.child.id().expect("worker runs").to_string()
    }

    async fn handled(&self, http: &reqwest::Client) -> Handled {
        let text = http
            .get(&self.metrics_url)
            .send()
            .await
            .expect("worker metrics answer")
            .text()
            .await
            .unwrap();
        let samples = parse(&text);
        let ok = |role: &str| {
            let count = samples
                .iter()
                .filter(|s| {
                    s.name == "stream_entries_processed_total"
                        && s.labels.get("role").map(String::as_str) == Some(role)
                        && s.labels.get("outcome").map(String::as_str) == Some("ok")
                })
                .map(|s| s.value as u64)
                .sum();
            self.roles.contains(role).then_some(count)
        };
        Handled {
            updates: ok("updates"),
            payments: ok("payments"),
            sender: ok("sender"),
        }
    }

    /// True once it handled entries of every role it runs.
    fn took_part(h: &Handled) -> bool {
        [h.updates, h.payments, h.sender]
            .iter()
            .all(|n| *n != Some(0))
    }

    /// SIGTERM: stops reading, finishes what it holds, exits 0.
    async fn terminate(mut self) {
        let killed = Command::new("kill")
            .args(["-TERM", &self.pid()])
            .status()
            .await
            .unwrap();
        assert!(killed.success());
        let status = tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("worker {} drains and exits", self.name))
            .unwrap();
        assert_eq!(status.code(), Some(0), "worker {} after SIGTERM", self.name);
    }

    /// SIGKILL, as soon as it holds unacknowledged updates (or after 10 s regardless);
    /// returns its pid and how many it held. Another consumer must claim them.
    async fn kill_while_holding(mut self, sys: &TestSystem) -> (String, usize) {
        let pid = self.pid();
        let deadline = Instant::now() + Duration::from_secs(10);
        let held = loop {
            let held = updates_held_by(sys, &pid).await;
            if held > 0 || Instant::now() > deadline {
                break held;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
        (pid, held)
    }
}

/// Updates delivered to the process `pid` and not acknowledged (nor claimed away) yet.
async fn updates_held_by(sys: &TestSystem, pid: &str) -> usize {
    let reply: StreamPendingReply = redis::cmd("XPENDING")
        .arg(sys.keys.updates_stream(SINGLE_PARTITION))
        .arg(UPDATES_GROUP)
        .query_async(&mut sys.redis().await)
        .await
        .unwrap();
    match reply {
        // Consumer names are `<host>-<pid>-<random>`.
        StreamPendingReply::Data(data) => data
            .consumers
            .iter()
            .filter(|c| c.name.rsplit('-').nth(1) == Some(pid))
            .map(|c| c.pending)
            .sum(),
        _ => 0,
    }
}

/// What the load tasks need of the system; cheap to clone into tasks.
#[derive(Clone)]
struct Load {
    http: reqwest::Client,
    webhook_url: String,
    sim: TelegramSim,
    heleket: HeleketSim,
    phase: Arc<AtomicUsize>,
    stop: CancellationToken,
}

/// An invoice the user asked for in `phase` and Heleket then paid.
#[derive(Debug)]
struct Paid {
    payer: i64,
    amount: Decimal,
    uuid: String,
    phase: usize,
}

impl Load {
    async fn post(&self, update: &Value) {
        let status = self
            .http
            .post(&self.webhook_url)
            .header("X-Telegram-Bot-Api-Secret-Token", SECRET)
            .json(update)
            .send()
            .await
            .expect("ingress answers")
            .status();
        assert_eq!(status, reqwest::StatusCode::OK, "ingress refused {update}");
    }

    /// One message update every `MESSAGE_EVERY`, each from a new user, alternating `/balance`
    /// and `/help`, until stopped; returns the phase each was posted in.
    async fn messages(self) -> Vec<usize> {
        let mut posted = Vec::new();
        let mut tick = tokio::time::interval(MESSAGE_EVERY);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        while !self.stop.is_cancelled() {
            tick.tick().await;
            let i = posted.len() as i64 + 1;
            let text = if i % 2 == 0 { "/help" } else { "/balance" };
            let phase = self.phase.load(Ordering::SeqCst);
            self.post(&sim::updates::message_text(
                i,
                &user(MESSAGE_USERS + i),
                text,
            ))
            .await;
            posted.push(phase);
        }
        posted
    }

    /// One `/topup` every `TOPUP_EVERY` until stopped, each followed (in its own task) by
    /// the payment at Heleket.
    async fn top_ups(self) -> Vec<JoinHandle<Paid>> {
        let mut tasks = Vec::new();
        let mut tick = tokio::time::interval(TOPUP_EVERY);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        while !self.stop.is_cancelled() {
            tick.tick().await;
            let k = tasks.len() as i64;
            tasks.push(tokio::spawn(self.clone().top_up_and_pay(k)));
        }
        tasks
    }

    /// `/topup AMOUNT` (every amount differs, so each reply and notification names its
    /// invoice), waits for the link, and pays with every webhook delivered twice.
    async fn top_up_and_pay(self, k: i64) -> Paid {
        let phase = self.phase.load(Ordering::SeqCst);
        let payer = PAYERS + k % PAYER_COUNT;
        let amount = Decimal::from_str(&format!("{}.{:02}", k + 1, (k * 37) % 100)).unwrap();
        self.post(&sim::updates::message_text(
            TOPUP_UPDATES + k,
            &user(payer),
            &format!("/topup {amount}"),
        ))
        .await;
        let ready = format!("Invoice for {} is ready", Money::new(amount));
        let deadline = Instant::now() + PATIENCE;
        let url = loop {
            let reply = self
                .sim
                .sends_to(payer)
                .into_iter()
                .find(|c| text_of(c).starts_with(&ready));
            if let Some(reply) = reply {
                break reply.params["reply_markup"]["inline_keyboard"][0][0]["url"]
                    .as_str()
                    .expect("a pay button")
                    .to_owned();
            }
            assert!(Instant::now() < deadline, "no link: {ready}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let uuid = self
            .heleket
            .invoices()
            .into_iter()
            .find(|i| i.url == url)
            .expect("the button opens a simulator invoice")
            .uuid;
        let options = PayOptions {
            duplicates: 1,
            ..PayOptions::default()
        };
        let attempts = self.heleket.pay(&uuid, options).await.expect("payment");
        // Both copies of the webhook ended accepted (after retries, if any).
        let mut last: BTreeMap<u64, Option<u16>> = BTreeMap::new();
        for a in attempts {
            last.insert(a.delivery, a.http_status);
        }
        assert_eq!(last.len(), 2, "two deliveries of {uuid}");
        assert!(last.values().all(|s| *s == Some(200)), "{uuid}: {last:?}");
        Paid {
            payer,
            amount,
            uuid,
            phase,
        }
    }
}

/// Every entry of the group acknowledged and nothing left unread.
async fn drained(conn: &mut redis::aio::MultiplexedConnection, stream: &str, group: &str) -> bool {
    let groups: StreamInfoGroupsReply = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(stream)
        .query_async(conn)
        .await
        .unwrap();
    let Some(g) = groups.groups.iter().find(|g| g.name == group) else {
        return false;
    };
    let unread: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(stream)
        .arg(format!("({}", g.last_delivered_id))
        .arg("+")
        .arg("COUNT")
        .arg(1)
        .query_async(conn)
        .await
        .unwrap();
    g.pending == 0 && unread.ids.is_empty()
}

async fn query_i64(sys: &TestSystem, sql: &str) -> i64 {
    let db = sys.db.client().await.unwrap();
    db.query_one(sql, &[]).await.unwrap().get(0)
}

/// Waits until no work is left: each group has read and acknowledged everything, looked at
/// in the order work flows (updates and payment events, then the outbox they fill, then the
/// outbound stream all of them feed), so nothing can appear behind the check.
async fn wait_until_quiet(sys: &TestSystem) {
    let mut conn = sys.redis().await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let quiet = drained(
            &mut conn,
            &sys.keys.updates_stream(SINGLE_PARTITION),
            UPDATES_GROUP,
        )
        .await
            && drained(
                &mut conn,
                &sys.keys.payments_stream(SINGLE_PARTITION),
                PAYMENTS_GROUP,
            )
            .await
            && query_i64(
                sys,
                "SELECT count(*) FROM outbox WHERE published_at IS NULL",
            )
            .await
                == 0
            && drained(
                &mut conn,
                &sys.keys.outbound_stream(SINGLE_PARTITION),
                SENDER_GROUP,
            )
            .await;
        if quiet {
            return;
        }
        assert!(Instant::now() < deadline, "work left in the streams");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every update answered exactly once with the right reply, every invoice linked once and
/// announced once, and nothing else sent.
fn audit_replies(calls: &[RecordedCall], updates: usize, paid: &[Paid]) {
    let mut per_chat: HashMap<i64, Vec<&RecordedCall>> = HashMap::new();
    for call in calls {
        assert_eq!(
            (call.method.as_str(), call.status),
            ("sendMessage", 200),
            "{call:?}"
        );
        per_chat
            .entry(call.chat_id.expect("a chat"))
            .or_default()
            .push(call);
    }
    let (mut missing, mut doubled, mut wrong) = (Vec::new(), Vec::new(), Vec::new());
    for i in 1..=updates as i64 {
        let got = per_chat
            .get(&(MESSAGE_USERS + i))
            .map_or(&[][..], Vec::as_slice);
        match got {
            [] => missing.push(i),
            [reply] => {
                let expected = if i % 2 == 0 {
                    "What I can do:"
                } else {
                    "Balance: 0.00 USD"
                };
                if !text_of(reply).starts_with(expected) {
                    wrong.push((i, text_of(reply).to_owned()));
                }
            }
            _ => doubled.push(i),
        }
    }
    assert!(
        missing.is_empty() && doubled.is_empty() && wrong.is_empty(),
        "updates without a reply: {missing:?}; with more than one: {doubled:?}; \
         wrong replies: {wrong:?}"
    );
    for p in paid {
        let texts: Vec<&str> = per_chat
            .get(&p.payer)
            .into_iter()
            .flatten()
            .map(|c| text_of(c))
            .collect();
        let money = Money::new(p.amount);
        let count = |prefix: String| texts.iter().filter(|t| t.starts_with(&prefix)).count();
        let links = count(format!("Invoice for {money} is ready"));
        let notices = count(format!("Payment received: +{money}. "));
        assert_eq!(
            (links, notices),
            (1, 1),
            "invoice {} for {money}: links and notifications",
            p.uuid
        );
    }
    assert_eq!(
        calls.len(),
        updates + 2 * paid.len(),
        "one reply per update and one notification per invoice, nothing else"
    );
}

/// One ledger line per invoice, on the right user, for the right amount; each balance is the
/// sum of its user's invoices and each ledger line chains on the one before. Returns the sum
/// of all balances.
async fn audit_money(sys: &TestSystem, paid: &[Paid]) -> Decimal {
    let db = sys.db.client().await.unwrap();
    let lines: HashMap<String, (i64, Decimal, Decimal)> = db
        .query(
            "SELECT reference, user_id, amount, balance_after FROM ledger WHERE kind = 'topup'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3))))
        .collect();
    let invoices = paid.len() as i64;
    assert_eq!(
        query_i64(sys, "SELECT count(*) FROM ledger").await,
        invoices
    );
    assert_eq!(lines.len(), paid.len(), "one ledger line per invoice");
    let mut expected: BTreeMap<i64, Decimal> = BTreeMap::new();
    for p in paid {
        let line = lines.get(&p.uuid).map(|l| (l.0, l.1));
        assert_eq!(line, Some((p.payer, p.amount)), "ledger line of {}", p.uuid);
        *expected.entry(p.payer).or_default() += p.amount;
    }
    let mut total = Decimal::ZERO;
    for (payer, sum) in &expected {
        let balance: Decimal = db
            .query_one("SELECT balance FROM balances WHERE user_id = $1", &[payer])
            .await
            .unwrap()
            .get(0);
        assert_eq!(balance, *sum, "balance of {payer}");
        let mut chain: Vec<(Decimal, Decimal)> = lines
            .values()
            .filter(|l| l.0 == *payer)
            .map(|l| (l.1, l.2))
            .collect();
        chain.sort_by_key(|l| l.1);
        let mut running = Decimal::ZERO;
        for (amount, after) in chain {
            running += amount;
            assert_eq!(after, running, "ledger of {payer} chains");
        }
        total += balance;
    }
    let paid_rows = "SELECT count(*) FROM payments WHERE status = 'paid' AND credited = amount";
    assert_eq!(query_i64(sys, paid_rows).await, invoices);
    let credited = "SELECT count(*) FROM payment_events WHERE outcome = 'credited'";
    assert_eq!(query_i64(sys, credited).await, invoices);
    total
}

#[tokio::test]
async fn pool_grows_from_one_to_four_and_back_under_load_without_loss_or_doubles() {
    let started = Instant::now();
    let sys = TestSystem::start_without_workers().await;
    let load = Load {
        http: sys.http.clone(),
        webhook_url: format!("{}/telegram/webhook", sys.ingress_url),
        sim: sys.sim.clone(),
        heleket: sys.heleket.clone(),
        phase: Arc::new(AtomicUsize::new(0)),
        stop: CancellationToken::new(),
    };
    let mut phase_started = vec![Instant::now()];
    let next_phase = |load: &Load, phase_started: &mut Vec<Instant>| {
        load.phase.fetch_add(1, Ordering::SeqCst);
        phase_started.push(Instant::now());
    };
    let all_roles = "updates,payments,sender,reconciler";

    // Phase 0: one worker.
    let a = Worker::start(&sys, "A", all_roles).await;
    phase_started[0] = Instant::now();
    let messages = tokio::spawn(load.clone().messages());
    let top_ups = tokio::spawn(load.clone().top_ups());
    tokio::time::sleep(PHASE_MIN).await;

    // Phase 1: three more join, one a second. D, the one to be killed, runs the updates role
    // only: every effect of an update is one MULTI with its done marker, so a kill at any
    // instant leaves nothing half done. (A killed sender or outbox publisher has a documented
    // window, sent or published but not yet recorded, that a kill can hit by chance.)
    next_phase(&load, &mut phase_started);
    let b = Worker::start(&sys, "B", all_roles).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let c = Worker::start(&sys, "C", all_roles).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let d = Worker::start(&sys, "D", "updates").await;

    // Phase 2: four workers, until each has handled entries of every role it runs.
    next_phase(&load, &mut phase_started);
    let pool = [&a, &b, &c, &d];
    let deadline = Instant::now() + PATIENCE;
    let mut handled = BTreeMap::new();
    loop {
        let mut all_took_part = true;
        for w in pool {
            let h = w.handled(&sys.http).await;
            all_took_part &= Worker::took_part(&h);
            handled.insert(w.name, h);
        }
        if all_took_part && phase_started[2].elapsed() >= PHASE_MIN {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every worker took part: {handled:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Phase 3: D is killed while it holds entries, B and C leave with SIGTERM.
    next_phase(&load, &mut phase_started);
    handled.insert("D", d.handled(&sys.http).await);
    let (killed_pid, held_by_killed) = d.kill_while_holding(&sys).await;
    let killed_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    handled.insert("B", b.handled(&sys.http).await);
    b.terminate().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    handled.insert("C", c.handled(&sys.http).await);
    c.terminate().await;

    // Phase 4: A alone again, then the load stops. By now the entries the killed worker held
    // have been claimed by the others.
    next_phase(&load, &mut phase_started);
    let deadline = killed_at + PATIENCE;
    while updates_held_by(&sys, &killed_pid).await > 0 {
        assert!(
            Instant::now() < deadline,
            "the updates the killed worker held were never claimed: lost"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let claimed_after = killed_at.elapsed();
    tokio::time::sleep(PHASE_MIN.saturating_sub(phase_started[4].elapsed())).await;
    load.stop.cancel();
    let load_ended = Instant::now();
    let posted = messages.await.unwrap();
    let mut paid = Vec::new();
    for task in top_ups.await.unwrap() {
        paid.push(task.await.expect("top-up and payment"));
    }
    let updates = posted.len();
    let invoices = paid.len();

    // Wait for the answers (a shortfall is reported precisely below), then until no work is
    // left anywhere.
    let expected_calls = updates + 2 * invoices;
    let _ = sys
        .sim
        .wait_until(PATIENCE, |calls| calls.len() >= expected_calls)
        .await;
    wait_until_quiet(&sys).await;
    handled.insert("A", a.handled(&sys.http).await);

    let calls = sys.sim.calls();
    audit_replies(&calls, updates, &paid);
    let credited_total = audit_money(&sys, &paid).await;
    let mut conn = sys.redis().await;
    for stream in [
        sys.keys.updates_stream(SINGLE_PARTITION),
        sys.keys.payments_stream(SINGLE_PARTITION),
        sys.keys.outbound_stream(SINGLE_PARTITION),
    ] {
        let dead = sys.keys.dead_letter_stream(&stream);
        assert_eq!(stream_len(&mut conn, &dead).await, 0, "{dead}");
    }

    a.terminate().await;
    let runtime = started.elapsed();

    println!(
        "scaling proof: {updates} message updates, {invoices} invoices paid (each webhook twice)"
    );
    println!("  phase            workers  seconds  updates  top-ups");
    for (n, (name, workers)) in PHASES.iter().enumerate() {
        let end = phase_started.get(n + 1).copied().unwrap_or(load_ended);
        println!(
            "  {name:<16} {workers:>7}  {:>7.1}  {:>7}  {:>7}",
            (end - phase_started[n]).as_secs_f64(),
            posted.iter().filter(|p| **p == n).count(),
            paid.iter().filter(|p| p.phase == n).count(),
        );
    }
    let show = |n: Option<u64>| n.map_or("-".to_owned(), |n| n.to_string());
    for (name, h) in &handled {
        println!(
            "  worker {name}: entries handled: updates {}, payment events {}, sends {}",
            show(h.updates),
            show(h.payments),
            show(h.sender)
        );
    }
    println!(
        "  D was SIGKILLed holding {held_by_killed} unacknowledged update(s), claimed by the \
         others within {:.1} s; B and C left with SIGTERM (exit 0)",
        claimed_after.as_secs_f64()
    );
    println!(
        "  Telegram: {} calls = {updates} replies + {invoices} invoice links + {invoices} \
         notifications; ledger {invoices} lines, credited {credited_total} over {PAYER_COUNT} \
         payers; pending 0, dead letters 0; test ran {:.1} s",
        calls.len(),
        runtime.as_secs_f64()
    );
    sys.finish().await;
}
