//! Request validation the way Heleket's Laravel backend reports it: HTTP 422 with
//! `{"state":1,"errors":{"field":["validation.rule", ...]}}` (reference §2.4). The rules are
//! the documented constraints of §2.1 and §3.1; a field may carry several messages.

use rust_decimal::Decimal;
use serde_json::{json, Map, Value};

use super::invoice::parse_amount;

pub(crate) type Errors = Map<String, Value>;

/// A valid `POST /v1/payment` body.
#[derive(Debug)]
pub(crate) struct CreateRequest {
    pub(crate) amount: String,
    pub(crate) currency: String,
    pub(crate) order_id: String,
    pub(crate) network: Option<String>,
    pub(crate) url_callback: Option<String>,
    pub(crate) url_return: Option<String>,
    pub(crate) url_success: Option<String>,
    pub(crate) is_payment_multiple: bool,
    pub(crate) lifetime: i64,
    pub(crate) additional_data: Option<String>,
}

/// How `/v1/payment/info` (and resend) names the invoice.
#[derive(Debug, PartialEq)]
pub(crate) enum Lookup {
    Uuid(String),
    OrderId(String),
}

const DEFAULT_LIFETIME: i64 = 3600;
const LIFETIME_RANGE: (i64, i64) = (300, 43_200);

pub(crate) fn create(body: &Map<String, Value>) -> Result<CreateRequest, Errors> {
    let mut v = Validator::new(body);
    let amount = v.required_string("amount");
    if let Some(a) = &amount {
        match parse_amount(a) {
            None => v.fail("amount", "validation.numeric"),
            Some(d) if d <= Decimal::ZERO => v.fail("amount", "validation.min.numeric"),
            Some(_) => {}
        }
    }
    let currency = v.required_string("currency");
    let order_id = v.required_string("order_id");
    if let Some(id) = &order_id {
        v.order_id_rules("order_id", id);
    }
    let network = v.optional_string("network");
    let url_callback = v.optional_url("url_callback");
    let url_return = v.optional_url("url_return");
    let url_success = v.optional_url("url_success");
    let is_payment_multiple = v.optional_bool("is_payment_multiple").unwrap_or(true);
    let lifetime = v.optional_integer("lifetime").unwrap_or(DEFAULT_LIFETIME);
    if !(LIFETIME_RANGE.0..=LIFETIME_RANGE.1).contains(&lifetime) {
        let rule = if lifetime < LIFETIME_RANGE.0 {
            "validation.min.numeric"
        } else {
            "validation.max.numeric"
        };
        v.fail("lifetime", rule);
    }
    let additional_data = v.optional_string("additional_data");
    if additional_data
        .as_ref()
        .is_some_and(|d| d.chars().count() > 255)
    {
        v.fail("additional_data", "validation.max.string");
    }
    v.finish()?;
    Ok(CreateRequest {
        amount: amount.unwrap_or_default(),
        currency: currency.unwrap_or_default(),
        order_id: order_id.unwrap_or_default(),
        network,
        url_callback,
        url_return,
        url_success,
        is_payment_multiple,
        lifetime,
        additional_data,
    })
}

/// `uuid` or `order_id`; with both the documented behaviour is to look up by `order_id`.
pub(crate) fn lookup(body: &Map<String, Value>) -> Result<Lookup, Errors> {
    let mut v = Validator::new(body);
    let uuid = v.optional_string("uuid");
    let order_id = v.optional_string("order_id");
    if uuid.is_none() && order_id.is_none() && v.errors.is_empty() {
        v.fail("uuid", "validation.required_without");
        v.fail("order_id", "validation.required_without");
    }
    if let Some(u) = &uuid {
        if uuid::Uuid::try_parse(u).is_err() {
            v.fail("uuid", "validation.uuid");
        }
    }
    if let Some(id) = &order_id {
        v.order_id_rules("order_id", id);
    }
    v.finish()?;
    Ok(match (order_id, uuid) {
        (Some(id), _) => Lookup::OrderId(id),
        (None, Some(u)) => Lookup::Uuid(u),
        (None, None) => unreachable!("checked above"),
    })
}

struct Validator<'a> {
    body: &'a Map<String, Value>,
    errors: Errors,
}

impl<'a> Validator<'a> {
    fn new(body: &'a Map<String, Value>) -> Self {
        Validator {
            body,
            errors: Errors::new(),
        }
    }

    fn fail(&mut self, field: &str, rule: &str) {
        let list = self
            .errors
            .entry(field.to_owned())
            .or_insert_with(|| json!([]));
        if let Value::Array(list) = list {
            list.push(json!(rule));
        }
    }

    fn finish(self) -> Result<(), Errors> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self.errors)
        }
    }

    /// Laravel trims strings and turns `""` into null, so blank counts as absent.
    fn present(&self, field: &str) -> Option<&'a Value> {
        match self.body.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(value) => Some(value),
        }
    }

    fn required_string(&mut self, field: &str) -> Option<String> {
        if self.present(field).is_none() {
            self.fail(field, "validation.required");
            return None;
        }
        self.optional_string(field)
    }

    /// Strictly a JSON string: numbers are refused so a client sending `10.5` instead of
    /// `"10.5"` finds out here, not in production.
    fn optional_string(&mut self, field: &str) -> Option<String> {
        match self.present(field)? {
            Value::String(s) => Some(s.trim().to_owned()),
            _ => {
                self.fail(field, "validation.string");
                None
            }
        }
    }

    fn optional_url(&mut self, field: &str) -> Option<String> {
        let url = self.optional_string(field)?;
        let len = url.chars().count();
        if len < 6 {
            self.fail(field, "validation.min.string");
        }
        if len > 255 {
            self.fail(field, "validation.max.string");
        }
        if !is_url(&url) {
            self.fail(field, "validation.url");
        }
        Some(url)
    }

    fn optional_bool(&mut self, field: &str) -> Option<bool> {
        let value = match self.present(field)? {
            Value::Bool(b) => Some(*b),
            Value::Number(n) => n.as_u64().and_then(bit),
            Value::String(s) => s.parse().ok().and_then(bit),
            _ => None,
        };
        if value.is_none() {
            self.fail(field, "validation.boolean");
        }
        value
    }

    /// A JSON integer or a string of digits, as Laravel's `integer` rule accepts.
    fn optional_integer(&mut self, field: &str) -> Option<i64> {
        let value = match self.present(field)? {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        if value.is_none() {
            self.fail(field, "validation.integer");
        }
        value
    }

    /// 1–128 of `[A-Za-z0-9_-]`; non-ASCII letters are refused although Laravel's
    /// `alpha_dash` admits them, because the reference tells clients not to rely on them.
    fn order_id_rules(&mut self, field: &str, id: &str) {
        if id.chars().count() > 128 {
            self.fail(field, "validation.max.string");
        }
        if !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            self.fail(field, "validation.alpha_dash");
        }
    }
}

fn bit(n: u64) -> Option<bool> {
    match n {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

fn is_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    rest.is_some_and(|r| {
        let host = r.split(['/', '?', '#']).next().unwrap_or_default();
        !host.is_empty() && !r.contains(char::is_whitespace)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("object expected"),
        }
    }

    #[test]
    fn minimal_create_gets_defaults() {
        let req = create(&body(
            json!({"amount": "10.5", "currency": "USD", "order_id": "a_1-B"}),
        ))
        .unwrap();
        assert_eq!(req.lifetime, 3600);
        assert!(req.is_payment_multiple);
        assert_eq!(req.url_callback, None);
    }

    #[test]
    fn empty_create_lists_every_required_field() {
        let errors = create(&Map::new()).unwrap_err();
        assert_eq!(
            Value::Object(errors),
            json!({"amount": ["validation.required"], "currency": ["validation.required"],
                   "order_id": ["validation.required"]})
        );
    }

    #[test]
    fn bad_values_name_their_rule() {
        let errors = create(&body(json!({
            "amount": 10.5, "currency": "USD", "order_id": "has space/".repeat(20),
            "url_callback": "ftp:", "lifetime": 299, "is_payment_multiple": "maybe"
        })))
        .unwrap_err();
        assert_eq!(
            Value::Object(errors),
            json!({
                "amount": ["validation.string"],
                "order_id": ["validation.max.string", "validation.alpha_dash"],
                "url_callback": ["validation.min.string", "validation.url"],
                "is_payment_multiple": ["validation.boolean"],
                "lifetime": ["validation.min.numeric"],
            })
        );
        let errors = create(&body(
            json!({"amount": "0.00", "currency": "USD", "order_id": "x", "lifetime": "43201"}),
        ))
        .unwrap_err();
        assert_eq!(
            Value::Object(errors),
            json!({"amount": ["validation.min.numeric"], "lifetime": ["validation.max.numeric"]})
        );
    }

    #[test]
    fn lookup_prefers_order_id() {
        let uuid = "0b9e2f52-7d0e-4b8b-9c7e-0d8f6f1b2c3d";
        assert_eq!(
            lookup(&body(json!({"uuid": uuid}))),
            Ok(Lookup::Uuid(uuid.into()))
        );
        assert_eq!(
            lookup(&body(json!({"uuid": uuid, "order_id": "o1"}))),
            Ok(Lookup::OrderId("o1".into()))
        );
        assert_eq!(
            Value::Object(lookup(&Map::new()).unwrap_err()),
            json!({"uuid": ["validation.required_without"], "order_id": ["validation.required_without"]})
        );
        assert!(lookup(&body(json!({"uuid": "nope"}))).is_err());
    }
}
