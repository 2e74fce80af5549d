//! `loadtest payments`: watching the credits arrive, and the audit of the money afterwards.

use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};
use tokio_postgres::Client;

use super::{user_range, POLL};

pub(super) struct Watch {
    /// (time since the first POST, topup ledger lines of load-test users).
    pub(super) samples: Vec<(Duration, i64)>,
    pub(super) done_at: Option<Duration>,
}

impl Watch {
    pub(super) fn last(&self) -> i64 {
        self.samples.last().map_or(0, |s| s.1)
    }

    pub(super) fn credited_at(&self, t: Duration) -> i64 {
        self.samples
            .iter()
            .take_while(|(at, _)| *at <= t)
            .last()
            .map_or(0, |s| s.1)
    }
}

/// Polls the ledger until `n` top-ups of load-test users are there or `deadline` passes.
pub(super) async fn watch_credits(
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
pub(super) async fn credit_span(db: &Client) -> anyhow::Result<Option<(SystemTime, SystemTime)>> {
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
pub(super) struct Audit {
    pub(super) balances: i64,
    pub(super) balances_exactly_10: i64,
    pub(super) ledger_topups: i64,
    pub(super) ledger_distinct_references: i64,
    pub(super) ledger_distinct_users: i64,
    pub(super) ledger_matching_invoice: i64,
    pub(super) payments_paid_and_credited: i64,
    pub(super) events: i64,
    pub(super) events_credited: i64,
    pub(super) events_parked: i64,
    pub(super) outbox: i64,
    pub(super) outbox_published: i64,
}

pub(super) async fn audit(db: &Client, n: i64) -> anyhow::Result<Audit> {
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
    pub(super) fn checks(&self, n: i64) -> Vec<(&'static str, i64, bool)> {
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

    pub(super) fn ok(&self, n: i64) -> bool {
        self.checks(n).iter().all(|c| c.2)
    }

    pub(super) fn print(&self, n: i64) {
        println!("audit (expected {n} each, parked 0):");
        for (name, value, ok) in self.checks(n) {
            println!(
                "  {:<38} {value:>8}  {}",
                name,
                if ok { "ok" } else { "WRONG" }
            );
        }
    }

    pub(super) fn to_json(&self) -> Value {
        let mut map = serde_json::Map::new();
        // n only decides ok-ness; the values are what they are.
        for (name, value, _) in self.checks(0) {
            map.insert(name.replace(' ', "_"), json!(value));
        }
        Value::Object(map)
    }
}
