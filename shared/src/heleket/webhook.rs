//! Heleket webhook verification (reference §5.3–§5.5). The signature travels inside the body
//! as its top-level `sign` member and covers every other member, known or not.

use super::sign::{php_json_encode, sign_hex};
use crate::secret::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use subtle::{Choice, ConstantTimeEq};

/// Why a webhook body was refused. Display strings never quote the body.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// serde_json's message gives a line and column only, never the offending text.
    #[error("body is not JSON")]
    NotJson(#[source] serde_json::Error),
    #[error("body has no top-level sign")]
    MissingSign,
    #[error("sign does not match the body")]
    BadSign,
    /// A reason naming the field or the rule, never a value.
    #[error("malformed webhook: {0}")]
    Malformed(String),
}

/// An entry of the payments stream: the verified event, who saw it, and (from the ingress)
/// the body exactly as Heleket sent it, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentStreamEntry {
    #[serde(flatten)]
    pub event: WebhookEvent,
    /// `webhook` when absent; `reconciler` for what `payment/info` reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

/// A verified payment (or static wallet) webhook, as the ingress appends it to the payments
/// stream. Amounts stay the decimal strings Heleket sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEvent {
    /// `payment` (invoice) or `wallet` (static wallet deposit).
    #[serde(rename = "type")]
    pub kind: String,
    pub uuid: String,
    pub order_id: String,
    pub status: String,
    #[serde(default)]
    pub amount: Option<String>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub payment_amount: Option<String>,
    #[serde(default)]
    pub payment_amount_usd: Option<String>,
    #[serde(default)]
    pub merchant_amount: Option<String>,
    #[serde(default)]
    pub payer_currency: Option<String>,
    #[serde(default)]
    pub is_final: Option<bool>,
    #[serde(default)]
    pub txid: Option<String>,
    #[serde(default)]
    pub additional_data: Option<String>,
}

/// The ways of rebuilding the signed bytes (reference §5.4); the body is accepted if any one
/// reproduces `sign`.
const CANDIDATES: [&str; 3] = ["raw_cut", "php_unicode_raw", "php_unicode_escaped"];

/// Verifies per reference §5.4: accept if ANY of candidate A (the raw body with its top-level
/// `sign` member cut out, every other byte kept), B1 (PHP re-encoding, unicode raw, from an
/// order-preserving parse) or B2 (the same, unicode escaped) reproduces `sign`, each compared in
/// constant time. Then reads the typed payload from the verified members.
pub fn verify(raw_body: &[u8], api_key: &SecretString) -> Result<WebhookEvent, WebhookError> {
    let parsed: Value = serde_json::from_slice(raw_body).map_err(WebhookError::NotJson)?;
    let Value::Object(mut fields) = parsed else {
        return Err(malformed("top level is not an object"));
    };
    let sign = match fields.shift_remove("sign") {
        Some(Value::String(sign)) => sign,
        Some(_) => return Err(WebhookError::BadSign),
        None => return Err(WebhookError::MissingSign),
    };
    let unsigned = Value::Object(fields);
    let candidates = [
        cut_sign_member(raw_body)?,
        php_json_encode(&unsigned, false).into_bytes(),
        php_json_encode(&unsigned, true).into_bytes(),
    ];
    // Every candidate is hashed and compared, so the time taken does not depend on which
    // (if any) matched.
    let mut matched = Choice::from(0);
    let mut first_match = None;
    for (name, candidate) in CANDIDATES.iter().zip(&candidates) {
        let this = sign_hex(candidate, api_key).ct_eq(sign.as_bytes());
        if first_match.is_none() && bool::from(this) {
            first_match = Some(*name);
        }
        matched |= this;
    }
    if !bool::from(matched) {
        return Err(WebhookError::BadSign);
    }
    tracing::debug!(candidate = first_match, "Webhook sign verified.");
    let Value::Object(fields) = unsigned else {
        unreachable!("built as an object above")
    };
    event_from(fields)
}

fn malformed(reason: impl Into<String>) -> WebhookError {
    WebhookError::Malformed(reason.into())
}

/// Candidate A: the body with its top-level `sign` member and one separating comma removed,
/// every other byte as received. `raw` must already have parsed as a JSON object.
///
/// After the first member the cut runs from the comma before `sign` to the end of its value;
/// as the first member, from its key to the start of the next member. So Heleket's
/// `{…,"sign":"…"}` yields exactly the `{…}` it signed, whatever the whitespace.
fn cut_sign_member(raw: &[u8]) -> Result<Vec<u8>, WebhookError> {
    let members = top_level_members(raw);
    let mut signs = members
        .iter()
        .enumerate()
        .filter(|(_, m)| key_is_sign(&raw[m.key.0..m.key.1]));
    let Some((index, sign)) = signs.next() else {
        // `verify` found `sign` in the parsed object, so the scan cannot miss it.
        return Err(WebhookError::MissingSign);
    };
    if signs.next().is_some() {
        return Err(malformed("more than one top-level sign"));
    }
    let cut = match (index.checked_sub(1), members.get(index + 1)) {
        (Some(_), _) => sign.comma_before.unwrap_or(sign.key.0)..sign.value_end,
        (None, Some(next)) => sign.key.0..next.key.0,
        (None, None) => sign.key.0..sign.value_end,
    };
    let mut out = Vec::with_capacity(raw.len() - cut.len());
    out.extend_from_slice(&raw[..cut.start]);
    out.extend_from_slice(&raw[cut.end..]);
    Ok(out)
}

/// Byte offsets of one member of the top-level object.
struct Member {
    /// The key string, quotes included.
    key: (usize, usize),
    /// Just past the last byte of the value (trailing whitespace excluded).
    value_end: usize,
    /// The comma that separates this member from the previous one.
    comma_before: Option<usize>,
}

/// Splits a valid JSON object into its top-level members by tracking strings and nesting.
fn top_level_members(raw: &[u8]) -> Vec<Member> {
    let mut members = Vec::new();
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    // The member being read: its key span once known, and the comma before it.
    let mut key_start = None;
    let mut current: Option<(usize, usize)> = None;
    let mut comma_before = None;
    let mut last_value_byte = 0;
    for (i, &b) in raw.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
                if depth == 1 && current.is_none() {
                    if let Some(start) = key_start.take() {
                        current = Some((start, i + 1));
                    }
                }
                last_value_byte = i;
            }
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                if depth == 1 && current.is_none() {
                    key_start = Some(i);
                }
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 1 {
                    last_value_byte = i;
                } else if depth == 0 {
                    if let Some(key) = current.take() {
                        members.push(Member {
                            key,
                            value_end: last_value_byte + 1,
                            comma_before,
                        });
                    }
                }
            }
            b',' if depth == 1 => {
                if let Some(key) = current.take() {
                    members.push(Member {
                        key,
                        value_end: last_value_byte + 1,
                        comma_before,
                    });
                }
                comma_before = Some(i);
            }
            b if b.is_ascii_whitespace() || b == b':' => {}
            // Inside a literal or a number: part of the value.
            _ => last_value_byte = i,
        }
    }
    members
}

/// Whether a raw key string (quotes included) decodes to `sign`; `"\u0073ign"` does too.
fn key_is_sign(key: &[u8]) -> bool {
    if !key.contains(&b'\\') {
        return key == b"\"sign\"";
    }
    serde_json::from_slice::<String>(key).is_ok_and(|k| k == "sign")
}

/// Moves the typed members out of the verified object (nothing is copied).
fn event_from(mut fields: Map<String, Value>) -> Result<WebhookEvent, WebhookError> {
    let fields = &mut fields;
    Ok(WebhookEvent {
        kind: required(fields, "type")?,
        uuid: required(fields, "uuid")?,
        order_id: required(fields, "order_id")?,
        status: required(fields, "status")?,
        amount: text(fields, "amount")?,
        currency: text(fields, "currency")?,
        payment_amount: text(fields, "payment_amount")?,
        payment_amount_usd: text(fields, "payment_amount_usd")?,
        merchant_amount: text(fields, "merchant_amount")?,
        payer_currency: text(fields, "payer_currency")?,
        is_final: match fields.get("is_final") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => return Err(malformed("is_final is not a boolean")),
        },
        txid: text(fields, "txid")?,
        additional_data: text(fields, "additional_data")?,
    })
}

fn required(fields: &mut Map<String, Value>, key: &str) -> Result<String, WebhookError> {
    text(fields, key)?.ok_or_else(|| malformed(format!("{key} is missing")))
}

/// A string member; a number is taken as its wire text (amounts are strings, but a number must
/// not be rounded through a float); absent or `null` is `None`.
fn text(fields: &mut Map<String, Value>, key: &str) -> Result<Option<String>, WebhookError> {
    match fields.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) => Ok(Some(n.as_str().to_owned())),
        Some(_) => Err(malformed(format!("{key} is not a string"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heleket::sign::{request_sign, signed_webhook_body};
    use testkit::heleket as v;

    fn key() -> SecretString {
        SecretString::new(v::API_KEY)
    }

    fn check(body: &str) -> Result<WebhookEvent, WebhookError> {
        verify(body.as_bytes(), &key())
    }

    fn assert_bad_sign(body: &str) {
        assert!(
            matches!(check(body), Err(WebhookError::BadSign)),
            "accepted or misjudged: {body}"
        );
    }

    fn cut(body: &str) -> String {
        String::from_utf8(cut_sign_member(body.as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn every_vector_verifies_as_heleket_sends_it() {
        for (body, sign) in [
            (v::A, v::A_SIGN),
            (v::B1, v::B1_SIGN),
            (v::B2, v::B2_SIGN),
            (v::C, v::C_SIGN),
        ] {
            check(&v::with_sign(body, sign)).unwrap();
        }
    }

    #[test]
    fn vector_a_yields_its_typed_event() {
        let event = check(&v::with_sign(v::A, v::A_SIGN)).unwrap();
        assert_eq!(
            event,
            WebhookEvent {
                kind: "payment".into(),
                uuid: "5f1c7a52-0d3e-4c55-9d0e-6b2f8a1e9c01".into(),
                order_id: "tg_100500_1".into(),
                status: "paid".into(),
                amount: Some("10.00".into()),
                currency: Some("USD".into()),
                payment_amount: Some("10.00".into()),
                payment_amount_usd: Some("10.00".into()),
                merchant_amount: Some("9.80000000".into()),
                payer_currency: Some("USDT".into()),
                is_final: Some(true),
                txid: Some("a1b2c3d4e5f6".into()),
                additional_data: Some("https://t.me/example_bot?start=pay".into()),
            }
        );
        let b = check(&v::with_sign(v::B2, v::B2_SIGN)).unwrap();
        assert_eq!(
            b.additional_data.as_deref(),
            Some("Пополнение баланса — 500 ₽ 😀")
        );
        assert_eq!(b.payment_amount, None);
        let c = check(&v::with_sign(v::C, v::C_SIGN)).unwrap();
        assert_eq!(
            c.additional_data.as_deref(),
            Some(r#"{"user_id":7,"plan":"pro/monthly","note":"say \"hi\""}"#)
        );
    }

    #[test]
    fn wire_form_and_signed_form_may_differ_in_unicode_escaping() {
        // Signed with unicode raw, sent escaped: only B1 reproduces the sign.
        check(&v::with_sign(v::B2, v::B1_SIGN)).unwrap();
        // Signed escaped, sent raw: only B2 does.
        check(&v::with_sign(v::B1, v::B2_SIGN)).unwrap();
    }

    #[test]
    fn sign_anywhere_at_top_level_and_any_whitespace() {
        // Sign first, spaces everywhere, slashes raw: the raw cut cannot match, the PHP
        // re-encoding must (compact, order kept, nulls kept, `/` escaped).
        for (signed, sign) in [(v::A, v::A_SIGN), (v::B1, v::B1_SIGN), (v::C, v::C_SIGN)] {
            let Value::Object(fields) = serde_json::from_str::<Value>(signed).unwrap() else {
                unreachable!()
            };
            let mut loose = format!("{{ \"sign\" : \"{sign}\" ");
            for (k, value) in &fields {
                loose.push_str(&format!(",\n  {} : {}", Value::from(k.as_str()), value));
            }
            loose.push_str("\n}\n");
            check(&loose).unwrap();
            // serde_json writes `/` raw, so the loose body differs from the signed one.
            if signed.contains("\\/") {
                assert!(!loose.contains("\\/"));
            }
        }
    }

    #[test]
    fn raw_cut_keeps_every_other_byte() {
        // Escaped ASCII (`\u0064`) is something no re-encoding reproduces: only the raw cut
        // can verify a body whose signer wrote it so.
        let signed =
            r#"{"type":"payment","uuid":"u-1","order_id":"o-1","status":"pai\u0064","n":1.50}"#;
        let sign = request_sign(signed.as_bytes(), &key());
        let event = check(&v::with_sign(signed, &sign)).unwrap();
        assert_eq!(event.status, "paid");

        assert_eq!(cut(r#"{"a":1,"sign":"x"}"#), r#"{"a":1}"#);
        assert_eq!(cut(r#"{"sign":"x","a":1}"#), r#"{"a":1}"#);
        assert_eq!(
            cut(r#"{"a":1,"sign":"x","b":[1,{"sign":"y"}]}"#),
            r#"{"a":1,"b":[1,{"sign":"y"}]}"#
        );
        assert_eq!(
            cut("{\n  \"a\": 1,\n  \"sign\": \"x\"\n}"),
            "{\n  \"a\": 1\n}"
        );
        assert_eq!(cut(r#"{ "sign" : "x" , "a" : 1 }"#), r#"{ "a" : 1 }"#);
        assert_eq!(cut(r#"{"sign":"x"}"#), "{}");
        assert_eq!(cut(r#"{"s,\"}":"{[","sign":"x"}"#), r#"{"s,\"}":"{["}"#);
        assert_eq!(cut(r#"{"\u0073ign":"x","a":true}"#), r#"{"a":true}"#);
    }

    #[test]
    fn tampered_bodies_fail() {
        let genuine = v::with_sign(v::A, v::A_SIGN);
        // Amount raised, in the signed text and in a duplicate that a parser would keep.
        assert_bad_sign(&genuine.replace(r#""amount":"10.00""#, r#""amount":"99.00""#));
        assert_bad_sign(&genuine.replace(
            r#""amount":"10.00""#,
            r#""amount":"10.00","amount":"99.00""#,
        ));
        assert_bad_sign(&genuine.replace(r#""status":"paid""#, r#""status":"paid_over""#));
        // A member added or removed.
        assert_bad_sign(&genuine.replace(r#""txid""#, r#""extra":1,"txid""#));
        assert_bad_sign(&genuine.replace(r#""from":null,"#, ""));
        // Members reordered.
        assert_bad_sign(&genuine.replace(
            r#""network":"tron","currency":"USD""#,
            r#""currency":"USD","network":"tron""#,
        ));
        let nested = v::with_sign(v::C, v::C_SIGN);
        assert_bad_sign(&nested.replace(r#""rate":"0.07700000""#, r#""rate":"0.08700000""#));
        assert_bad_sign(&nested.replace(r#""commission":null,"rate""#, r#""rate""#));
        // The emoji swapped for another: only the unicode encodings tell them apart.
        assert_bad_sign(&v::with_sign(v::B1, v::B1_SIGN).replace('😀', "😁"));
        assert_bad_sign(&v::with_sign(v::B2, v::B2_SIGN).replace("\\ude00", "\\ude01"));
    }

    #[test]
    fn double_escaped_slash_is_different_data() {
        // `https:\\/\\/` on the wire is a backslash before each slash: not the signed URL.
        let genuine = v::with_sign(v::A, v::A_SIGN);
        assert_bad_sign(&genuine.replace("\\/", "\\\\/"));
        assert_bad_sign(&v::with_sign(v::C, v::C_SIGN).replace("pro\\/monthly", "pro\\\\/monthly"));
    }

    #[test]
    fn signs_from_wrong_encodings_are_refused() {
        // If our encoder made one of these mistakes, the matching sign would be accepted.
        for wrong in [
            v::A_SIGN_PYTHON_DEFAULT,
            v::A_SIGN_SLASH_RAW,
            v::A_SIGN_KEYS_SORTED,
            v::A_SIGN_NULLS_DROPPED,
        ] {
            assert_bad_sign(&v::with_sign(v::A, wrong));
        }
        // Sent with slashes raw and the nulls dropped, but signed over the PHP form by Heleket:
        // neither our cut nor our re-encoding may mistake that for the genuine body.
        assert_bad_sign(&v::with_sign(
            &v::A.replace(r#""from":null,"wallet_address_uuid":null,"#, ""),
            v::A_SIGN,
        ));
    }

    #[test]
    fn raw_slashes_on_the_wire_verify_through_the_php_encoding() {
        // Same data as A, `/` unescaped on the wire: the cut gives A_SIGN_SLASH_RAW's bytes, so
        // only the re-encoding with `\/` reproduces A_SIGN.
        check(&v::with_sign(&v::A.replace("\\/", "/"), v::A_SIGN)).unwrap();
    }

    #[test]
    fn wrong_key_fails() {
        let other = SecretString::new("another-merchant-key");
        for (body, sign) in [(v::A, v::A_SIGN), (v::B1, v::B1_SIGN), (v::C, v::C_SIGN)] {
            let body = v::with_sign(body, sign);
            assert!(matches!(
                verify(body.as_bytes(), &other),
                Err(WebhookError::BadSign)
            ));
        }
        // A body genuinely signed with the other key is refused with ours.
        let Value::Object(fields) = serde_json::from_str::<Value>(v::A).unwrap() else {
            unreachable!()
        };
        let foreign = signed_webhook_body(&fields, &other, false);
        assert!(matches!(
            verify(&foreign, &key()),
            Err(WebhookError::BadSign)
        ));
        verify(&foreign, &other).unwrap();
    }

    #[test]
    fn sign_missing_or_misplaced() {
        assert!(matches!(check(v::A), Err(WebhookError::MissingSign)));
        // Inside a nested object it is just data.
        let nested = v::C.replace(
            r#""amount":"0.22638000"}"#,
            &format!(r#""amount":"0.22638000","sign":"{}"}}"#, v::C_SIGN),
        );
        assert!(matches!(check(&nested), Err(WebhookError::MissingSign)));
        assert!(matches!(
            check(&v::with_sign(v::A, "")),
            Err(WebhookError::BadSign)
        ));
        assert!(matches!(
            check(&v::A.replace(r#""txid""#, r#""sign":null,"txid""#)),
            Err(WebhookError::BadSign)
        ));
        // Uppercase hex is not what Heleket computes.
        assert_bad_sign(&v::with_sign(v::A, &v::A_SIGN.to_uppercase()));
        // Two signs: refused before any hashing.
        let twice = v::with_sign(&v::with_sign(v::A, v::A_SIGN), v::A_SIGN);
        assert!(matches!(check(&twice), Err(WebhookError::Malformed(_))));
    }

    #[test]
    fn line_terminators_are_escaped_in_the_signed_form() {
        // Heleket (PHP) signs `\u2028` escaped even in JSON_UNESCAPED_UNICODE mode; the wire
        // body here carries the raw character, so only a faithful re-encoding verifies it.
        let signed = r#"{"type":"payment","uuid":"u-2","order_id":"o-2","status":"paid","additional_data":"line\u2028break"}"#;
        let sign = request_sign(signed.as_bytes(), &key());
        let wire = v::with_sign(&signed.replace("\\u2028", "\u{2028}"), &sign);
        assert!(wire.contains('\u{2028}'));
        let event = check(&wire).unwrap();
        assert_eq!(event.additional_data.as_deref(), Some("line\u{2028}break"));
    }

    #[test]
    fn simulator_bodies_verify_in_both_unicode_modes() {
        let Value::Object(fields) = serde_json::from_str::<Value>(v::C).unwrap() else {
            unreachable!()
        };
        for escape_unicode in [false, true] {
            verify(
                &signed_webhook_body(&fields, &key(), escape_unicode),
                &key(),
            )
            .unwrap();
        }
    }

    #[test]
    fn not_json_and_malformed() {
        for body in ["", "{", "not json", "{\"a\":1}x"] {
            assert!(
                matches!(check(body), Err(WebhookError::NotJson(_))),
                "{body:?}"
            );
        }
        assert!(matches!(
            verify(b"{\"a\":\"\xff\"}", &key()),
            Err(WebhookError::NotJson(_))
        ));
        for body in ["[]", "\"x\"", "1", "null"] {
            assert!(
                matches!(check(body), Err(WebhookError::Malformed(_))),
                "{body:?}"
            );
        }
    }

    #[test]
    fn verified_but_not_a_payment_event_is_malformed_without_echo() {
        for (fields, reason) in [
            (
                r#"{"type":"payment","uuid":"u","status":"paid"}"#,
                "order_id is missing",
            ),
            (
                r#"{"type":"payment","uuid":"u","order_id":"o","status":"paid","amount":["secret-9"]}"#,
                "amount is not a string",
            ),
            (
                r#"{"type":"payment","uuid":"u","order_id":"o","status":"paid","is_final":"secret-9"}"#,
                "is_final is not a boolean",
            ),
        ] {
            let sign = request_sign(fields.as_bytes(), &key());
            let err = check(&v::with_sign(fields, &sign)).unwrap_err();
            assert_eq!(err.to_string(), format!("malformed webhook: {reason}"));
            assert!(!format!("{err:?}").contains("secret-9"));
        }
        // A number where a string is expected keeps its wire text.
        let fields =
            r#"{"type":"payment","uuid":"u","order_id":"o","status":"paid","amount":10.50}"#;
        let sign = request_sign(fields.as_bytes(), &key());
        let event = check(&v::with_sign(fields, &sign)).unwrap();
        assert_eq!(event.amount.as_deref(), Some("10.50"));
    }

    #[test]
    fn event_round_trips_through_json_with_type_as_the_key() {
        let event = check(&v::with_sign(v::C, v::C_SIGN)).unwrap();
        let json = serde_json::to_string(&event).unwrap();
        assert!(json.starts_with(r#"{"type":"payment","uuid":"#), "{json}");
        assert_eq!(serde_json::from_str::<WebhookEvent>(&json).unwrap(), event);
        let minimal: WebhookEvent =
            serde_json::from_str(r#"{"type":"wallet","uuid":"u","order_id":"o","status":"paid"}"#)
                .unwrap();
        assert_eq!(minimal.amount, None);
    }
}
