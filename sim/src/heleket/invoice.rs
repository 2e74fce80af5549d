//! Invoices as the simulator stores them, and the two shapes Heleket shows them in: the
//! invoice object of `/v1/payment` and `/v1/payment/info` (reference §2.2) and the webhook
//! body (§5.2).

use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::clock::iso8601;

/// Every payment status Heleket documents (reference §4).
pub const STATUSES: &[&str] = &[
    "check",
    "process",
    "confirm_check",
    "wrong_amount_waiting",
    "paid",
    "paid_over",
    "wrong_amount",
    "cancel",
    "fail",
    "system_fail",
    "refund_process",
    "refund_paid",
    "refund_fail",
    "locked",
];

/// Statuses after which the invoice can no longer be paid (`is_final: true`).
pub fn is_final_status(status: &str) -> bool {
    matches!(
        status,
        "paid"
            | "paid_over"
            | "wrong_amount"
            | "cancel"
            | "fail"
            | "system_fail"
            | "refund_paid"
            | "refund_fail"
            | "locked"
    )
}

/// Statuses that describe a transaction the payer actually sent, so amounts paid, `txid` and
/// `from` are filled in; the others mean no money moved.
fn carries_payment(status: &str) -> bool {
    !matches!(status, "check" | "cancel" | "fail" | "system_fail")
}

/// One invoice, as `GET /_sim/invoices` and [`super::HeleketSim::invoices`] show it: the
/// fields Heleket returns plus what the merchant sent that Heleket never echoes
/// (`url_callback`, `lifetime`, ...). Snapshots have expiry applied to `status`/`is_final`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Invoice {
    pub uuid: String,
    pub order_id: String,
    /// Exactly the text the merchant sent.
    pub amount: String,
    pub currency: String,
    pub network: Option<String>,
    pub url: String,
    pub url_callback: Option<String>,
    pub url_return: Option<String>,
    pub url_success: Option<String>,
    pub additional_data: Option<String>,
    pub is_payment_multiple: bool,
    pub lifetime: i64,
    /// Unix seconds of the simulator's clock.
    pub created_at: i64,
    pub updated_at: i64,
    pub expired_at: i64,
    pub status: String,
    pub is_final: bool,
    /// What the payer sent, in `payer_currency`; `None` until a payment.
    pub payment_amount: Option<String>,
    pub payer_currency: Option<String>,
    pub merchant_amount: String,
    pub commission: String,
    pub txid: Option<String>,
    pub from: Option<String>,
}

/// What a simulated payment adds to an invoice.
#[derive(Clone, Debug)]
pub(crate) struct Payment {
    pub(crate) paid: Decimal,
    /// As given by the caller, else formatted from `paid`.
    pub(crate) paid_text: String,
    pub(crate) payer_currency: String,
    pub(crate) network: String,
    pub(crate) txid: String,
    pub(crate) from: String,
}

impl Invoice {
    /// The status Heleket reports at `now`: an open invoice past `expired_at` is over, as
    /// `cancel`, or `wrong_amount` when part of the money arrived (reference §4).
    pub(crate) fn expiry_status(&self, now: i64) -> Option<&'static str> {
        if is_final_status(&self.status) || now < self.expired_at {
            return None;
        }
        Some(if self.status == "wrong_amount_waiting" {
            "wrong_amount"
        } else {
            "cancel"
        })
    }

    /// A copy with expiry applied, so every reader sees the same truth whether or not the
    /// expiry ticker has visited this invoice yet.
    pub(crate) fn view(&self, now: i64) -> Invoice {
        let mut invoice = self.clone();
        if let Some(status) = self.expiry_status(now) {
            invoice.status = status.to_owned();
            invoice.is_final = true;
        }
        invoice
    }

    /// Moves to `status`; a status that carries money records `payment`, one that does not
    /// keeps whatever was paid before (a refund or a late cancel does not erase it).
    pub(crate) fn set_status(
        &mut self,
        status: &str,
        payment: Option<&Payment>,
        commission_percent: Decimal,
        now: i64,
    ) {
        self.status = status.to_owned();
        self.is_final = is_final_status(status);
        self.updated_at = now;
        if let (true, Some(p)) = (carries_payment(status), payment) {
            let (merchant, commission) = split_commission(p.paid, commission_percent);
            self.payment_amount = Some(p.paid_text.clone());
            self.payer_currency = Some(p.payer_currency.clone());
            self.network = Some(p.network.clone());
            self.txid = Some(p.txid.clone());
            self.from = Some(p.from.clone());
            self.merchant_amount = merchant;
            self.commission = commission;
        }
    }

    /// The §2.2 invoice object, in the documented field order.
    pub fn api_object(&self) -> Value {
        let paid = self.payment_amount.as_deref().and_then(parse_amount);
        json!({
            "uuid": self.uuid,
            "order_id": self.order_id,
            "amount": self.amount,
            "payment_amount": self.payment_amount,
            "payment_amount_usd": usd(paid),
            // The simulator converts at 1:1, so the payer owes the invoice amount.
            "payer_amount": self.payer_currency.as_ref().map(|_| &self.amount),
            "payer_amount_exchange_rate": self.payer_currency.as_ref().map(|_| "1.00000000"),
            "discount_percent": 0,
            "discount": "0.00",
            "payer_currency": self.payer_currency,
            "currency": self.currency,
            "comments": null,
            "merchant_amount": self.merchant_amount,
            "network": self.network,
            "address": null,
            "from": self.from,
            "txid": self.txid,
            "payment_status": self.status,
            "url": self.url,
            "expired_at": self.expired_at,
            "status": self.status,
            "is_final": self.is_final,
            "additional_data": self.additional_data,
            "created_at": iso8601(self.created_at),
            "updated_at": iso8601(self.updated_at),
            "commission": self.commission,
            "address_qr_code": null,
        })
    }

    /// The webhook fields of §5.2 in Heleket's order, without `sign` (the signer appends it).
    /// `convert` is left out (no auto-conversion configured) and `txid` is present only when a
    /// transaction exists, as Heleket does.
    pub(crate) fn webhook_fields(&self) -> Map<String, Value> {
        let paid = self.payment_amount.as_deref().and_then(parse_amount);
        let mut fields = Map::new();
        let mut put = |key: &str, value: Value| {
            fields.insert(key.to_owned(), value);
        };
        put("type", json!("payment"));
        put("uuid", json!(self.uuid));
        put("order_id", json!(self.order_id));
        put("amount", json!(self.amount));
        put("payment_amount", json!(self.payment_amount));
        put("payment_amount_usd", json!(usd(paid)));
        put("merchant_amount", json!(self.merchant_amount));
        put("commission", json!(self.commission));
        put("is_final", json!(self.is_final));
        put("status", json!(self.status));
        put("from", json!(self.from));
        put("wallet_address_uuid", Value::Null);
        put("network", json!(self.network));
        put("currency", json!(self.currency));
        put("payer_currency", json!(self.payer_currency));
        put("additional_data", json!(self.additional_data));
        if let Some(txid) = &self.txid {
            put("txid", json!(txid));
        }
        fields
    }

    /// `(merchant_amount, commission)` before any payment: what the full amount would yield.
    pub(crate) fn expected_split(amount: &str, commission_percent: Decimal) -> (String, String) {
        split_commission(parse_amount(amount).unwrap_or_default(), commission_percent)
    }
}

/// Amounts are `digits[.digits]` only: no sign, exponent or spaces, like the API accepts.
pub(crate) fn parse_amount(text: &str) -> Option<Decimal> {
    let (int, frac) = text.split_once('.').unwrap_or((text, "0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || !digits(frac) {
        return None;
    }
    Decimal::from_str(text).ok()
}

/// Crypto amounts in Heleket's answers carry 8 decimals.
fn crypto(amount: Decimal) -> String {
    format!(
        "{:.8}",
        amount.round_dp_with_strategy(8, RoundingStrategy::MidpointNearestEven)
    )
}

fn split_commission(paid: Decimal, percent: Decimal) -> (String, String) {
    let commission = paid * percent / Decimal::ONE_HUNDRED;
    (crypto(paid - commission), crypto(commission))
}

fn usd(paid: Option<Decimal>) -> String {
    let paid = paid
        .unwrap_or_default()
        .round_dp_with_strategy(2, RoundingStrategy::MidpointNearestEven);
    format!("{paid:.2}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invoice() -> Invoice {
        let (merchant_amount, commission) = Invoice::expected_split("10.00", Decimal::ZERO);
        Invoice {
            uuid: "u".into(),
            order_id: "o".into(),
            amount: "10.00".into(),
            currency: "USD".into(),
            network: None,
            url: "http://x/pay/u".into(),
            url_callback: Some("http://cb/x".into()),
            url_return: None,
            url_success: None,
            additional_data: None,
            is_payment_multiple: true,
            lifetime: 3600,
            created_at: 100,
            updated_at: 100,
            expired_at: 3700,
            status: "check".into(),
            is_final: false,
            payment_amount: None,
            payer_currency: None,
            merchant_amount,
            commission,
            txid: None,
            from: None,
        }
    }

    #[test]
    fn amounts_are_plain_decimals() {
        assert_eq!(parse_amount("10.28"), Some(Decimal::new(1028, 2)));
        assert_eq!(parse_amount("10"), Some(Decimal::TEN));
        for bad in ["", "-1", "1e3", " 1", "1.", ".5", "1,5", "0x1"] {
            assert_eq!(parse_amount(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn expiry_cancels_open_invoices_only() {
        let mut inv = invoice();
        assert_eq!(inv.view(3699).status, "check");
        let expired = inv.view(3700);
        assert_eq!(
            (expired.status.as_str(), expired.is_final),
            ("cancel", true)
        );
        inv.status = "wrong_amount_waiting".into();
        assert_eq!(inv.view(4000).status, "wrong_amount");
        inv.status = "paid".into();
        assert_eq!(inv.view(4000).status, "paid");
    }

    #[test]
    fn commission_splits_the_paid_amount() {
        assert_eq!(
            Invoice::expected_split("10.00", Decimal::TWO),
            ("9.80000000".to_owned(), "0.20000000".to_owned())
        );
    }

    #[test]
    fn webhook_fields_follow_heleket_order() {
        let keys: Vec<String> = invoice().webhook_fields().keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "type",
                "uuid",
                "order_id",
                "amount",
                "payment_amount",
                "payment_amount_usd",
                "merchant_amount",
                "commission",
                "is_final",
                "status",
                "from",
                "wallet_address_uuid",
                "network",
                "currency",
                "payer_currency",
                "additional_data"
            ]
        );
    }
}
