//! `loadtest payments`: how many paid Heleket webhooks the system credits per second, end to
//! end. Inserts N users and N pending invoices straight into PostgreSQL (not timed), then a
//! fixed pool of C HTTP/1.1 keep-alive connections POSTs one correctly signed `paid` webhook
//! per invoice (plus D duplicate deliveries each, sent right after the original) to the
//! ingress, and polls PostgreSQL until every invoice is credited. Reports webhooks accepted per
//! second at the ingress, credits per second from the first POST to the last credit, the
//! ingress latency percentiles, and an audit of the money: every balance exactly 10.00, one
//! ledger line per invoice, nothing duplicated, nothing parked, one notification each.
//! Exit code 0 only when every POST got `200`, everything was credited in time and the audit
//! holds; 1 otherwise; 2 for bad flags.

use anyhow::{bail, Context};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use shared::heleket::sign::signed_webhook_body;
use shared::secret::SecretString;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::cpu::{cores, machine_busy_ticks, tree_ticks, CLOCK_TICKS};
use tokio::net::TcpStream;
use tokio_postgres::{Client, NoTls};
use uuid::Uuid;

const USAGE: &str = "usage: loadtest payments --ingress URL [--invoices N=20000] \
[--concurrency C=64] [--duplicates D=0] [--database-url URL (or DATABASE_URL)] \
[--heleket-key KEY (or HELEKET_API_KEY)] [--json FILE] [--timeout SECS=300] [--reset] \
[--cpu NAME=PID ...]";

/// Load-test users are `USER_BASE + i` for invoice `lt_<i>`: far above real Telegram ids of
/// today, so the audit can select exactly the rows this tool made.
const USER_BASE: i64 = 7_000_000_000_000;
const USER_SPAN: i64 = 1_000_000_000;
const AMOUNT: &str = "10.00";
const SETUP_BATCH: usize = 10_000;
const POLL: Duration = Duration::from_millis(100);
/// A connection that fails is reopened and the webhook sent again, as Heleket would.
const ATTEMPTS: u32 = 3;

#[derive(Debug)]
struct Args {
    invoices: usize,
    concurrency: usize,
    duplicates: usize,
    ingress: String,
    database_url: String,
    heleket_key: String,
    json: Option<String>,
    timeout: Duration,
    reset: bool,
    /// Processes whose CPU time (with their children's) is reported over the timed phase.
    cpu: Vec<(String, u32)>,
}

fn parse_args(argv: &[String], env: impl Fn(&str) -> Option<String>) -> Result<Args, String> {
    let mut argv = argv.iter();
    match argv.next().map(String::as_str) {
        Some("payments") => {}
        Some(other) => return Err(format!("unknown subcommand {other:?}")),
        None => return Err("missing subcommand".into()),
    }
    let mut args = Args {
        invoices: 20_000,
        concurrency: 64,
        duplicates: 0,
        ingress: String::new(),
        database_url: env("DATABASE_URL").unwrap_or_default(),
        heleket_key: env("HELEKET_API_KEY").unwrap_or_default(),
        json: None,
        timeout: Duration::from_secs(300),
        reset: false,
        cpu: Vec::new(),
    };
    while let Some(arg) = argv.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f, Some(v.to_owned())),
            None => (arg.as_str(), None),
        };
        if flag == "--reset" {
            args.reset = true;
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => argv
                .next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))?,
        };
        let number = |v: &str| {
            v.parse::<usize>()
                .map_err(|_| format!("{flag} expects a whole number, got {v:?}"))
        };
        match flag {
            "--invoices" => args.invoices = number(&value)?,
            "--concurrency" => args.concurrency = number(&value)?,
            "--duplicates" => args.duplicates = number(&value)?,
            "--ingress" => args.ingress = value,
            "--database-url" => args.database_url = value,
            "--heleket-key" => args.heleket_key = value,
            "--json" => args.json = Some(value),
            "--timeout" => args.timeout = Duration::from_secs(number(&value)? as u64),
            "--cpu" => {
                let parsed = value
                    .split_once('=')
                    .and_then(|(name, pid)| Some((name.to_owned(), pid.parse().ok()?)));
                args.cpu
                    .push(parsed.ok_or_else(|| format!("--cpu expects NAME=PID, got {value:?}"))?);
            }
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if args.invoices == 0 || args.invoices as i64 >= USER_SPAN {
        return Err(format!("--invoices must be 1..{USER_SPAN}"));
    }
    if args.concurrency == 0 {
        return Err("--concurrency must be at least 1".into());
    }
    for (name, value) in [
        ("--ingress", &args.ingress),
        ("--database-url (or DATABASE_URL)", &args.database_url),
        ("--heleket-key (or HELEKET_API_KEY)", &args.heleket_key),
    ] {
        if value.is_empty() {
            return Err(format!("missing {name}"));
        }
    }
    Ok(args)
}

/// `loadtest payments …`: exit code 0 only when everything was credited and audited.
pub async fn run(argv: &[String]) -> ExitCode {
    let args = match parse_args(argv, |k| std::env::var(k).ok()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("loadtest: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match payments(&args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("loadtest: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Where the webhooks go: `http://host:port[/prefix]`.
#[derive(Debug, Clone)]
struct Target {
    authority: String,
    path: String,
}

impl Target {
    fn parse(url: &str) -> anyhow::Result<Target> {
        let uri: Uri = url
            .parse()
            .with_context(|| format!("bad --ingress {url:?}"))?;
        if uri.scheme_str() != Some("http") {
            bail!("--ingress must be an http:// URL");
        }
        let authority = uri.authority().context("--ingress has no host")?;
        let port = authority.port_u16().unwrap_or(80);
        Ok(Target {
            authority: format!("{}:{port}", authority.host()),
            path: format!("{}/heleket/webhook", uri.path().trim_end_matches('/')),
        })
    }
}

async fn connect_db(url: &str) -> anyhow::Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .context("Failed to connect to PostgreSQL")?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("loadtest: PostgreSQL connection: {e}");
        }
    });
    Ok(client)
}

fn user_range() -> (i64, i64) {
    (USER_BASE, USER_BASE + USER_SPAN - 1)
}

async fn payments(args: &Args) -> anyhow::Result<bool> {
    let target = Target::parse(&args.ingress)?;
    let key = SecretString::new(args.heleket_key.clone());
    let n = args.invoices;
    let mut db = connect_db(&args.database_url).await?;

    let setup_started = Instant::now();
    let invoices = setup(&mut db, n, args.reset).await?;
    let jobs: Vec<Bytes> = invoices
        .iter()
        .enumerate()
        .flat_map(|(i, uuid)| {
            let body = webhook_body(uuid, &format!("lt_{i}"), &key);
            std::iter::repeat_n(body, args.duplicates + 1)
        })
        .collect();
    println!(
        "setup: {n} users and pending invoices inserted, {} signed webhooks built in {:.1} s",
        jobs.len(),
        setup_started.elapsed().as_secs_f64()
    );

    let watcher_db = connect_db(&args.database_url).await?;
    let mut watched: Vec<(String, u32)> = args.cpu.clone();
    watched.push(("loadtest".to_owned(), std::process::id()));
    let cpu_before: Vec<u64> = watched.iter().map(|(_, pid)| tree_ticks(*pid)).collect();
    let machine_before = machine_busy_ticks();
    let started_wall = SystemTime::now();
    let started = Instant::now();
    let watcher = tokio::spawn(watch_credits(
        watcher_db,
        n as i64,
        started,
        started + args.timeout,
    ));
    let load = drive(&target, jobs, args.concurrency).await;
    let load_secs = load.finished.duration_since(started).as_secs_f64();
    let watch = watcher.await.context("credit watcher panicked")??;
    let window = started.elapsed().as_secs_f64();
    let machine_busy = machine_busy_ticks().saturating_sub(machine_before) as f64 / CLOCK_TICKS;
    let cpu: Vec<(String, f64)> = watched
        .iter()
        .zip(cpu_before)
        .map(|((name, pid), before)| {
            let ticks = tree_ticks(*pid).saturating_sub(before);
            (name.clone(), ticks as f64 / CLOCK_TICKS)
        })
        .collect();

    let span = credit_span(&db).await?;
    let credit_secs_db = span.map(|(_, last)| {
        last.duration_since(started_wall)
            .unwrap_or_default()
            .as_secs_f64()
    });
    let audit = audit(&db, n as i64).await?;

    let posts: u64 = load.statuses.values().sum();
    let ok_posts = load.statuses.get(&200).copied().unwrap_or(0);
    let all_200 = ok_posts == (n * (args.duplicates + 1)) as u64 && posts == ok_posts;
    let accepted_per_sec = ok_posts as f64 / load_secs;
    let credited_secs = watch.done_at.map(|d| d.as_secs_f64());
    let credits_per_sec = credited_secs.map(|s| n as f64 / s);
    let credits_per_sec_db = credit_secs_db.map(|s| n as f64 / s);
    let h = &load.histogram;
    let ms = |us: u64| us as f64 / 1000.0;
    let last_sample = watch.samples.last().map_or(0, |s| s.0.as_secs());
    let by_second: Vec<(u64, i64)> = (1..=last_sample + 1)
        .map(|s| (s, watch.credited_at(Duration::from_secs(s))))
        .collect();

    println!(
        "load: {posts} POSTs ({} invoices x {} deliveries) over {} connections in {load_secs:.2} s",
        n,
        args.duplicates + 1,
        args.concurrency
    );
    println!(
        "  statuses: {:?}; transport errors (retried): {}{}",
        load.statuses,
        load.transport_errors,
        load.first_error
            .as_deref()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default()
    );
    println!("  webhooks accepted at the ingress: {accepted_per_sec:.0}/s");
    println!(
        "  ingress POST latency: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.9)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max())
    );
    println!(
        "  credited when the last POST was answered: {} of {n}",
        watch.credited_at(load.finished.duration_since(started))
    );
    match (credited_secs, credits_per_sec) {
        (Some(s), Some(r)) => println!(
            "credits: all {n} credited {s:.2} s after the first POST (seen by polling every {} ms): {r:.0}/s end to end",
            POLL.as_millis()
        ),
        _ => println!(
            "credits: only {} of {n} credited within {} s",
            watch.last(),
            args.timeout.as_secs()
        ),
    }
    if let (Some(s), Some(r)) = (credit_secs_db, credits_per_sec_db) {
        println!("  last ledger line's transaction began {s:.2} s after the first POST: {r:.0}/s");
    }
    println!(
        "  credited by second: {}",
        by_second
            .iter()
            .map(|(s, c)| format!("{s}s:{c}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "CPU over the timed phase ({window:.2} s wall, {:.2} CPU-s on {} cores): {}",
        window * cores() as f64,
        cores(),
        cpu.iter()
            .map(|(name, s)| format!("{name} {s:.2} s ({:.0} % of a core)", 100.0 * s / window))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let ours: f64 = cpu.iter().map(|c| c.1).sum();
    println!(
        "  whole machine busy {machine_busy:.2} CPU-s ({:.0} %), of which outside the processes above {:.2} s",
        100.0 * machine_busy / (window * cores() as f64),
        (machine_busy - ours).max(0.0)
    );
    audit.print(n as i64);

    let ok = all_200 && watch.done_at.is_some() && audit.ok(n as i64);
    println!("result: {}", if ok { "PASS" } else { "FAIL" });
    if let Some(path) = &args.json {
        let summary = json!({
            "invoices": n,
            "duplicates": args.duplicates,
            "concurrency": args.concurrency,
            "posts": posts,
            "statuses": load.statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "transport_errors": load.transport_errors,
            "load_secs": load_secs,
            "accepted_per_sec": accepted_per_sec,
            "latency_ms": {
                "p50": ms(h.value_at_quantile(0.5)),
                "p90": ms(h.value_at_quantile(0.9)),
                "p99": ms(h.value_at_quantile(0.99)),
                "max": ms(h.max()),
                "mean": h.mean() / 1000.0,
            },
            "credited_when_load_ended": watch.credited_at(load.finished.duration_since(started)),
            "credited_secs": credited_secs,
            "credits_per_sec": credits_per_sec,
            "credited_secs_db": credit_secs_db,
            "credits_per_sec_db": credits_per_sec_db,
            "credited_by_second": by_second,
            "cpu_window_secs": window,
            "machine_busy_cpu_secs": machine_busy,
            "cpu_secs": cpu.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "audit": audit.to_json(),
            "pass": ok,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&summary)?)
            .with_context(|| format!("Failed to write {path}"))?;
    }
    Ok(ok)
}

/// Inserts the users and their pending invoices; returns the invoice uuids, `lt_<i>` at `i`.
async fn setup(db: &mut Client, n: usize, reset: bool) -> anyhow::Result<Vec<Uuid>> {
    let (lo, hi) = user_range();
    let existing: i64 = db
        .query_one(
            "SELECT count(*) FROM users WHERE id BETWEEN $1 AND $2",
            &[&lo, &hi],
        )
        .await?
        .get(0);
    if existing > 0 && !reset {
        bail!("the database holds {existing} load-test users from an earlier run; pass --reset to delete them");
    }
    let tx = db.transaction().await?;
    if existing > 0 {
        for sql in [
            "DELETE FROM outbox WHERE chat_id BETWEEN $1 AND $2",
            "DELETE FROM ledger WHERE user_id BETWEEN $1 AND $2",
            "DELETE FROM balances WHERE user_id BETWEEN $1 AND $2",
            "DELETE FROM payment_events WHERE order_id IN
                 (SELECT order_id FROM payments WHERE user_id BETWEEN $1 AND $2)",
            "DELETE FROM payments WHERE user_id BETWEEN $1 AND $2",
            "DELETE FROM users WHERE id BETWEEN $1 AND $2",
        ] {
            tx.execute(sql, &[&lo, &hi]).await?;
        }
    }
    let invoices: Vec<Uuid> = (0..n).map(|_| Uuid::new_v4()).collect();
    for start in (0..n).step_by(SETUP_BATCH) {
        let end = (start + SETUP_BATCH).min(n);
        let users: Vec<i64> = (start..end).map(|i| USER_BASE + i as i64).collect();
        let orders: Vec<String> = (start..end).map(|i| format!("lt_{i}")).collect();
        let uuids = &invoices[start..end];
        tx.execute(
            "INSERT INTO users (id, first_name, language_code)
             SELECT id, 'Load', 'en' FROM unnest($1::bigint[]) AS t(id)",
            &[&users],
        )
        .await?;
        tx.execute(
            "INSERT INTO payments (order_id, user_id, invoice_uuid, amount, currency, status)
             SELECT o, u, i, 10.00, 'USD', 'pending'
             FROM unnest($1::text[], $2::bigint[], $3::uuid[]) AS t(o, u, i)",
            &[&orders, &users, &uuids],
        )
        .await?;
    }
    tx.commit().await?;
    db.batch_execute("ANALYZE users, payments, payment_events, balances, ledger, outbox")
        .await?;
    Ok(invoices)
}

/// A `paid` webhook for invoice `uuid` as Heleket sends it (field order and PHP encoding),
/// signed with the merchant's payment key.
fn webhook_body(uuid: &Uuid, order_id: &str, key: &SecretString) -> Bytes {
    let fields = json!({
        "type": "payment", "uuid": uuid.to_string(), "order_id": order_id, "amount": AMOUNT,
        "payment_amount": AMOUNT, "payment_amount_usd": AMOUNT, "merchant_amount": AMOUNT,
        "commission": "0.00", "is_final": true, "status": "paid", "from": null,
        "wallet_address_uuid": null, "network": "tron", "currency": "USD",
        "payer_currency": "USDT", "additional_data": null,
        "txid": format!("{:064x}", uuid.as_u128())
    });
    let Value::Object(map) = fields else {
        unreachable!("json! of an object")
    };
    Bytes::from(signed_webhook_body(&map, key, false))
}

struct LoadResult {
    histogram: Histogram<u64>,
    statuses: BTreeMap<u16, u64>,
    transport_errors: u64,
    first_error: Option<String>,
    finished: Instant,
}

/// Sends every job once over `concurrency` keep-alive connections, each taking the next job
/// as soon as its previous answer arrived (closed loop).
async fn drive(target: &Target, jobs: Vec<Bytes>, concurrency: usize) -> LoadResult {
    let jobs = Arc::new(jobs);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        tasks.spawn(client_loop(
            target.clone(),
            Arc::clone(&jobs),
            Arc::clone(&next),
        ));
    }
    let mut total = LoadResult {
        histogram: new_histogram(),
        statuses: BTreeMap::new(),
        transport_errors: 0,
        first_error: None,
        finished: Instant::now(),
    };
    while let Some(joined) = tasks.join_next().await {
        let part = match joined {
            Ok(part) => part,
            Err(e) => {
                total.transport_errors += 1;
                total.first_error.get_or_insert(format!("task: {e}"));
                continue;
            }
        };
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = total.histogram.add(&part.histogram);
        for (status, count) in part.statuses {
            *total.statuses.entry(status).or_default() += count;
        }
        total.transport_errors += part.transport_errors;
        if total.first_error.is_none() {
            total.first_error = part.first_error;
        }
    }
    total.finished = Instant::now();
    total
}

/// Microseconds, 1 µs to 60 s, three significant digits.
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

async fn client_loop(target: Target, jobs: Arc<Vec<Bytes>>, next: Arc<AtomicUsize>) -> LoadResult {
    let mut result = LoadResult {
        histogram: new_histogram(),
        statuses: BTreeMap::new(),
        transport_errors: 0,
        first_error: None,
        finished: Instant::now(),
    };
    let mut conn: Option<SendRequest<Full<Bytes>>> = None;
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(body) = jobs.get(i) else { break };
        for attempt in 1..=ATTEMPTS {
            let sent = Instant::now();
            match post(&mut conn, &target, body.clone()).await {
                Ok(status) => {
                    let us = sent.elapsed().as_micros().max(1) as u64;
                    result.histogram.saturating_record(us);
                    *result.statuses.entry(status).or_default() += 1;
                    break;
                }
                Err(e) => {
                    conn = None;
                    result.transport_errors += 1;
                    result.first_error.get_or_insert(format!("{e:#}"));
                    if attempt == ATTEMPTS {
                        // Counted as status 0: never answered.
                        *result.statuses.entry(0).or_default() += 1;
                    }
                }
            }
        }
    }
    result.finished = Instant::now();
    result
}

async fn post(
    conn: &mut Option<SendRequest<Full<Bytes>>>,
    target: &Target,
    body: Bytes,
) -> anyhow::Result<u16> {
    if conn.is_none() {
        let stream = TcpStream::connect(&target.authority)
            .await
            .with_context(|| format!("connect {}", target.authority))?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        *conn = Some(sender);
    }
    let Some(sender) = conn.as_mut() else {
        unreachable!("connected above")
    };
    sender.ready().await?;
    let request = Request::post(target.path.as_str())
        .header(HOST, target.authority.as_str())
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(body))?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    response.into_body().collect().await?;
    Ok(status)
}

struct Watch {
    /// (time since the first POST, topup ledger lines of load-test users).
    samples: Vec<(Duration, i64)>,
    done_at: Option<Duration>,
}

impl Watch {
    fn last(&self) -> i64 {
        self.samples.last().map_or(0, |s| s.1)
    }

    fn credited_at(&self, t: Duration) -> i64 {
        self.samples
            .iter()
            .take_while(|(at, _)| *at <= t)
            .last()
            .map_or(0, |s| s.1)
    }
}

/// Polls the ledger until `n` top-ups of load-test users are there or `deadline` passes.
async fn watch_credits(
    db: Client,
    n: i64,
    started: Instant,
    deadline: Instant,
) -> anyhow::Result<Watch> {
    let (lo, hi) = user_range();
    let count = db
        .prepare("SELECT count(*) FROM ledger WHERE kind = 'topup' AND user_id BETWEEN $1 AND $2")
        .await?;
    let mut watch = Watch {
        samples: Vec::new(),
        done_at: None,
    };
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let credited: i64 = db.query_one(&count, &[&lo, &hi]).await?.get(0);
        let at = started.elapsed();
        watch.samples.push((at, credited));
        if credited >= n {
            watch.done_at = Some(at);
            return Ok(watch);
        }
        if Instant::now() >= deadline {
            return Ok(watch);
        }
    }
}

/// When the first and the last credit's transactions began (`ledger.created_at`).
async fn credit_span(db: &Client) -> anyhow::Result<Option<(SystemTime, SystemTime)>> {
    let (lo, hi) = user_range();
    let row = db
        .query_one(
            "SELECT min(created_at), max(created_at) FROM ledger
             WHERE kind = 'topup' AND user_id BETWEEN $1 AND $2",
            &[&lo, &hi],
        )
        .await?;
    let first: Option<SystemTime> = row.get(0);
    let last: Option<SystemTime> = row.get(1);
    Ok(first.zip(last))
}

#[derive(Debug, Default)]
struct Audit {
    balances: i64,
    balances_exactly_10: i64,
    ledger_topups: i64,
    ledger_distinct_references: i64,
    ledger_distinct_users: i64,
    ledger_matching_invoice: i64,
    payments_paid_and_credited: i64,
    events: i64,
    events_credited: i64,
    events_parked: i64,
    outbox: i64,
    outbox_published: i64,
}

async fn audit(db: &Client, n: i64) -> anyhow::Result<Audit> {
    let (lo, hi) = user_range();
    let range: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&lo, &hi];
    let mut a = Audit::default();
    let row = db
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE balance = 10.00)
             FROM balances WHERE user_id BETWEEN $1 AND $2",
            &range,
        )
        .await?;
    (a.balances, a.balances_exactly_10) = (row.get(0), row.get(1));
    let row = db
        .query_one(
            "SELECT count(*), count(DISTINCT l.reference), count(DISTINCT l.user_id),
                    count(p.order_id)
             FROM ledger l
             LEFT JOIN payments p ON p.invoice_uuid::text = l.reference
                 AND p.user_id = l.user_id AND l.amount = p.amount
             WHERE l.kind = 'topup' AND l.user_id BETWEEN $1 AND $2",
            &range,
        )
        .await?;
    (
        a.ledger_topups,
        a.ledger_distinct_references,
        a.ledger_distinct_users,
        a.ledger_matching_invoice,
    ) = (row.get(0), row.get(1), row.get(2), row.get(3));
    a.payments_paid_and_credited = db
        .query_one(
            "SELECT count(*) FROM payments
             WHERE user_id BETWEEN $1 AND $2 AND status = 'paid' AND credited = 10.00",
            &range,
        )
        .await?
        .get(0);
    let row = db
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE e.outcome = 'credited'),
                    count(*) FILTER (WHERE e.outcome IN ('unknown_invoice', 'mismatch'))
             FROM payment_events e JOIN payments p ON p.order_id = e.order_id
             WHERE p.user_id BETWEEN $1 AND $2",
            &range,
        )
        .await?;
    (a.events, a.events_credited, a.events_parked) = (row.get(0), row.get(1), row.get(2));
    // The outbox is published right after each commit; give the last few a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let row = db
            .query_one(
                "SELECT count(*), count(published_at) FROM outbox WHERE chat_id BETWEEN $1 AND $2",
                &range,
            )
            .await?;
        (a.outbox, a.outbox_published) = (row.get(0), row.get(1));
        if a.outbox_published >= n || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(a)
}

impl Audit {
    fn checks(&self, n: i64) -> Vec<(&'static str, i64, bool)> {
        vec![
            ("balances", self.balances, self.balances == n),
            (
                "balances exactly 10.00",
                self.balances_exactly_10,
                self.balances_exactly_10 == n,
            ),
            (
                "ledger topup lines",
                self.ledger_topups,
                self.ledger_topups == n,
            ),
            (
                "distinct ledger references",
                self.ledger_distinct_references,
                self.ledger_distinct_references == n,
            ),
            (
                "distinct ledger users",
                self.ledger_distinct_users,
                self.ledger_distinct_users == n,
            ),
            (
                "ledger lines matching their invoice",
                self.ledger_matching_invoice,
                self.ledger_matching_invoice == n,
            ),
            (
                "invoices paid and credited 10.00",
                self.payments_paid_and_credited,
                self.payments_paid_and_credited == n,
            ),
            ("payment events", self.events, self.events == n),
            (
                "payment events credited",
                self.events_credited,
                self.events_credited == n,
            ),
            (
                "payment events parked",
                self.events_parked,
                self.events_parked == 0,
            ),
            ("outbox notifications", self.outbox, self.outbox == n),
            (
                "outbox notifications published",
                self.outbox_published,
                self.outbox_published == n,
            ),
        ]
    }

    fn ok(&self, n: i64) -> bool {
        self.checks(n).iter().all(|c| c.2)
    }

    fn print(&self, n: i64) {
        println!("audit (expected {n} each, parked 0):");
        for (name, value, ok) in self.checks(n) {
            println!(
                "  {:<38} {value:>8}  {}",
                name,
                if ok { "ok" } else { "WRONG" }
            );
        }
    }

    fn to_json(&self) -> Value {
        let mut map = serde_json::Map::new();
        // n only decides ok-ness; the values are what they are.
        for (name, value, _) in self.checks(0) {
            map.insert(name.replace(' ', "_"), json!(value));
        }
        Value::Object(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn flags_and_environment_are_read() {
        let env = |k: &str| (k == "HELEKET_API_KEY").then(|| "k".to_owned());
        let a = parse_args(
            &argv("payments --ingress http://127.0.0.1:1 --invoices=5 --duplicates 2 --database-url postgres://x --reset"),
            env,
        )
        .unwrap();
        assert_eq!((a.invoices, a.duplicates, a.concurrency), (5, 2, 64));
        assert_eq!((a.heleket_key.as_str(), a.reset), ("k", true));
        assert!(parse_args(&argv("payments --ingress http://x"), env)
            .unwrap_err()
            .contains("DATABASE_URL"));
        assert!(parse_args(&argv("other"), env).is_err());
    }

    #[test]
    fn the_webhook_verifies_with_the_key_it_was_signed_with() {
        let key = SecretString::new("payment-key");
        let uuid = Uuid::new_v4();
        let body = webhook_body(&uuid, "lt_7", &key);
        let event = shared::heleket::webhook::verify(&body, &key).unwrap();
        assert_eq!(
            (event.uuid, event.order_id.as_str(), event.status.as_str()),
            (uuid.to_string(), "lt_7", "paid")
        );
        assert!(shared::heleket::webhook::verify(&body, &SecretString::new("other")).is_err());
    }

    #[test]
    fn the_target_is_the_webhook_path_under_the_ingress_url() {
        let t = Target::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.path.as_str()),
            ("127.0.0.1:8080", "/heleket/webhook")
        );
        assert!(Target::parse("https://x").is_err());
    }
}
