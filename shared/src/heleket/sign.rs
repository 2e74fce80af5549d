//! Heleket's signature, `md5(base64(body) . api_key)` in lowercase hex (reference §1.3), and
//! the PHP `json_encode` its webhook signature is computed over (reference §5.3).

use crate::secret::SecretString;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use md5::{Digest, Md5};
use serde_json::{Map, Value};
use std::fmt::Write as _;

/// md5 hex lowercase of `base64_std(body) ++ api_key`. For requests the signed bytes must be the
/// bytes sent: serialise once, sign that buffer, send that buffer. The empty body (calls without
/// parameters) signs as `md5(api_key)`.
pub fn request_sign(body: &[u8], api_key: &SecretString) -> String {
    let hex = sign_hex(body, api_key);
    std::str::from_utf8(&hex).expect("hex is ASCII").to_owned()
}

/// [`request_sign`] without allocating: the webhook verifier signs three candidates per body.
/// The base64 text goes to MD5 in pieces through a stack buffer; each piece but the last encodes
/// a multiple of 3 bytes, so no padding falls inside and the pieces are the whole text.
pub(crate) fn sign_hex(body: &[u8], api_key: &SecretString) -> [u8; 32] {
    const PIECE: usize = 768;
    let mut md5 = Md5::new();
    let mut text = [0u8; PIECE / 3 * 4];
    for piece in body.chunks(PIECE) {
        let len = STANDARD
            .encode_slice(piece, &mut text)
            .expect("768 bytes encode to 1024 characters");
        md5.update(&text[..len]);
    }
    md5.update(api_key.expose_secret());
    let mut hex = [0u8; 32];
    hex::encode_to_slice(md5.finalize(), &mut hex).expect("16 bytes are 32 hex digits");
    hex
}

/// PHP `json_encode` of a value decoded with `json_decode($body, true)`: compact, keys in the
/// given order, `/` written as `\/`, `"` `\` and the short control escapes (`\b \f \n \r \t`),
/// other control characters as `\u00xx`, DEL raw. Non-ASCII is raw UTF-8 when `escape_unicode`
/// is false (`JSON_UNESCAPED_UNICODE`) and lowercase `\uXXXX` (astral characters as a surrogate
/// pair) when true; U+2028 and U+2029 are escaped either way. An object that PHP decodes to a
/// list (no members, or keys exactly `"0"`, `"1"`, … in order) is written as an array, so `{}`
/// becomes `[]`. Numbers keep their wire text (serde_json's `arbitrary_precision`, which only
/// normalises an exponent to `e+N`/`e-N`, PHP's own spelling).
pub fn php_json_encode(value: &Value, escape_unicode: bool) -> String {
    let mut out = String::with_capacity(512);
    encode_value(value, escape_unicode, &mut out);
    out
}

/// A webhook body as Heleket builds it: `fields` (without `sign`, keys in order) PHP-encoded,
/// signed over that encoding, and `"sign"` appended as the last member. Returns the bytes to
/// POST. As in PHP, adding `sign` turns even an empty or list-like `fields` into an object.
pub fn signed_webhook_body(
    fields: &Map<String, Value>,
    api_key: &SecretString,
    escape_unicode: bool,
) -> Vec<u8> {
    debug_assert!(!fields.contains_key("sign"), "fields must not hold `sign`");
    let signed = php_json_encode(&Value::Object(fields.clone()), escape_unicode);
    let sign = request_sign(signed.as_bytes(), api_key);
    let mut body = String::with_capacity(signed.len() + 48);
    body.push('{');
    encode_members(fields, escape_unicode, &mut body);
    if !fields.is_empty() {
        body.push(',');
    }
    body.push_str("\"sign\":\"");
    body.push_str(&sign);
    body.push_str("\"}");
    body.into_bytes()
}

fn encode_value(value: &Value, escape_unicode: bool, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        // With `arbitrary_precision` this is the text that arrived, e.g. `10.50` stays `10.50`.
        Value::Number(n) => out.push_str(n.as_str()),
        Value::String(s) => encode_str(s, escape_unicode, out),
        Value::Array(items) => encode_list(items.iter(), escape_unicode, out),
        Value::Object(members) if is_php_list(members) => {
            encode_list(members.values(), escape_unicode, out);
        }
        Value::Object(members) => {
            out.push('{');
            encode_members(members, escape_unicode, out);
            out.push('}');
        }
    }
}

fn encode_list<'a>(items: impl Iterator<Item = &'a Value>, escape_unicode: bool, out: &mut String) {
    out.push('[');
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        encode_value(item, escape_unicode, out);
    }
    out.push(']');
}

fn encode_members(members: &Map<String, Value>, escape_unicode: bool, out: &mut String) {
    for (i, (key, value)) in members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        encode_str(key, escape_unicode, out);
        out.push(':');
        encode_value(value, escape_unicode, out);
    }
}

/// `json_decode(.., true)` turns an object into a PHP array, and numeric-string keys into
/// integer keys; `json_encode` writes an array whose keys are exactly 0..n in order as a list.
fn is_php_list(members: &Map<String, Value>) -> bool {
    members
        .keys()
        .enumerate()
        .all(|(i, key)| is_decimal_index(key, i))
}

/// `key` is the canonical decimal text of `i` (PHP keeps `"01"`, `"+1"` or `" 1"` as strings).
fn is_decimal_index(key: &str, i: usize) -> bool {
    !key.is_empty()
        && key.bytes().all(|b| b.is_ascii_digit())
        && (key == "0" || !key.starts_with('0'))
        && key.parse() == Ok(i)
}

/// Copies each run of bytes written as they are in one piece and escapes the rest: most webhook
/// strings need no escape at all, and pushing them a `char` at a time was most of the cost of
/// the verifier's PHP encodings.
fn encode_str(s: &str, escape_unicode: bool, out: &mut String) {
    out.reserve(s.len() + 2);
    out.push('"');
    let bytes = s.as_bytes();
    let mut verbatim_from = 0;
    let mut scan_from = 0;
    while let Some(offset) = bytes[scan_from..]
        .iter()
        .position(|&b| may_need_escape(b, escape_unicode))
    {
        // A byte `may_need_escape` picks is ASCII or a lead byte, so this is a char boundary.
        let at = scan_from + offset;
        let c = s[at..].chars().next().expect("a char starts here");
        scan_from = at + c.len_utf8();
        if is_verbatim(c, escape_unicode) {
            continue;
        }
        out.push_str(&s[verbatim_from..at]);
        verbatim_from = scan_from;
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Other control characters, the line terminators, escaped non-ASCII.
            c => push_utf16_escapes(c, out),
        }
    }
    out.push_str(&s[verbatim_from..]);
    out.push('"');
}

/// Whether the char that starts (or is) byte `b` may need escaping: ASCII punctuation and
/// controls; with `escape_unicode` every non-ASCII char; without, only those led by 0xE2, where
/// U+2028 and U+2029 live. Never a UTF-8 continuation byte (0x80..=0xBF).
fn may_need_escape(b: u8, escape_unicode: bool) -> bool {
    match b {
        b'"' | b'\\' | b'/' => true,
        0..=0x1f => true,
        0x20..=0x7f => false,
        0xe2 => true,
        _ => escape_unicode && b >= 0xc0,
    }
}

/// Whether PHP writes `c` as it is.
fn is_verbatim(c: char, escape_unicode: bool) -> bool {
    match c {
        '"' | '\\' | '/' => false,
        // ASCII, DEL included, is written raw; control characters are escaped.
        c if c.is_ascii() => c == '\u{7f}' || !c.is_ascii_control(),
        // PHP escapes the JavaScript line terminators unless JSON_UNESCAPED_LINE_TERMINATORS.
        '\u{2028}' | '\u{2029}' => false,
        _ => !escape_unicode,
    }
}

fn push_utf16_escapes(c: char, out: &mut String) {
    let mut units = [0u16; 2];
    for unit in c.encode_utf16(&mut units) {
        let _ = write!(out, "\\u{unit:04x}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::heleket as v;

    fn key() -> SecretString {
        SecretString::new(v::API_KEY)
    }

    /// Parsed the way the verifier parses: order kept, numbers as their text.
    fn parse(json: &str) -> Value {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn request_signs_match_the_reference() {
        assert_eq!(request_sign(b"", &key()), v::SIGN_EMPTY);
        assert_eq!(request_sign(b"{}", &key()), v::SIGN_EMPTY_OBJECT);
        assert_eq!(request_sign(b"[]", &key()), v::SIGN_EMPTY_ARRAY);
        assert_eq!(
            request_sign(v::REQUEST_SERDE.as_bytes(), &key()),
            v::REQUEST_SERDE_SIGN
        );
        assert_eq!(
            request_sign(v::REQUEST_PHP.as_bytes(), &key()),
            v::REQUEST_PHP_SIGN
        );
    }

    #[test]
    fn signing_in_pieces_is_signing_the_whole_text() {
        let key = key();
        let body: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
        for len in (0..40).chain([767, 768, 769, 1535, 1536, 1537, 2303, 2304, 2305, 3000]) {
            let body = &body[..len];
            let mut md5 = Md5::new();
            md5.update(STANDARD.encode(body));
            md5.update(key.expose_secret());
            assert_eq!(
                request_sign(body, &key),
                hex::encode(md5.finalize()),
                "{len}"
            );
        }
    }

    #[test]
    fn webhook_vector_signs_match_the_reference() {
        for (body, base64, sign) in [
            (v::A, v::A_BASE64, v::A_SIGN),
            (v::B1, v::B1_BASE64, v::B1_SIGN),
            (v::B2, v::B2_BASE64, v::B2_SIGN),
            (v::C, v::C_BASE64, v::C_SIGN),
        ] {
            assert_eq!(STANDARD.encode(body), base64);
            assert_eq!(request_sign(body.as_bytes(), &key()), sign);
        }
    }

    #[test]
    fn the_key_matters() {
        let other = SecretString::new("TEST-payment-key-not-real-0123456789abcdeF");
        assert_ne!(request_sign(v::A.as_bytes(), &other), v::A_SIGN);
    }

    #[test]
    fn php_encoding_reproduces_every_vector_byte_for_byte() {
        // A and C are ASCII only: both PHP modes give the same bytes.
        for body in [v::A, v::C] {
            assert_eq!(php_json_encode(&parse(body), false), body);
            assert_eq!(php_json_encode(&parse(body), true), body);
        }
        // B1 and B2 hold the same data; each mode yields its own vector from either wire form.
        for wire in [v::B1, v::B2] {
            assert_eq!(php_json_encode(&parse(wire), false), v::B1);
            assert_eq!(php_json_encode(&parse(wire), true), v::B2);
        }
    }

    #[test]
    fn php_encoding_from_a_differently_written_body() {
        // Spaces, raw slashes, escaped ASCII: the re-encoding is the vector all the same.
        let loose = r#" { "type" : "payment", "uuid":"5f1c7a52-0d3e-4c55-9d0e-6b2f8a1e9c01",
            "order_id":"tg_100500_1","amount":"10.00","payment_amount":"10.00",
            "payment_amount_usd":"10.00","merchant_amount":"9.80000000","commission":"0.20000000",
            "is_final":true,"status":"pai\u0064","from":null,"wallet_address_uuid":null,
            "network":"tron","currency":"USD","payer_currency":"USDT",
            "additional_data":"https://t.me/example_bot?start=pay","txid":"a1b2c3d4e5f6" } "#;
        let encoded = php_json_encode(&parse(loose), false);
        assert_eq!(encoded, v::A);
        assert_eq!(request_sign(encoded.as_bytes(), &key()), v::A_SIGN);
    }

    #[test]
    fn wrong_encodings_give_the_documented_wrong_signs() {
        // The reference's signs for A under the usual mistakes; ours must be none of them.
        let ours = request_sign(php_json_encode(&parse(v::A), false).as_bytes(), &key());
        for wrong in [
            v::A_SIGN_PYTHON_DEFAULT,
            v::A_SIGN_SLASH_RAW,
            v::A_SIGN_KEYS_SORTED,
            v::A_SIGN_NULLS_DROPPED,
        ] {
            assert_ne!(ours, wrong);
        }
        // And the mistakes, made on purpose, do give them: the vectors test what they claim.
        let slash_raw = v::A.replace("\\/", "/");
        assert_eq!(
            request_sign(slash_raw.as_bytes(), &key()),
            v::A_SIGN_SLASH_RAW
        );
        let nulls_dropped = v::A.replace(r#""from":null,"wallet_address_uuid":null,"#, "");
        assert_eq!(
            request_sign(nulls_dropped.as_bytes(), &key()),
            v::A_SIGN_NULLS_DROPPED
        );
    }

    #[test]
    fn strings_follow_php_escaping() {
        // (input, JSON_UNESCAPED_UNICODE, plain json_encode)
        let cases = [
            ("a/b", r#""a\/b""#, r#""a\/b""#),
            // Data holding `\/` is a backslash and a slash: `\\\/`, never `\/` alone.
            ("a\\/b", r#""a\\\/b""#, r#""a\\\/b""#),
            ("q\"\\", r#""q\"\\""#, r#""q\"\\""#),
            ("\u{8}\u{c}\n\r\t", r#""\b\f\n\r\t""#, r#""\b\f\n\r\t""#),
            // Other control characters as \u00xx; DEL raw.
            (
                "\u{0}\u{1}\u{1f}\u{7f}",
                "\"\\u0000\\u0001\\u001f\u{7f}\"",
                "\"\\u0000\\u0001\\u001f\u{7f}\"",
            ),
            ("<&>'", "\"<&>'\"", "\"<&>'\""),
            ("é₽", "\"é₽\"", r#""\u00e9\u20bd""#),
            ("😀", "\"😀\"", r#""\ud83d\ude00""#),
            // The line terminators are escaped in both modes.
            (
                "a\u{2028}b\u{2029}",
                r#""a\u2028b\u2029""#,
                r#""a\u2028b\u2029""#,
            ),
        ];
        for (input, raw_unicode, escaped_unicode) in cases {
            let value = Value::String(input.to_owned());
            assert_eq!(php_json_encode(&value, false), raw_unicode, "{input:?}");
            assert_eq!(php_json_encode(&value, true), escaped_unicode, "{input:?}");
        }
    }

    #[test]
    fn run_copying_matches_escaping_char_by_char() {
        // The encoder as first written, one char at a time: the reference for the fast one.
        fn reference(s: &str, escape_unicode: bool) -> String {
            let mut out = String::from('"');
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '/' => out.push_str("\\/"),
                    '\u{8}' => out.push_str("\\b"),
                    '\u{c}' => out.push_str("\\f"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if u32::from(c) < 0x20 => push_utf16_escapes(c, &mut out),
                    c if c.is_ascii() => out.push(c),
                    '\u{2028}' | '\u{2029}' => push_utf16_escapes(c, &mut out),
                    c if escape_unicode => push_utf16_escapes(c, &mut out),
                    c => out.push(c),
                }
            }
            out.push('"');
            out
        }
        // Escapes, runs, every UTF-8 length, and neighbours of U+2028 that share its lead byte.
        let alphabet = [
            "a",
            "Z",
            "0",
            " ",
            "/",
            "\\",
            "\"",
            "\u{0}",
            "\u{1f}",
            "\n",
            "\t",
            "\u{7f}",
            "é",
            "ß",
            "₽",
            "—",
            "\u{2027}",
            "\u{2028}",
            "\u{2029}",
            "\u{202a}",
            "€",
            "😀",
            "\u{10ffff}",
        ];
        let mut state = 0x2545_f491_u32;
        for len in 0..40 {
            for _ in 0..50 {
                let s: String = (0..len)
                    .map(|_| {
                        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                        alphabet[(state >> 16) as usize % alphabet.len()]
                    })
                    .collect();
                for escape_unicode in [false, true] {
                    let mut fast = String::new();
                    encode_str(&s, escape_unicode, &mut fast);
                    assert_eq!(fast, reference(&s, escape_unicode), "{s:?}");
                }
            }
        }
    }

    #[test]
    fn keys_are_escaped_like_values() {
        let value = parse(r#"{"a/b":1,"ключ":2}"#);
        assert_eq!(php_json_encode(&value, false), r#"{"a\/b":1,"ключ":2}"#);
        assert_eq!(
            php_json_encode(&value, true),
            r#"{"a\/b":1,"\u043a\u043b\u044e\u0447":2}"#
        );
    }

    #[test]
    fn structure_follows_php_arrays() {
        for (input, expected) in [
            // Order kept, never sorted; nulls kept.
            (r#"{"z":1,"a":null,"m":[]}"#, r#"{"z":1,"a":null,"m":[]}"#),
            // Empty objects decode to an empty PHP array, which encodes as a list.
            ("{}", "[]"),
            (
                r#"{"convert":{},"x":{"y":{}}}"#,
                r#"{"convert":[],"x":{"y":[]}}"#,
            ),
            // Keys 0..n in order make a list; anything else stays an object.
            (r#"{"0":"a","1":"b"}"#, r#"["a","b"]"#),
            (r#"{"1":"a","0":"b"}"#, r#"{"1":"a","0":"b"}"#),
            (r#"{"0":"a","01":"b"}"#, r#"{"0":"a","01":"b"}"#),
            (r#"{"0":"a","2":"b"}"#, r#"{"0":"a","2":"b"}"#),
            (
                r#"[1,[true,false],{"k":"v"}]"#,
                r#"[1,[true,false],{"k":"v"}]"#,
            ),
            // Numbers keep their wire text; serde_json only spells an exponent `e+`/`e-`,
            // which is how PHP prints one anyway.
            (
                r#"{"a":10.50,"b":1.0e+25,"c":-0,"d":123456789012345678901234567890}"#,
                r#"{"a":10.50,"b":1.0e+25,"c":-0,"d":123456789012345678901234567890}"#,
            ),
            (r#"[1E5,2e-7]"#, r#"[1e+5,2e-7]"#),
        ] {
            assert_eq!(php_json_encode(&parse(input), false), expected, "{input}");
        }
    }

    #[test]
    fn signed_webhook_body_appends_sign_last() {
        let Value::Object(fields) = parse(v::A) else {
            unreachable!()
        };
        let body = signed_webhook_body(&fields, &key(), false);
        assert_eq!(
            String::from_utf8(body).unwrap(),
            v::with_sign(v::A, v::A_SIGN)
        );

        let Value::Object(fields) = parse(v::B1) else {
            unreachable!()
        };
        for (escape_unicode, signed, sign) in
            [(false, v::B1, v::B1_SIGN), (true, v::B2, v::B2_SIGN)]
        {
            let body = signed_webhook_body(&fields, &key(), escape_unicode);
            assert_eq!(String::from_utf8(body).unwrap(), v::with_sign(signed, sign));
        }
    }

    #[test]
    fn signed_webhook_body_of_no_fields_is_an_object() {
        let body = signed_webhook_body(&Map::new(), &key(), false);
        assert_eq!(
            String::from_utf8(body).unwrap(),
            format!(r#"{{"sign":"{}"}}"#, v::SIGN_EMPTY_ARRAY)
        );
    }
}
