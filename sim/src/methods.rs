//! The Bot API methods the simulator implements, parsed and validated into an [`Action`]:
//! this is where Telegram's 400s come from. [`crate::world`] then carries the action out.

use serde_json::{json, Map, Value};

use crate::markup::{self, MarkupError};

pub(crate) type Params = Map<String, Value>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    GetMe,
    SendMessage,
    AnswerCallbackQuery,
    EditMessageText,
    EditMessageReplyMarkup,
    SetWebhook,
    DeleteWebhook,
    GetWebhookInfo,
}

const METHODS: &[(Method, &str)] = &[
    (Method::GetMe, "getMe"),
    (Method::SendMessage, "sendMessage"),
    (Method::AnswerCallbackQuery, "answerCallbackQuery"),
    (Method::EditMessageText, "editMessageText"),
    (Method::EditMessageReplyMarkup, "editMessageReplyMarkup"),
    (Method::SetWebhook, "setWebhook"),
    (Method::DeleteWebhook, "deleteWebhook"),
    (Method::GetWebhookInfo, "getWebhookInfo"),
];

impl Method {
    /// Telegram matches method names case-insensitively.
    pub(crate) fn parse(name: &str) -> Option<Method> {
        METHODS
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
            .map(|(m, _)| *m)
    }

    pub(crate) fn name(self) -> &'static str {
        METHODS
            .iter()
            .find(|(m, _)| *m == self)
            .map_or("", |(_, n)| n)
    }
}

/// Methods whose successful calls put text in front of a user.
pub(crate) const MESSAGE_METHODS: &[&str] =
    &["sendMessage", "editMessageText", "editMessageReplyMarkup"];

/// A Bot API error as Telegram renders it: `error_code` doubles as the HTTP status.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ApiError {
    pub(crate) code: u16,
    pub(crate) description: String,
    pub(crate) retry_after: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(code: u16, description: impl Into<String>) -> ApiError {
        ApiError {
            code,
            description: description.into(),
            retry_after: None,
        }
    }

    pub(crate) fn bad_request(detail: &str) -> ApiError {
        ApiError::new(400, format!("Bad Request: {detail}"))
    }

    pub(crate) fn too_many_requests(retry_after: u64) -> ApiError {
        ApiError {
            retry_after: Some(retry_after),
            ..ApiError::new(429, format!("Too Many Requests: retry after {retry_after}"))
        }
    }

    pub(crate) fn body(&self) -> Value {
        let mut body =
            json!({"ok": false, "error_code": self.code, "description": self.description});
        if let Some(retry_after) = self.retry_after {
            body["parameters"] = json!({ "retry_after": retry_after });
        }
        body
    }
}

pub(crate) enum Action {
    GetMe,
    Send {
        chat_id: i64,
        text: String,
        markup: Option<Value>,
    },
    AnswerCallback {
        query_id: String,
    },
    Edit {
        target: Target,
        text: Option<String>,
        markup: Option<Value>,
    },
    SetWebhook(WebhookUpdate),
    DeleteWebhook,
    GetWebhookInfo,
}

pub(crate) enum Target {
    Chat { chat_id: i64, message_id: i64 },
    Inline,
}

pub(crate) struct WebhookUpdate {
    pub(crate) url: String,
    pub(crate) max_connections: i64,
    pub(crate) allowed_updates: Option<Value>,
    pub(crate) ip_address: Option<String>,
}

/// The `chat_id` a call is about, for recording and faults; validation is stricter.
pub(crate) fn chat_id(params: &Params) -> Option<i64> {
    int_field(params, "chat_id").ok().flatten()
}

pub(crate) fn parse(method: Method, p: &Params) -> Result<Action, ApiError> {
    Ok(match method {
        Method::GetMe => Action::GetMe,
        Method::SendMessage => Action::Send {
            chat_id: required_chat(p)?,
            text: message_text(p, "message is too long")?,
            markup: reply_markup(p, false)?,
        },
        Method::AnswerCallbackQuery => {
            let query_id = string_field(p, "callback_query_id").unwrap_or_default();
            if query_id.is_empty() {
                return Err(query_invalid());
            }
            if string_field(p, "text").is_some_and(|t| t.chars().count() > 200) {
                return Err(ApiError::bad_request("MESSAGE_TOO_LONG"));
            }
            Action::AnswerCallback { query_id }
        }
        Method::EditMessageText => Action::Edit {
            target: edit_target(p)?,
            text: Some(message_text(p, "MESSAGE_TOO_LONG")?),
            markup: reply_markup(p, true)?,
        },
        Method::EditMessageReplyMarkup => Action::Edit {
            target: edit_target(p)?,
            text: None,
            markup: reply_markup(p, true)?,
        },
        Method::SetWebhook => Action::SetWebhook(webhook(p)?),
        Method::DeleteWebhook => Action::DeleteWebhook,
        Method::GetWebhookInfo => Action::GetWebhookInfo,
    })
}

pub(crate) fn query_invalid() -> ApiError {
    ApiError::bad_request("query is too old and response timeout expired or query ID is invalid")
}

/// Bot API parameters may arrive as JSON numbers or, from forms and query strings, as text.
fn int_field(p: &Params, key: &str) -> Result<Option<i64>, ()> {
    match p.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or(()),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| ()),
        Some(_) => Err(()),
    }
}

fn string_field(p: &Params, key: &str) -> Option<String> {
    match p.get(key)? {
        Value::String(s) => Some(s.clone()),
        v @ (Value::Number(_) | Value::Bool(_)) => Some(v.to_string()),
        _ => None,
    }
}

/// Object parameters may also be sent as JSON-serialised strings, as most client libraries do.
fn json_field(p: &Params, key: &str) -> Result<Option<Value>, ()> {
    match p.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => serde_json::from_str(s).map(Some).map_err(|_| ()),
        Some(v) => Ok(Some(v.clone())),
    }
}

fn required_chat(p: &Params) -> Result<i64, ApiError> {
    match p.get("chat_id") {
        None | Some(Value::Null) => Err(ApiError::bad_request("chat_id is empty")),
        Some(Value::String(s)) if s.trim().is_empty() => {
            Err(ApiError::bad_request("chat_id is empty"))
        }
        // Channel usernames and anything else that is no id: no such chat exists here.
        _ => chat_id(p).ok_or_else(|| ApiError::bad_request("chat not found")),
    }
}

fn message_text(p: &Params, too_long: &str) -> Result<String, ApiError> {
    let raw = string_field(p, "text").unwrap_or_default();
    let parse_mode = p.get("parse_mode").and_then(Value::as_str);
    let plain = markup::plain_text(&raw, parse_mode).map_err(|e| match e {
        MarkupError::UnsupportedMode => ApiError::bad_request("unsupported parse_mode"),
        MarkupError::Entities(detail) => {
            ApiError::bad_request(&format!("can't parse entities: {detail}"))
        }
    })?;
    // Telegram strips surrounding whitespace before checking for an empty message.
    if plain.trim().is_empty() {
        return Err(ApiError::bad_request("message text is empty"));
    }
    if plain.chars().count() > 4096 {
        return Err(ApiError::bad_request(too_long));
    }
    Ok(plain)
}

fn edit_target(p: &Params) -> Result<Target, ApiError> {
    if string_field(p, "inline_message_id").is_some_and(|id| !id.is_empty()) {
        return Ok(Target::Inline);
    }
    let chat_id = required_chat(p)?;
    match int_field(p, "message_id") {
        Ok(Some(message_id)) => Ok(Target::Chat {
            chat_id,
            message_id,
        }),
        _ => Err(ApiError::bad_request("message identifier is not specified")),
    }
}

/// Returns the inline keyboard that becomes part of the Message; other keyboards are
/// accepted but, as in Telegram, not echoed.
fn reply_markup(p: &Params, inline_only: bool) -> Result<Option<Value>, ApiError> {
    let unparsable = || ApiError::bad_request("can't parse reply keyboard markup JSON object");
    let Some(markup) = json_field(p, "reply_markup").map_err(|()| unparsable())? else {
        return Ok(None);
    };
    let object = markup.as_object().ok_or_else(unparsable)?;
    match object.get("inline_keyboard") {
        Some(rows) => {
            validate_inline_keyboard(rows)?;
            Ok(Some(markup))
        }
        None if inline_only => Err(ApiError::bad_request(
            "can't parse inline keyboard markup JSON object",
        )),
        None => Ok(None),
    }
}

const BUTTON_ACTIONS: &[&str] = &[
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
];

fn validate_inline_keyboard(rows: &Value) -> Result<(), ApiError> {
    let not_rows = || {
        ApiError::bad_request(
            "field \"inline_keyboard\" of the InlineKeyboardMarkup should be an Array of Arrays",
        )
    };
    for row in rows.as_array().ok_or_else(not_rows)? {
        for button in row.as_array().ok_or_else(not_rows)? {
            validate_button(button)?;
        }
    }
    Ok(())
}

fn validate_button(button: &Value) -> Result<(), ApiError> {
    let unparsable =
        |why: &str| ApiError::bad_request(&format!("can't parse inline keyboard button: {why}"));
    let b = button
        .as_object()
        .ok_or_else(|| unparsable("InlineKeyboardButton must be an Object"))?;
    if !b.get("text").is_some_and(Value::is_string) {
        return Err(unparsable("Field \"text\" must be of type String"));
    }
    let actions = BUTTON_ACTIONS
        .iter()
        .filter(|a| b.get(**a).is_some_and(|v| !v.is_null()))
        .count();
    match actions {
        0 => {
            return Err(unparsable(
                "Text buttons are unallowed in the inline keyboard",
            ))
        }
        1 => {}
        _ => {
            return Err(unparsable(
                "exactly one of the optional fields must be used",
            ))
        }
    }
    if let Some(data) = b.get("callback_data") {
        // The limit is in bytes, so multi-byte text hits it well before 64 characters.
        if !data.as_str().is_some_and(|d| (1..=64).contains(&d.len())) {
            return Err(ApiError::bad_request("BUTTON_DATA_INVALID"));
        }
    }
    if let Some(url) = b.get("url") {
        if !url.as_str().is_some_and(valid_button_url) {
            return Err(ApiError::bad_request("BUTTON_URL_INVALID"));
        }
    }
    Ok(())
}

fn valid_button_url(url: &str) -> bool {
    ["http://", "https://", "tg://"].iter().any(|scheme| {
        url.len() > scheme.len()
            && url
                .get(..scheme.len())
                .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
    })
}

fn webhook(p: &Params) -> Result<WebhookUpdate, ApiError> {
    let url = string_field(p, "url").unwrap_or_default();
    // Like the local Bot API server, plain HTTP is allowed so a webhook can point at loopback.
    if !url.is_empty() && !valid_button_url(&url) {
        return Err(ApiError::bad_request(
            "bad webhook: An HTTPS URL must be provided for webhook",
        ));
    }
    if let Some(secret) = string_field(p, "secret_token") {
        let allowed = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        if !(1..=256).contains(&secret.len()) || !secret.chars().all(allowed) {
            return Err(ApiError::bad_request(
                "secret token contains unallowed characters",
            ));
        }
    }
    let allowed_updates = json_field(p, "allowed_updates")
        .map_err(|()| ApiError::bad_request("can't parse allowed updates JSON array"))?;
    Ok(WebhookUpdate {
        url,
        max_connections: int_field(p, "max_connections")
            .ok()
            .flatten()
            .unwrap_or(40)
            .clamp(1, 100),
        allowed_updates,
        ip_address: string_field(p, "ip_address"),
    })
}
