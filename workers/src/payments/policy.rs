//! The invoice state machine and what a final status credits. Pure functions, so every rule
//! is tested without a database.

use rust_decimal::{Decimal, RoundingStrategy};
use std::str::FromStr;

/// What `paid_over` and `wrong_amount` credit (`PAYMENT_CREDIT_POLICY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreditPolicy {
    /// `paid` and `paid_over` credit the invoice amount (an overpayment stays with the
    /// merchant); `wrong_amount` credits nothing and is parked for support. The default:
    /// the user gets exactly what they asked for, never a rate-dependent figure.
    Invoice,
    /// `paid_over` and `wrong_amount` credit what the merchant actually received, in USD:
    /// `payment_amount_usd × merchant_amount / payment_amount` (after Heleket's commission),
    /// rounded down to the cent. `paid` still credits the invoice amount.
    Received,
}

impl FromStr for CreditPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "invoice" => Ok(CreditPolicy::Invoice),
            "received" => Ok(CreditPolicy::Received),
            other => Err(format!("expected invoice or received, got {other:?}")),
        }
    }
}

/// Where a status stands; a status may only move to a higher rank, and finals never move.
fn rank(status: &str) -> Option<u8> {
    Some(match status {
        "pending" => 0,
        "check" => 1,
        "process" => 2,
        "confirm_check" => 3,
        "wrong_amount_waiting" | "locked" | "refund_process" => 4,
        "paid" | "paid_over" | "wrong_amount" | "cancel" | "fail" | "system_fail"
        | "refund_paid" | "refund_fail" | "create_failed" => 10,
        _ => return None,
    })
}

pub fn is_known(status: &str) -> bool {
    rank(status).is_some()
}

pub fn is_final(status: &str) -> bool {
    rank(status) == Some(10)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Record the new status; credit this much if `Some`.
    Move { credit: Option<Decimal> },
    /// The invoice is already final, or the event is older than what we know.
    Ignore { reason: String },
    /// Cannot be applied as it stands (unknown status, underpayment without credit,
    /// figures that do not add up): recorded and parked for a person.
    Park {
        reason: String,
        new_status: Option<String>,
    },
}

/// The amounts an event reports, as Heleket's strings.
#[derive(Debug, Clone, Default)]
pub struct Reported<'a> {
    pub amount: Option<&'a str>,
    pub currency: Option<&'a str>,
    pub payment_amount: Option<&'a str>,
    pub payment_amount_usd: Option<&'a str>,
    pub merchant_amount: Option<&'a str>,
}

pub struct Stored<'a> {
    pub status: &'a str,
    pub amount: Decimal,
    pub currency: &'a str,
}

fn dec(s: Option<&str>) -> Option<Decimal> {
    s.and_then(|s| Decimal::from_str(s.trim()).ok())
}

pub fn decide(
    stored: &Stored<'_>,
    incoming: &str,
    reported: &Reported<'_>,
    policy: CreditPolicy,
) -> Step {
    let Some(to) = rank(incoming) else {
        return Step::Park {
            reason: format!("unknown status {incoming:?}"),
            new_status: None,
        };
    };
    let from = rank(stored.status).unwrap_or(0);
    if from == 10 {
        return Step::Ignore {
            reason: format!("invoice already final ({})", stored.status),
        };
    }
    if to <= from && to != 10 {
        return Step::Ignore {
            reason: format!("stale: {incoming} after {}", stored.status),
        };
    }
    if !matches!(incoming, "paid" | "paid_over" | "wrong_amount") {
        return Step::Move { credit: None };
    }
    if reported.currency != Some(stored.currency) {
        return Step::Park {
            reason: format!(
                "currency {:?} differs from the invoice's {}",
                reported.currency, stored.currency
            ),
            new_status: Some(incoming.to_owned()),
        };
    }
    if dec(reported.amount) != Some(stored.amount) {
        return Step::Park {
            reason: format!(
                "amount {:?} differs from the invoice's {}",
                reported.amount, stored.amount
            ),
            new_status: Some(incoming.to_owned()),
        };
    }
    let received = || {
        let usd = dec(reported.payment_amount_usd)?;
        let merchant = dec(reported.merchant_amount)?;
        let paid = dec(reported.payment_amount)?;
        if paid <= Decimal::ZERO || merchant <= Decimal::ZERO || usd <= Decimal::ZERO {
            return None;
        }
        let credit = (usd * merchant / paid).round_dp_with_strategy(2, RoundingStrategy::ToZero);
        (credit > Decimal::ZERO).then_some(credit)
    };
    let credit = match (incoming, policy) {
        ("paid", _) | ("paid_over", CreditPolicy::Invoice) => Some(stored.amount),
        ("paid_over", CreditPolicy::Received) => received(),
        ("wrong_amount", CreditPolicy::Received) => received().map(|r| r.min(stored.amount)),
        _ => None,
    };
    match credit {
        Some(c) => Step::Move { credit: Some(c) },
        None => Step::Park {
            reason: format!("{incoming}: nothing credited under the {policy:?} policy"),
            new_status: Some(incoming.to_owned()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn stored(status: &str) -> Stored<'_> {
        Stored {
            status,
            amount: d("10.00"),
            currency: "USD",
        }
    }

    fn paid() -> Reported<'static> {
        Reported {
            amount: Some("10.00"),
            currency: Some("USD"),
            payment_amount: Some("10.5"),
            payment_amount_usd: Some("10.50"),
            merchant_amount: Some("10.29"),
        }
    }

    #[test]
    fn paid_credits_the_invoice_amount_once() {
        let step = decide(&stored("check"), "paid", &paid(), CreditPolicy::Invoice);
        assert_eq!(
            step,
            Step::Move {
                credit: Some(d("10.00"))
            }
        );
        for later in ["paid", "process", "cancel", "paid_over", "refund_paid"] {
            assert!(matches!(
                decide(&stored("paid"), later, &paid(), CreditPolicy::Invoice),
                Step::Ignore { .. }
            ));
        }
    }

    #[test]
    fn statuses_only_move_forward() {
        let r = Reported::default();
        assert_eq!(
            decide(&stored("pending"), "check", &r, CreditPolicy::Invoice),
            Step::Move { credit: None }
        );
        assert!(matches!(
            decide(&stored("confirm_check"), "check", &r, CreditPolicy::Invoice),
            Step::Ignore { .. }
        ));
        assert_eq!(
            decide(
                &stored("confirm_check"),
                "cancel",
                &r,
                CreditPolicy::Invoice
            ),
            Step::Move { credit: None }
        );
        assert!(matches!(
            decide(&stored("check"), "bogus", &r, CreditPolicy::Invoice),
            Step::Park { .. }
        ));
    }

    #[test]
    fn mismatching_currency_or_amount_is_parked_without_credit() {
        let mut r = paid();
        r.currency = Some("EUR");
        assert!(matches!(
            decide(&stored("check"), "paid", &r, CreditPolicy::Invoice),
            Step::Park { .. }
        ));
        let mut r = paid();
        r.amount = Some("100.00");
        assert!(matches!(
            decide(&stored("check"), "paid", &r, CreditPolicy::Invoice),
            Step::Park { .. }
        ));
    }

    #[test]
    fn credit_policies() {
        let over = paid();
        assert_eq!(
            decide(&stored("check"), "paid_over", &over, CreditPolicy::Invoice),
            Step::Move {
                credit: Some(d("10.00"))
            }
        );
        // 10.50 USD paid, 98 % reached the merchant: 10.29 USD.
        assert_eq!(
            decide(&stored("check"), "paid_over", &over, CreditPolicy::Received),
            Step::Move {
                credit: Some(d("10.29"))
            }
        );
        let under = Reported {
            payment_amount: Some("6"),
            payment_amount_usd: Some("6.00"),
            merchant_amount: Some("5.88"),
            ..paid()
        };
        assert!(matches!(
            decide(
                &stored("check"),
                "wrong_amount",
                &under,
                CreditPolicy::Invoice
            ),
            Step::Park { .. }
        ));
        assert_eq!(
            decide(
                &stored("check"),
                "wrong_amount",
                &under,
                CreditPolicy::Received
            ),
            Step::Move {
                credit: Some(d("5.88"))
            }
        );
    }
}
