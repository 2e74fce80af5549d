//! Request and response bodies of the Heleket payment API (reference §2–§4).
//!
//! Requests are strict: `CreateInvoice::validate` rejects what Heleket would answer with a
//! 422, before anything is signed or sent. Responses are lenient: every field is optional,
//! unknown fields are ignored and a field of an unexpected JSON type reads as `None`, because
//! Heleket adds fields over time and one odd field must not hide the invoice's status.

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::fmt;
use std::str::FromStr;

/// Heleket's documented `lifetime` range, in seconds.
pub const LIFETIME_SECS: std::ops::RangeInclusive<u32> = 300..=43_200;

/// Body of `POST /v1/payment`. Only the fields that are set are sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreateInvoice {
    /// Sent as a string with exactly two decimals (`"10.50"`), never as a JSON number.
    #[serde(serialize_with = "amount_two_decimals")]
    pub amount: Decimal,
    pub currency: String,
    /// 1–128 characters of `A-Za-z0-9_-`, unique per merchant. Re-sending the same id returns
    /// the existing invoice (reference §2.3), which makes retries safe.
    pub order_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url_callback: Option<String>,
    /// Seconds, within `LIFETIME_SECS`; Heleket's default is 3600.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifetime: Option<u32>,
    /// Heleket's default is `true` (an under-paid invoice stays open for the rest).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_payment_multiple: Option<bool>,
    /// Up to 255 characters, echoed in webhooks (and covered by their signature).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub additional_data: Option<String>,
}

impl CreateInvoice {
    pub fn new(amount: Decimal, currency: impl Into<String>, order_id: impl Into<String>) -> Self {
        Self {
            amount,
            currency: currency.into(),
            order_id: order_id.into(),
            url_callback: None,
            lifetime: None,
            is_payment_multiple: None,
            additional_data: None,
        }
    }

    /// The checks Heleket would otherwise answer with a 422. The reason names the field and
    /// the rule, never the value.
    pub fn validate(&self) -> Result<(), String> {
        if self.amount <= Decimal::ZERO {
            return Err("amount must be positive".into());
        }
        if self.amount.normalize().scale() > 2 {
            return Err("amount must have at most two decimals".into());
        }
        if self.currency.is_empty() || !self.currency.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err("currency must be a non-empty alphanumeric code".into());
        }
        if !is_order_id(&self.order_id) {
            return Err("order_id must be 1-128 characters of A-Za-z0-9_-".into());
        }
        if let Some(url) = &self.url_callback {
            let ok = (6..=255).contains(&url.len())
                && (url.starts_with("http://") || url.starts_with("https://"));
            if !ok {
                return Err("url_callback must be an http(s) URL of 6-255 characters".into());
            }
        }
        if let Some(lifetime) = self.lifetime {
            if !LIFETIME_SECS.contains(&lifetime) {
                return Err("lifetime must be between 300 and 43200 seconds".into());
            }
        }
        if let Some(data) = &self.additional_data {
            if data.chars().count() > 255 {
                return Err("additional_data must be at most 255 characters".into());
            }
        }
        Ok(())
    }
}

/// Heleket's `alpha_dash`, restricted to ASCII (reference §2.1).
pub fn is_order_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn amount_two_decimals<S: Serializer>(amount: &Decimal, s: S) -> Result<S::Ok, S::Error> {
    // Refuse rather than round: a silently changed amount is a money bug.
    if amount.normalize().scale() > 2 {
        return Err(serde::ser::Error::custom(
            "amount must have at most two decimals",
        ));
    }
    s.serialize_str(&format!("{amount:.2}"))
}

/// Which invoice `POST /v1/payment/info` should look up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvoiceRef {
    Uuid(uuid::Uuid),
    OrderId(String),
}

impl Serialize for InvoiceRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(1))?;
        match self {
            InvoiceRef::Uuid(uuid) => map.serialize_entry("uuid", &uuid.to_string())?,
            InvoiceRef::OrderId(id) => map.serialize_entry("order_id", id)?,
        }
        map.end()
    }
}

impl fmt::Display for InvoiceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvoiceRef::Uuid(uuid) => write!(f, "uuid {uuid}"),
            InvoiceRef::OrderId(id) => write!(f, "order_id {id}"),
        }
    }
}

/// The invoice object returned by `/v1/payment` and `/v1/payment/info` (reference §2.2).
/// Amounts stay the strings Heleket sent; the `*_decimal()` helpers parse them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Invoice {
    #[serde(
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub uuid: Option<String>,
    #[serde(
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub order_id: Option<String>,
    #[serde(
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub amount: Option<String>,
    #[serde(
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub payment_amount: Option<String>,
    #[serde(
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub payment_amount_usd: Option<String>,
    #[serde(
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub payer_amount: Option<String>,
    #[serde(
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub payer_amount_exchange_rate: Option<String>,
    #[serde(
        deserialize_with = "lenient_i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub discount_percent: Option<i64>,
    #[serde(
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub discount: Option<String>,
    #[serde(
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub payer_currency: Option<String>,
    #[serde(
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub currency: Option<String>,
    #[serde(
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub comments: Option<String>,
    #[serde(
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub merchant_amount: Option<String>,
    #[serde(
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub network: Option<String>,
    #[serde(
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub address: Option<String>,
    #[serde(
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub from: Option<String>,
    #[serde(
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub txid: Option<String>,
    #[serde(
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub payment_status: Option<String>,
    #[serde(
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub status: Option<String>,
    /// The hosted payment page. Its host varies (`pay.` / `new-pay.`); don't pin it.
    #[serde(
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub url: Option<String>,
    /// Unix seconds.
    #[serde(
        deserialize_with = "lenient_i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub expired_at: Option<i64>,
    #[serde(
        deserialize_with = "lenient_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub is_final: Option<bool>,
    #[serde(
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub additional_data: Option<String>,
    #[serde(
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_at: Option<String>,
    #[serde(
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub updated_at: Option<String>,
    #[serde(
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub commission: Option<String>,
    #[serde(
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub address_qr_code: Option<String>,
}

impl Invoice {
    /// The invoice's uuid, if present and well formed.
    pub fn uuid_parsed(&self) -> Option<uuid::Uuid> {
        self.uuid
            .as_deref()
            .and_then(|u| uuid::Uuid::parse_str(u).ok())
    }

    /// Invoice amount in `currency`. `None` when absent or not a decimal.
    pub fn amount_decimal(&self) -> Option<Decimal> {
        decimal(&self.amount)
    }

    /// Amount actually paid, in `payer_currency`.
    pub fn payment_amount_decimal(&self) -> Option<Decimal> {
        decimal(&self.payment_amount)
    }

    /// Amount actually paid, in USD.
    pub fn payment_amount_usd_decimal(&self) -> Option<Decimal> {
        decimal(&self.payment_amount_usd)
    }

    /// Amount the payer has to send, in `payer_currency`.
    pub fn payer_amount_decimal(&self) -> Option<Decimal> {
        decimal(&self.payer_amount)
    }

    /// What the merchant receives after Heleket's commission.
    pub fn merchant_amount_decimal(&self) -> Option<Decimal> {
        decimal(&self.merchant_amount)
    }

    pub fn commission_decimal(&self) -> Option<Decimal> {
        decimal(&self.commission)
    }

    pub fn discount_decimal(&self) -> Option<Decimal> {
        decimal(&self.discount)
    }

    /// `status`, falling back to `payment_status` (both carry the same value in the docs).
    pub fn status(&self) -> Option<PaymentStatus> {
        self.status
            .as_deref()
            .or(self.payment_status.as_deref())
            .map(PaymentStatus::parse)
    }

    /// Heleket's own `is_final` when sent, otherwise derived from the status.
    pub fn is_final(&self) -> bool {
        self.is_final
            .unwrap_or_else(|| self.status().is_some_and(|s| s.is_final()))
    }

    /// Money arrived in full (`paid` or `paid_over`).
    pub fn is_paid(&self) -> bool {
        self.status().is_some_and(|s| s.is_paid())
    }

    /// Whether this invoice is the one `request` asked for. A repeated `order_id` returns
    /// the existing invoice with its original amount and currency (reference §2.3), so a
    /// caller that reuses ids must check this before showing the payment link.
    pub fn matches(&self, request: &CreateInvoice) -> bool {
        self.order_id.as_deref() == Some(request.order_id.as_str())
            && self.amount_decimal() == Some(request.amount)
            && self
                .currency
                .as_deref()
                .is_some_and(|c| c.eq_ignore_ascii_case(&request.currency))
    }
}

fn decimal(field: &Option<String>) -> Option<Decimal> {
    field
        .as_deref()
        .and_then(|s| Decimal::from_str(s.trim()).ok())
}

/// Invoice statuses (reference §4). Anything else is kept verbatim in `Unknown`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PaymentStatus {
    Check,
    Process,
    ConfirmCheck,
    WrongAmountWaiting,
    Paid,
    PaidOver,
    WrongAmount,
    Cancel,
    Fail,
    SystemFail,
    RefundProcess,
    RefundPaid,
    RefundFail,
    Locked,
    Unknown(String),
}

impl PaymentStatus {
    pub const KNOWN: [PaymentStatus; 14] = [
        PaymentStatus::Check,
        PaymentStatus::Process,
        PaymentStatus::ConfirmCheck,
        PaymentStatus::WrongAmountWaiting,
        PaymentStatus::Paid,
        PaymentStatus::PaidOver,
        PaymentStatus::WrongAmount,
        PaymentStatus::Cancel,
        PaymentStatus::Fail,
        PaymentStatus::SystemFail,
        PaymentStatus::RefundProcess,
        PaymentStatus::RefundPaid,
        PaymentStatus::RefundFail,
        PaymentStatus::Locked,
    ];

    pub fn parse(s: &str) -> Self {
        match s {
            "check" => Self::Check,
            "process" => Self::Process,
            "confirm_check" => Self::ConfirmCheck,
            "wrong_amount_waiting" => Self::WrongAmountWaiting,
            "paid" => Self::Paid,
            "paid_over" => Self::PaidOver,
            "wrong_amount" => Self::WrongAmount,
            "cancel" => Self::Cancel,
            "fail" => Self::Fail,
            "system_fail" => Self::SystemFail,
            "refund_process" => Self::RefundProcess,
            "refund_paid" => Self::RefundPaid,
            "refund_fail" => Self::RefundFail,
            "locked" => Self::Locked,
            other => Self::Unknown(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Check => "check",
            Self::Process => "process",
            Self::ConfirmCheck => "confirm_check",
            Self::WrongAmountWaiting => "wrong_amount_waiting",
            Self::Paid => "paid",
            Self::PaidOver => "paid_over",
            Self::WrongAmount => "wrong_amount",
            Self::Cancel => "cancel",
            Self::Fail => "fail",
            Self::SystemFail => "system_fail",
            Self::RefundProcess => "refund_process",
            Self::RefundPaid => "refund_paid",
            Self::RefundFail => "refund_fail",
            Self::Locked => "locked",
            Self::Unknown(s) => s,
        }
    }

    /// The invoice will not change any more. `locked` is deliberately not final: the SDKs
    /// call it final, but an AML hold can be lifted and end in `paid`, so keep watching it.
    /// `Unknown` is not final either: wait for a status we understand.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Self::Paid
                | Self::PaidOver
                | Self::WrongAmount
                | Self::Cancel
                | Self::Fail
                | Self::SystemFail
                | Self::RefundPaid
                | Self::RefundFail
        )
    }

    /// Money arrived in full: `paid` or `paid_over`. (`wrong_amount` is a partial payment
    /// and a business decision, not "paid".)
    pub fn is_paid(&self) -> bool {
        matches!(self, Self::Paid | Self::PaidOver)
    }
}

impl FromStr for PaymentStatus {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::parse(s))
    }
}

impl From<&str> for PaymentStatus {
    fn from(s: &str) -> Self {
        Self::parse(s)
    }
}

impl fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for PaymentStatus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for PaymentStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(Self::parse(&s))
    }
}

fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

fn lenient_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Bool(b) => Some(b),
        Value::Number(n) => n.as_i64().map(|n| n != 0),
        Value::String(s) => match s.as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn create_invoice_sends_only_set_fields_and_a_two_decimal_string_amount() {
        let req = CreateInvoice::new(dec("10.5"), "USD", "tg_7_3");
        assert_eq!(
            serde_json::to_string(&req).unwrap(),
            r#"{"amount":"10.50","currency":"USD","order_id":"tg_7_3"}"#
        );
        let full = CreateInvoice {
            url_callback: Some("https://bot.example/heleket/webhook".into()),
            lifetime: Some(900),
            is_payment_multiple: Some(false),
            additional_data: Some("u7".into()),
            ..CreateInvoice::new(dec("3"), "USD", "tg_7_4")
        };
        let v: Value = serde_json::to_value(&full).unwrap();
        assert_eq!(
            v,
            json!({"amount":"3.00","currency":"USD","order_id":"tg_7_4",
                   "url_callback":"https://bot.example/heleket/webhook","lifetime":900,
                   "is_payment_multiple":false,"additional_data":"u7"})
        );
    }

    #[test]
    fn amounts_are_never_rounded() {
        let req = CreateInvoice::new(dec("10.005"), "USD", "a");
        assert!(req.validate().is_err());
        assert!(serde_json::to_vec(&req).is_err());
        // Trailing zeros beyond two places are not extra precision.
        let ok = CreateInvoice::new(dec("10.5000"), "USD", "a");
        assert!(ok.validate().is_ok());
        assert!(serde_json::to_string(&ok)
            .unwrap()
            .contains(r#""amount":"10.50""#));
    }

    #[test]
    fn validate_rejects_what_heleket_would() {
        let base = CreateInvoice::new(dec("1"), "USD", "tg_1_1");
        assert!(base.validate().is_ok());
        for bad in [
            CreateInvoice::new(dec("0"), "USD", "x"),
            CreateInvoice::new(dec("-1"), "USD", "x"),
            CreateInvoice::new(dec("1"), "", "x"),
            CreateInvoice::new(dec("1"), "USD", ""),
            CreateInvoice::new(dec("1"), "USD", "has space"),
            CreateInvoice::new(dec("1"), "USD", "ünï"),
            CreateInvoice::new(dec("1"), "USD", "a".repeat(129)),
            CreateInvoice {
                lifetime: Some(299),
                ..base.clone()
            },
            CreateInvoice {
                url_callback: Some("ftp://x.example".into()),
                ..base.clone()
            },
            CreateInvoice {
                additional_data: Some("x".repeat(256)),
                ..base.clone()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn invoice_ref_serializes_to_one_selector() {
        let uuid = uuid::Uuid::nil();
        assert_eq!(
            serde_json::to_string(&InvoiceRef::Uuid(uuid)).unwrap(),
            r#"{"uuid":"00000000-0000-0000-0000-000000000000"}"#
        );
        assert_eq!(
            serde_json::to_string(&InvoiceRef::OrderId("tg_1_2".into())).unwrap(),
            r#"{"order_id":"tg_1_2"}"#
        );
    }

    #[test]
    fn invoice_parses_the_documented_example_and_ignores_unknown_fields() {
        let raw = r#"{"uuid":"1ec87133-0000-4000-8000-000000000001","order_id":"tg_100500_1",
 "amount":"20000.00","payment_amount":null,"payment_amount_usd":"0.00","payer_amount":"254.92",
 "payer_amount_exchange_rate":"78.45392451","discount_percent":0,"discount":"0.00","payer_currency":"USDT",
 "currency":"RUB","comments":null,"merchant_amount":"249.82816502","network":"bsc","address":"0x2b",
 "from":null,"txid":null,"payment_status":"check","url":"https://pay.heleket.com/pay/1ec87133",
 "expired_at":1753202502,"status":"check","is_final":false,"additional_data":null,
 "created_at":"2025-07-22T18:41:42+03:00","updated_at":"2025-07-22T18:42:31+03:00",
 "commission":"5.09853397","address_qr_code":"data:image/png;base64,AA",
 "brand_new_field":{"nested":[1,2]}}"#;
        let inv: Invoice = serde_json::from_str(raw).unwrap();
        assert_eq!(inv.amount_decimal(), Some(dec("20000.00")));
        assert_eq!(inv.payment_amount_decimal(), None);
        assert_eq!(inv.merchant_amount_decimal(), Some(dec("249.82816502")));
        assert_eq!(inv.status(), Some(PaymentStatus::Check));
        assert!(!inv.is_final());
        assert!(!inv.is_paid());
        assert_eq!(inv.expired_at, Some(1_753_202_502));
        assert_eq!(inv.discount_percent, Some(0));
        assert_eq!(
            inv.uuid_parsed(),
            Some(uuid::Uuid::parse_str("1ec87133-0000-4000-8000-000000000001").unwrap())
        );
    }

    #[test]
    fn invoice_tolerates_missing_and_oddly_typed_fields() {
        let inv: Invoice = serde_json::from_str("{}").unwrap();
        assert_eq!(inv, Invoice::default());
        assert!(!inv.is_final());
        let odd: Invoice = serde_json::from_value(json!({
            "amount": 12.5, "is_final": "true", "expired_at": "17", "status": ["x"],
            "payment_status": "paid_over", "discount_percent": {"a": 1}
        }))
        .unwrap();
        assert_eq!(odd.amount_decimal(), Some(dec("12.5")));
        assert_eq!(odd.is_final, Some(true));
        assert_eq!(odd.expired_at, Some(17));
        assert_eq!(odd.status(), Some(PaymentStatus::PaidOver));
        assert!(odd.is_paid());
        assert_eq!(odd.discount_percent, None);
    }

    #[test]
    fn matches_detects_a_reused_order_id_with_another_amount() {
        let req = CreateInvoice::new(dec("5"), "USD", "tg_1_1");
        let inv = Invoice {
            order_id: Some("tg_1_1".into()),
            amount: Some("5.00".into()),
            currency: Some("usd".into()),
            ..Invoice::default()
        };
        assert!(inv.matches(&req));
        let other = Invoice {
            amount: Some("7.00".into()),
            ..inv.clone()
        };
        assert!(!other.matches(&req));
    }

    #[test]
    fn statuses_round_trip_and_classify() {
        for status in PaymentStatus::KNOWN {
            assert_eq!(PaymentStatus::parse(status.as_str()), status);
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(
                serde_json::from_str::<PaymentStatus>(&json).unwrap(),
                status
            );
        }
        let paid: Vec<_> = PaymentStatus::KNOWN
            .iter()
            .filter(|s| s.is_paid())
            .map(PaymentStatus::as_str)
            .collect();
        assert_eq!(paid, ["paid", "paid_over"]);
        let not_final: Vec<_> = PaymentStatus::KNOWN
            .iter()
            .filter(|s| !s.is_final())
            .map(PaymentStatus::as_str)
            .collect();
        assert_eq!(
            not_final,
            [
                "check",
                "process",
                "confirm_check",
                "wrong_amount_waiting",
                "refund_process",
                "locked"
            ]
        );
        let unknown = PaymentStatus::parse("teleported");
        assert_eq!(unknown, PaymentStatus::Unknown("teleported".into()));
        assert_eq!(unknown.to_string(), "teleported");
        assert!(!unknown.is_final() && !unknown.is_paid());
    }
}
