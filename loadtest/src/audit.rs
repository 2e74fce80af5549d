//! The money audit after a run: for every simulated user, the balance the bot keeps equals
//! what was credited minus what was spent, the ledger agrees with it line by line, and both
//! agree with what the generator itself paid and bought.

use anyhow::Context;
use serde_json::{json, Value};
use tokio_postgres::NoTls;

use crate::user::User;

/// Per user, from PostgreSQL, in cents.
#[derive(Debug, Default, Clone, PartialEq)]
struct Db {
    balance: i64,
    ledger_topups: i64,
    ledger_purchases: i64,
    topup_lines: i64,
    last_balance_after: Option<i64>,
    paid_credited: i64,
    paid_invoices: i64,
    orders_total: i64,
}

const QUERY: &str = "
WITH ids AS (SELECT unnest($1::bigint[]) AS id),
l AS (SELECT user_id,
             coalesce(sum(amount) FILTER (WHERE kind = 'topup'), 0) AS topups,
             coalesce(-sum(amount) FILTER (WHERE kind = 'purchase'), 0) AS purchases,
             count(*) FILTER (WHERE kind = 'topup') AS topup_lines
      FROM ledger WHERE user_id = ANY($1) GROUP BY user_id),
last AS (SELECT DISTINCT ON (user_id) user_id, balance_after
         FROM ledger WHERE user_id = ANY($1) ORDER BY user_id, id DESC),
p AS (SELECT user_id, sum(credited) AS credited, count(*) AS n
      FROM payments WHERE user_id = ANY($1) AND credited IS NOT NULL GROUP BY user_id),
o AS (SELECT user_id, sum(price) AS total FROM orders WHERE user_id = ANY($1) GROUP BY user_id)
SELECT ids.id,
       (coalesce(b.balance, 0) * 100)::bigint,
       (coalesce(l.topups, 0) * 100)::bigint,
       (coalesce(l.purchases, 0) * 100)::bigint,
       coalesce(l.topup_lines, 0),
       (last.balance_after * 100)::bigint,
       (coalesce(p.credited, 0) * 100)::bigint,
       coalesce(p.n, 0),
       (coalesce(o.total, 0) * 100)::bigint
FROM ids
LEFT JOIN balances b ON b.user_id = ids.id
LEFT JOIN l ON l.user_id = ids.id
LEFT JOIN last ON last.user_id = ids.id
LEFT JOIN p ON p.user_id = ids.id
LEFT JOIN o ON o.user_id = ids.id";

/// Each check with the number of users failing it.
#[derive(Debug, Clone)]
pub struct Audit {
    pub users: usize,
    pub uncertain: usize,
    pub checks: Vec<(&'static str, usize)>,
    /// Payment events parked (unknown invoice, figures not matching) across the database.
    pub parked_events: i64,
    pub examples: Vec<String>,
}

impl Audit {
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.1 == 0) && self.parked_events == 0
    }

    pub fn print(&self) {
        println!(
            "audit: {} users ({} with an answer about money missing, checked against the database only)",
            self.users, self.uncertain
        );
        for (name, failing) in &self.checks {
            let verdict = if *failing == 0 { "ok" } else { "WRONG" };
            println!("  {name:<58} {failing:>6} users  {verdict}");
        }
        println!(
            "  payment events parked (unknown invoice or mismatch)        {:>6}        {}",
            self.parked_events,
            if self.parked_events == 0 {
                "ok"
            } else {
                "WRONG"
            }
        );
        for e in &self.examples {
            println!("  e.g. {e}");
        }
    }

    pub fn to_json(&self) -> Value {
        let checks: serde_json::Map<String, Value> = self
            .checks
            .iter()
            .map(|(n, f)| ((*n).to_owned(), json!(f)))
            .collect();
        json!({
            "users": self.users,
            "uncertain_users": self.uncertain,
            "failing_users_by_check": checks,
            "parked_payment_events": self.parked_events,
            "pass": self.ok(),
        })
    }
}

pub async fn run(database_url: &str, users: &[User]) -> anyhow::Result<Audit> {
    let (db, connection) = tokio_postgres::connect(database_url, NoTls)
        .await
        .context("Failed to connect to PostgreSQL for the audit")?;
    tokio::spawn(connection);
    let ids: Vec<i64> = users.iter().map(|u| u.id).collect();
    let rows = db
        .query(QUERY, &[&ids])
        .await
        .context("Failed to read the users' money")?;
    let by_id: std::collections::HashMap<i64, Db> = rows
        .iter()
        .map(|r| {
            (
                r.get::<_, i64>(0),
                Db {
                    balance: r.get(1),
                    ledger_topups: r.get(2),
                    ledger_purchases: r.get(3),
                    topup_lines: r.get(4),
                    last_balance_after: r.get(5),
                    paid_credited: r.get(6),
                    paid_invoices: r.get(7),
                    orders_total: r.get(8),
                },
            )
        })
        .collect();
    let parked_events: i64 = db
        .query_one(
            "SELECT count(*) FROM payment_events WHERE outcome IN ('unknown_invoice', 'mismatch')",
            &[],
        )
        .await?
        .get(0);
    Ok(check(users, &by_id, parked_events))
}

fn check(users: &[User], by_id: &std::collections::HashMap<i64, Db>, parked: i64) -> Audit {
    type Check = (&'static str, fn(&Db, &User) -> bool);
    let checks: [Check; 8] = [
        ("balance = credited - spent (ledger)", |d, _| {
            d.balance == d.ledger_topups - d.ledger_purchases
        }),
        ("last ledger line's balance_after = balance", |d, _| {
            d.last_balance_after.unwrap_or(0) == d.balance
        }),
        ("one topup ledger line per credited invoice", |d, _| {
            d.topup_lines == d.paid_invoices && d.ledger_topups == d.paid_credited
        }),
        ("purchases in the ledger = orders", |d, _| {
            d.ledger_purchases == d.orders_total
        }),
        ("credited = what the generator paid", |d, u| {
            u.model.uncertain || d.ledger_topups == u.model.credited
        }),
        ("invoices credited = invoices the generator paid", |d, u| {
            u.model.uncertain || d.paid_invoices == i64::from(u.model.invoices_paid)
        }),
        ("spent = purchases the bot confirmed", |d, u| {
            u.model.uncertain || d.ledger_purchases == u.model.spent
        }),
        ("balance = the generator's model", |d, u| {
            u.model.uncertain || d.balance == u.model.balance()
        }),
    ];
    let empty = Db::default();
    let mut failing = vec![0usize; checks.len()];
    let mut examples = Vec::new();
    for user in users {
        let db = by_id.get(&user.id).unwrap_or(&empty);
        for (i, (name, holds)) in checks.iter().enumerate() {
            if !holds(db, user) {
                failing[i] += 1;
                if examples.len() < 5 {
                    examples.push(format!(
                        "user {}: {name} fails; database {db:?}, model {:?}",
                        user.id, user.model
                    ));
                }
            }
        }
    }
    Audit {
        users: users.len(),
        uncertain: users.iter().filter(|u| u.model.uncertain).count(),
        checks: checks.iter().map(|c| c.0).zip(failing).collect(),
        parked_events: parked,
        examples,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn user(id: i64, credited: i64, spent: i64) -> User {
        let (_tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let mut u = User::new(0, id, 1, rx);
        u.model.credited = credited;
        u.model.spent = spent;
        u.model.invoices_paid = u32::from(credited > 0);
        u
    }

    fn db(balance: i64, topups: i64, purchases: i64) -> Db {
        Db {
            balance,
            ledger_topups: topups,
            ledger_purchases: purchases,
            topup_lines: i64::from(topups > 0),
            last_balance_after: (topups > 0).then_some(balance),
            paid_credited: topups,
            paid_invoices: i64::from(topups > 0),
            orders_total: purchases,
        }
    }

    #[test]
    fn an_exact_run_passes_and_a_double_credit_fails() {
        let users = vec![user(1, 1000, 150), user(2, 0, 0)];
        let good = HashMap::from([(1, db(850, 1000, 150))]);
        assert!(check(&users, &good, 0).ok());
        // One invoice, two ledger lines: a double credit.
        let doubled = HashMap::from([(
            1,
            Db {
                topup_lines: 2,
                paid_credited: 1000,
                ..db(1850, 2000, 150)
            },
        )]);
        let audit = check(&users, &doubled, 0);
        assert!(!audit.ok());
        let failing: Vec<&str> = audit
            .checks
            .iter()
            .filter(|c| c.1 > 0)
            .map(|c| c.0)
            .collect();
        assert_eq!(
            failing,
            [
                "one topup ledger line per credited invoice",
                "credited = what the generator paid",
                "balance = the generator's model"
            ]
        );
        assert!(
            !check(&users, &good, 1).ok(),
            "parked events fail the audit"
        );
    }
}
