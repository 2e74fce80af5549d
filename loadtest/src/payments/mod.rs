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
use hyper::Uri;
use serde_json::{json, Value};
use shared::heleket::sign::signed_webhook_body;
use shared::secret::SecretString;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use crate::cpu::{cores, machine_busy_ticks, tree_ticks, CLOCK_TICKS};
use tokio_postgres::{Client, NoTls};
use uuid::Uuid;

mod credits;
mod load;

use credits::{audit, credit_span, watch_credits};
use load::drive;

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
