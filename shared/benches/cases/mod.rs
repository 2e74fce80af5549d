//! The operations both bench targets measure, with realistic inputs: `hot_paths` times them
//! with criterion, `hot_paths_icount` runs each a fixed number of times for callgrind.

use shared::callback::{CallbackError, CallbackSigner};
use shared::event::EventKind;
use shared::heleket::sign::{php_json_encode, request_sign};
use shared::heleket::webhook::{self, WebhookError};
use shared::secret::SecretString;
use shared::telegram_update::{self, Normalized, UpdateError};
use std::hint::black_box;
use testkit::heleket as v;

/// A `/balance` command as Telegram sends it from a private chat (333 bytes): the shape the
/// ingress load test posts, with a username.
pub const MESSAGE_BALANCE: &str = r#"{"update_id":918273645,"message":{"message_id":52731,"from":{"id":100042,"is_bot":false,"first_name":"Load","username":"load_tester","language_code":"en"},"chat":{"id":100042,"first_name":"Load","username":"load_tester","type":"private"},"date":1767225600,"text":"/balance","entities":[{"offset":0,"length":8,"type":"bot_command"}]}}"#;

/// A press on a top-up amount button: the query carries the whole message it was attached to,
/// keyboard included, as Telegram sends it.
pub const CALLBACK_QUERY: &str = r#"{"update_id":918273646,"callback_query":{"id":"4382716592837465012","from":{"id":100042,"is_bot":false,"first_name":"Load","last_name":"Tester","username":"load_tester","language_code":"en"},"message":{"message_id":52732,"from":{"id":7000000001,"is_bot":true,"first_name":"PayStream","username":"paystream_bot"},"chat":{"id":100042,"first_name":"Load","last_name":"Tester","username":"load_tester","type":"private"},"date":1767225601,"text":"Choose an amount to top up:","reply_markup":{"inline_keyboard":[[{"text":"5 USD","callback_data":"t:5~q2H0pW1xYb8"},{"text":"10 USD","callback_data":"t:10~3mVbW9nQe0A"},{"text":"25 USD","callback_data":"t:25~Zt7uS2kLx4c"}],[{"text":"Other amount","callback_data":"t:other~a8GfE1rT5yU"}]]}},"chat_instance":"-3512874690128375612","data":"t:10~3mVbW9nQe0A"}}"#;

/// The user blocked the bot in their private chat.
pub const MY_CHAT_MEMBER: &str = r#"{"update_id":918273647,"my_chat_member":{"chat":{"id":100042,"first_name":"Load","last_name":"Tester","username":"load_tester","type":"private"},"from":{"id":100042,"is_bot":false,"first_name":"Load","last_name":"Tester","username":"load_tester","language_code":"en"},"date":1767225602,"old_chat_member":{"user":{"id":7000000001,"is_bot":true,"first_name":"PayStream","username":"paystream_bot"},"status":"member"},"new_chat_member":{"user":{"id":7000000001,"is_bot":true,"first_name":"PayStream","username":"paystream_bot"},"status":"kicked","until_date":0}}}"#;

/// Not JSON at the first byte (a scanner's form post).
pub const JUNK_TEXT: &str = "username=admin&password=admin";

pub struct Inputs {
    pub message_balance: Vec<u8>,
    pub callback_query: Vec<u8>,
    pub my_chat_member: Vec<u8>,
    pub junk_text: Vec<u8>,
    /// The `/balance` update cut short after 200 bytes: parsed most of the way, then refused.
    pub junk_truncated: Vec<u8>,
    pub api_key: SecretString,
    /// Vector A as Heleket sends it (`sign` last): the raw cut reproduces the sign.
    pub paid: Vec<u8>,
    /// Vector B sent with unicode escaped but signed raw: only the PHP re-encoding with raw
    /// unicode reproduces the sign.
    pub paid_escaped_signed_raw: Vec<u8>,
    /// Vector B sent raw but signed escaped: only the PHP re-encoding with escaped unicode does.
    pub paid_raw_signed_escaped: Vec<u8>,
    /// Vector A with a sign made under another key.
    pub paid_bad_sign: Vec<u8>,
    /// A `POST /v1/payment` body, as the client signs it before sending.
    pub invoice_request: Vec<u8>,
    /// Vector A parsed as the verifier parses it, for the PHP encoding alone.
    pub paid_fields: serde_json::Value,
    pub signer: CallbackSigner,
    pub callback_payload: &'static str,
    pub callback_data: String,
    pub callback_tampered: String,
}

impl Inputs {
    pub fn new() -> Self {
        let other_key = SecretString::new("TEST-payment-key-not-real-0123456789abcdeF");
        let bad = request_sign(v::A.as_bytes(), &other_key);
        let signer = CallbackSigner::from_bot_token(&SecretString::new(
            "7000000001:AAH-not-a-real-token-0123456789abcde",
        ));
        let callback_payload = "t:25";
        let callback_data = signer.sign(callback_payload);
        let callback_tampered = callback_data.replacen("t:25", "t:99", 1);
        Self {
            message_balance: MESSAGE_BALANCE.into(),
            callback_query: CALLBACK_QUERY.into(),
            my_chat_member: MY_CHAT_MEMBER.into(),
            junk_text: JUNK_TEXT.into(),
            junk_truncated: MESSAGE_BALANCE.as_bytes()[..200].to_vec(),
            api_key: SecretString::new(v::API_KEY),
            paid: v::with_sign(v::A, v::A_SIGN).into(),
            paid_escaped_signed_raw: v::with_sign(v::B2, v::B1_SIGN).into(),
            paid_raw_signed_escaped: v::with_sign(v::B1, v::B2_SIGN).into(),
            paid_bad_sign: v::with_sign(v::A, &bad).into(),
            invoice_request: v::REQUEST_SERDE.into(),
            paid_fields: serde_json::from_str(v::A).expect("vector A is JSON"),
            signer,
            callback_payload,
            callback_data,
            callback_tampered,
        }
    }
}

/// One measured operation. `run` returns something derived from the result so that the work
/// cannot be optimised away.
pub struct Op {
    pub group: &'static str,
    pub name: &'static str,
    pub run: fn(&Inputs) -> usize,
}

fn normalize(body: &[u8]) -> usize {
    match telegram_update::normalize(black_box(body)) {
        Ok(Normalized::Event(e)) => e.update_id.0 as usize,
        Ok(Normalized::Ignored { kind, .. }) => kind.len(),
        Err(e) => matches!(e, UpdateError::NotJson(_)) as usize,
    }
}

fn verify(body: &[u8], key: &SecretString) -> usize {
    match webhook::verify(black_box(body), black_box(key)) {
        Ok(event) => event.uuid.len(),
        Err(e) => matches!(e, WebhookError::BadSign) as usize,
    }
}

pub const OPS: &[Op] = &[
    Op {
        group: "normalize",
        name: "message_balance",
        run: |i| normalize(&i.message_balance),
    },
    Op {
        group: "normalize",
        name: "callback_query",
        run: |i| normalize(&i.callback_query),
    },
    Op {
        group: "normalize",
        name: "my_chat_member",
        run: |i| normalize(&i.my_chat_member),
    },
    Op {
        group: "normalize",
        name: "junk_text",
        run: |i| normalize(&i.junk_text),
    },
    Op {
        group: "normalize",
        name: "junk_truncated",
        run: |i| normalize(&i.junk_truncated),
    },
    Op {
        group: "webhook_verify",
        name: "paid_raw_cut",
        run: |i| verify(&i.paid, &i.api_key),
    },
    Op {
        group: "webhook_verify",
        name: "escaped_wire_php_raw",
        run: |i| verify(&i.paid_escaped_signed_raw, &i.api_key),
    },
    Op {
        group: "webhook_verify",
        name: "raw_wire_php_escaped",
        run: |i| verify(&i.paid_raw_signed_escaped, &i.api_key),
    },
    Op {
        group: "webhook_verify",
        name: "bad_sign",
        run: |i| verify(&i.paid_bad_sign, &i.api_key),
    },
    Op {
        group: "heleket_sign",
        name: "request_sign_invoice",
        run: |i| request_sign(black_box(&i.invoice_request), black_box(&i.api_key)).len(),
    },
    Op {
        group: "heleket_sign",
        name: "php_json_encode_paid",
        run: |i| php_json_encode(black_box(&i.paid_fields), false).len(),
    },
    Op {
        group: "callback",
        name: "sign",
        run: |i| i.signer.sign(black_box(i.callback_payload)).len(),
    },
    Op {
        group: "callback",
        name: "verify_ok",
        run: |i| {
            i.signer
                .verify(black_box(&i.callback_data))
                .map_or(0, str::len)
        },
    },
    Op {
        group: "callback",
        name: "verify_tampered",
        run: |i| {
            (i.signer.verify(black_box(&i.callback_tampered)) == Err(CallbackError::BadTag))
                as usize
        },
    },
];

/// Asserts that every input takes the path it is named for, so a benchmark never silently
/// measures an error path.
pub fn check(i: &Inputs) {
    assert_eq!(i.message_balance.len(), 333, "message body size");
    let event = |body: &[u8]| match telegram_update::normalize(body) {
        Ok(Normalized::Event(e)) => e.kind,
        other => panic!("expected an event, got {other:?}"),
    };
    assert!(matches!(
        event(&i.message_balance),
        EventKind::Command { ref name, .. } if name == "balance"
    ));
    assert!(matches!(
        event(&i.callback_query),
        EventKind::Callback { ref data, .. } if data == "t:10~3mVbW9nQe0A"
    ));
    assert!(matches!(
        event(&i.my_chat_member),
        EventKind::MemberChange { .. }
    ));
    for junk in [&i.junk_text, &i.junk_truncated] {
        assert!(matches!(
            telegram_update::normalize(junk),
            Err(UpdateError::NotJson(_))
        ));
    }
    for body in [
        &i.paid,
        &i.paid_escaped_signed_raw,
        &i.paid_raw_signed_escaped,
    ] {
        let event = webhook::verify(body, &i.api_key).expect("signed body verifies");
        assert_eq!(event.status.get(..4), Some("paid"));
    }
    assert!(matches!(
        webhook::verify(&i.paid_bad_sign, &i.api_key),
        Err(WebhookError::BadSign)
    ));
    assert_eq!(
        request_sign(&i.invoice_request, &i.api_key),
        v::REQUEST_SERDE_SIGN
    );
    assert_eq!(php_json_encode(&i.paid_fields, false), v::A);
    assert_eq!(i.signer.verify(&i.callback_data), Ok(i.callback_payload));
    assert_eq!(
        i.signer.verify(&i.callback_tampered),
        Err(CallbackError::BadTag)
    );
}
