//! Heleket signature test vectors, from `shared/reference/heleket.md` §7 (checked there against
//! PHP 8.2 `json_encode`). Bodies are the signed form, without `sign`; [`with_sign`] appends it
//! the way Heleket does.

/// The made-up payment API key every vector is signed with.
pub const API_KEY: &str = "TEST-payment-key-not-real-0123456789abcdef";

/// Request signs: the empty body (parameter-less calls), `{}` and `[]`.
pub const SIGN_EMPTY: &str = "1e9e7110ff4cf0cdf2d55e6bc38996ff";
pub const SIGN_EMPTY_OBJECT: &str = "e6a12a0382662a9ed314ac777d896fda";
pub const SIGN_EMPTY_ARRAY: &str = "e4bfb1d8afb0e227ae9741d0202878c4";

/// `POST /v1/payment` as serde_json writes it (slashes raw), and the same data PHP-style.
pub const REQUEST_SERDE: &str = r#"{"amount":"10.00","currency":"USD","order_id":"tg_100500_1","url_callback":"https://bot.example.com/heleket/webhook","lifetime":3600,"is_payment_multiple":false}"#;
pub const REQUEST_SERDE_SIGN: &str = "9368efe209fbf3f7bf6a6cbaabb2eec5";
pub const REQUEST_PHP: &str = r#"{"amount":"10.00","currency":"USD","order_id":"tg_100500_1","url_callback":"https:\/\/bot.example.com\/heleket\/webhook","lifetime":3600,"is_payment_multiple":false}"#;
pub const REQUEST_PHP_SIGN: &str = "71cbebcb937403e4939304f4709fb391";

/// Vector A: a slash in a URL value, `null` members; ASCII only.
pub const A: &str = r#"{"type":"payment","uuid":"5f1c7a52-0d3e-4c55-9d0e-6b2f8a1e9c01","order_id":"tg_100500_1","amount":"10.00","payment_amount":"10.00","payment_amount_usd":"10.00","merchant_amount":"9.80000000","commission":"0.20000000","is_final":true,"status":"paid","from":null,"wallet_address_uuid":null,"network":"tron","currency":"USD","payer_currency":"USDT","additional_data":"https:\/\/t.me\/example_bot?start=pay","txid":"a1b2c3d4e5f6"}"#;
pub const A_BASE64: &str = "eyJ0eXBlIjoicGF5bWVudCIsInV1aWQiOiI1ZjFjN2E1Mi0wZDNlLTRjNTUtOWQwZS02YjJmOGExZTljMDEiLCJvcmRlcl9pZCI6InRnXzEwMDUwMF8xIiwiYW1vdW50IjoiMTAuMDAiLCJwYXltZW50X2Ftb3VudCI6IjEwLjAwIiwicGF5bWVudF9hbW91bnRfdXNkIjoiMTAuMDAiLCJtZXJjaGFudF9hbW91bnQiOiI5LjgwMDAwMDAwIiwiY29tbWlzc2lvbiI6IjAuMjAwMDAwMDAiLCJpc19maW5hbCI6dHJ1ZSwic3RhdHVzIjoicGFpZCIsImZyb20iOm51bGwsIndhbGxldF9hZGRyZXNzX3V1aWQiOm51bGwsIm5ldHdvcmsiOiJ0cm9uIiwiY3VycmVuY3kiOiJVU0QiLCJwYXllcl9jdXJyZW5jeSI6IlVTRFQiLCJhZGRpdGlvbmFsX2RhdGEiOiJodHRwczpcL1wvdC5tZVwvZXhhbXBsZV9ib3Q/c3RhcnQ9cGF5IiwidHhpZCI6ImExYjJjM2Q0ZTVmNiJ9";
pub const A_SIGN: &str = "246f3f8f091e1a7952007a474ea3163a";
/// Signs of A's data under wrong encodings: what a verifier that gets PHP's rules wrong
/// would compute.
pub const A_SIGN_PYTHON_DEFAULT: &str = "e3993b1f3742622c19d86e564df7ef56";
pub const A_SIGN_SLASH_RAW: &str = "5e2973ce79e949e70b827714da29857b";
pub const A_SIGN_KEYS_SORTED: &str = "6badf29ae9cd3d43cb03edeef8344277";
pub const A_SIGN_NULLS_DROPPED: &str = "6b7092122319282a0a362ab41c9677d2";

/// Vector B1: non-ASCII (Cyrillic, em dash, ₽, an astral emoji) kept raw
/// (`JSON_UNESCAPED_UNICODE`, the documented webhook form).
pub const B1: &str = r#"{"type":"payment","uuid":"0b9e2f6c-3a47-4e1d-8c2b-1f5d7e9a3b42","order_id":"tg_42_7","amount":"500.00","status":"paid_over","is_final":true,"currency":"RUB","payer_currency":"USDT","network":"tron","additional_data":"Пополнение баланса — 500 ₽ 😀"}"#;
pub const B1_BASE64: &str = "eyJ0eXBlIjoicGF5bWVudCIsInV1aWQiOiIwYjllMmY2Yy0zYTQ3LTRlMWQtOGMyYi0xZjVkN2U5YTNiNDIiLCJvcmRlcl9pZCI6InRnXzQyXzciLCJhbW91bnQiOiI1MDAuMDAiLCJzdGF0dXMiOiJwYWlkX292ZXIiLCJpc19maW5hbCI6dHJ1ZSwiY3VycmVuY3kiOiJSVUIiLCJwYXllcl9jdXJyZW5jeSI6IlVTRFQiLCJuZXR3b3JrIjoidHJvbiIsImFkZGl0aW9uYWxfZGF0YSI6ItCf0L7Qv9C+0LvQvdC10L3QuNC1INCx0LDQu9Cw0L3RgdCwIOKAlCA1MDAg4oK9IPCfmIAifQ==";
pub const B1_SIGN: &str = "7b2457ab620ce5324216a1bc9954c5c9";

/// Vector B2: the same data with unicode escaped (plain `json_encode`).
pub const B2: &str = r#"{"type":"payment","uuid":"0b9e2f6c-3a47-4e1d-8c2b-1f5d7e9a3b42","order_id":"tg_42_7","amount":"500.00","status":"paid_over","is_final":true,"currency":"RUB","payer_currency":"USDT","network":"tron","additional_data":"\u041f\u043e\u043f\u043e\u043b\u043d\u0435\u043d\u0438\u0435 \u0431\u0430\u043b\u0430\u043d\u0441\u0430 \u2014 500 \u20bd \ud83d\ude00"}"#;
pub const B2_BASE64: &str = "eyJ0eXBlIjoicGF5bWVudCIsInV1aWQiOiIwYjllMmY2Yy0zYTQ3LTRlMWQtOGMyYi0xZjVkN2U5YTNiNDIiLCJvcmRlcl9pZCI6InRnXzQyXzciLCJhbW91bnQiOiI1MDAuMDAiLCJzdGF0dXMiOiJwYWlkX292ZXIiLCJpc19maW5hbCI6dHJ1ZSwiY3VycmVuY3kiOiJSVUIiLCJwYXllcl9jdXJyZW5jeSI6IlVTRFQiLCJuZXR3b3JrIjoidHJvbiIsImFkZGl0aW9uYWxfZGF0YSI6Ilx1MDQxZlx1MDQzZVx1MDQzZlx1MDQzZVx1MDQzYlx1MDQzZFx1MDQzNVx1MDQzZFx1MDQzOFx1MDQzNSBcdTA0MzFcdTA0MzBcdTA0M2JcdTA0MzBcdTA0M2RcdTA0NDFcdTA0MzAgXHUyMDE0IDUwMCBcdTIwYmQgXHVkODNkXHVkZTAwIn0=";
pub const B2_SIGN: &str = "ae134c209e23a1dc5b4206bd556865d8";

/// Vector C: `additional_data` holding JSON (quotes, a slash, escaped quotes) and a nested
/// `convert` object with a `null`; ASCII only.
pub const C: &str = r#"{"type":"payment","uuid":"9d4c1e2b-7f3a-4b6d-a1c8-2e5f0b7d9a63","order_id":"tg_7_3","amount":"3.00000000","payment_amount":"3.00000000","merchant_amount":"2.94000000","commission":"0.06000000","is_final":true,"status":"paid","network":"tron","currency":"TRX","payer_currency":"TRX","additional_data":"{\"user_id\":7,\"plan\":\"pro\/monthly\",\"note\":\"say \\\"hi\\\"\"}","convert":{"to_currency":"USDT","commission":null,"rate":"0.07700000","amount":"0.22638000"},"txid":"6f0d9c83"}"#;
pub const C_BASE64: &str = "eyJ0eXBlIjoicGF5bWVudCIsInV1aWQiOiI5ZDRjMWUyYi03ZjNhLTRiNmQtYTFjOC0yZTVmMGI3ZDlhNjMiLCJvcmRlcl9pZCI6InRnXzdfMyIsImFtb3VudCI6IjMuMDAwMDAwMDAiLCJwYXltZW50X2Ftb3VudCI6IjMuMDAwMDAwMDAiLCJtZXJjaGFudF9hbW91bnQiOiIyLjk0MDAwMDAwIiwiY29tbWlzc2lvbiI6IjAuMDYwMDAwMDAiLCJpc19maW5hbCI6dHJ1ZSwic3RhdHVzIjoicGFpZCIsIm5ldHdvcmsiOiJ0cm9uIiwiY3VycmVuY3kiOiJUUlgiLCJwYXllcl9jdXJyZW5jeSI6IlRSWCIsImFkZGl0aW9uYWxfZGF0YSI6IntcInVzZXJfaWRcIjo3LFwicGxhblwiOlwicHJvXC9tb250aGx5XCIsXCJub3RlXCI6XCJzYXkgXFxcImhpXFxcIlwifSIsImNvbnZlcnQiOnsidG9fY3VycmVuY3kiOiJVU0RUIiwiY29tbWlzc2lvbiI6bnVsbCwicmF0ZSI6IjAuMDc3MDAwMDAiLCJhbW91bnQiOiIwLjIyNjM4MDAwIn0sInR4aWQiOiI2ZjBkOWM4MyJ9";
pub const C_SIGN: &str = "5ee330a5660df8a78eb548afa9880172";

/// A webhook body as Heleket sends it: `sign` appended as the last member.
pub fn with_sign(body: &str, sign: &str) -> String {
    let open = body.strip_suffix('}').expect("a JSON object");
    format!("{open},\"sign\":\"{sign}\"}}")
}
