//! A thin Bot API client: renders an outbound action into a method call and classifies
//! Telegram's answer. The token is part of the URL, so URLs never reach a log or an error.

use serde::Deserialize;
use serde_json::{json, Value};
use shared::config::BotApiSettings;
use shared::outbound::{Button, DeliveryOutcome, Keyboard, OutboundAction};
use std::time::Duration;

#[derive(Deserialize)]
struct ApiReply {
    #[serde(default)]
    ok: bool,
    #[serde(default)]
    description: String,
    parameters: Option<ReplyParameters>,
}

#[derive(Deserialize)]
struct ReplyParameters {
    retry_after: Option<u64>,
}

#[derive(Clone)]
pub struct BotApi {
    client: reqwest::Client,
    base: String,
}

impl BotApi {
    pub fn new(settings: &BotApiSettings) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(settings.request_timeout)
            .connect_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(64)
            .build()?;
        Ok(Self {
            client,
            base: format!("{}/bot{}", settings.api_url, settings.token.expose_secret()),
        })
    }

    async fn call(&self, chat_id: i64, action: &OutboundAction) -> DeliveryOutcome {
        let (method, body) = render(chat_id, action);
        let response = match self
            .client
            .post(format!("{}/{method}", self.base))
            .json(&body)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => return DeliveryOutcome::Unavailable(e.without_url().to_string()),
        };
        let status = response.status();
        let reply: Option<ApiReply> = response.json().await.ok();
        classify(method, status.as_u16(), reply)
    }
}

impl crate::Transport for BotApi {
    const NAME: &'static str = "bot_api";

    async fn execute(&self, chat_id: i64, action: &OutboundAction) -> DeliveryOutcome {
        self.call(chat_id, action).await
    }
}

fn classify(method: &str, status: u16, reply: Option<ApiReply>) -> DeliveryOutcome {
    let description = reply
        .as_ref()
        .map(|r| r.description.clone())
        .unwrap_or_default();
    match status {
        200..=299 if reply.as_ref().is_some_and(|r| r.ok) => DeliveryOutcome::Delivered,
        429 => {
            let secs = reply
                .and_then(|r| r.parameters)
                .and_then(|p| p.retry_after)
                .unwrap_or(1);
            DeliveryOutcome::RetryAfter(Duration::from_secs(secs.max(1)))
        }
        403 => DeliveryOutcome::Forbidden(description),
        // Editing a message into what it already says is the state we wanted.
        400 if description.contains("message is not modified") => DeliveryOutcome::Delivered,
        400..=499 => DeliveryOutcome::Rejected(format!("{method}: {status} {description}")),
        _ => DeliveryOutcome::Unavailable(format!("{method}: {status} {description}")),
    }
}

fn render_keyboard(keyboard: &Keyboard) -> Value {
    let rows: Vec<Vec<Value>> = keyboard
        .rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|b| match b {
                    Button::Callback { text, data } => json!({"text": text, "callback_data": data}),
                    Button::Url { text, url } => json!({"text": text, "url": url}),
                })
                .collect()
        })
        .collect();
    json!({ "inline_keyboard": rows })
}

/// The Bot API method and JSON body for an action.
pub fn render(chat_id: i64, action: &OutboundAction) -> (&'static str, Value) {
    match action {
        OutboundAction::SendMessage { text, keyboard } => {
            let mut body = json!({
                "chat_id": chat_id,
                "text": text,
                "link_preview_options": {"is_disabled": true},
            });
            if let Some(k) = keyboard {
                body["reply_markup"] = render_keyboard(k);
            }
            ("sendMessage", body)
        }
        OutboundAction::EditMessage {
            message_id,
            text,
            keyboard,
        } => {
            let mut body = json!({"chat_id": chat_id, "message_id": message_id, "text": text});
            if let Some(k) = keyboard {
                body["reply_markup"] = render_keyboard(k);
            }
            ("editMessageText", body)
        }
        OutboundAction::AnswerCallback { query_id, text } => {
            let mut body = json!({ "callback_query_id": query_id });
            if let Some(t) = text {
                body["text"] = json!(t);
            }
            ("answerCallbackQuery", body)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(v: Value) -> Option<ApiReply> {
        serde_json::from_value(v).ok()
    }

    #[test]
    fn classification() {
        assert_eq!(
            classify("sendMessage", 200, reply(json!({"ok": true, "result": {}}))),
            DeliveryOutcome::Delivered
        );
        assert_eq!(
            classify(
                "sendMessage",
                429,
                reply(json!({"ok": false, "error_code": 429,
                "description": "Too Many Requests: retry after 9", "parameters": {"retry_after": 9}}))
            ),
            DeliveryOutcome::RetryAfter(Duration::from_secs(9))
        );
        assert!(matches!(
            classify(
                "sendMessage",
                403,
                reply(
                    json!({"ok": false, "description": "Forbidden: bot was blocked by the user"})
                )
            ),
            DeliveryOutcome::Forbidden(_)
        ));
        assert_eq!(
            classify(
                "editMessageText",
                400,
                reply(
                    json!({"ok": false, "description": "Bad Request: message is not modified: x"})
                )
            ),
            DeliveryOutcome::Delivered
        );
        assert!(matches!(
            classify(
                "sendMessage",
                400,
                reply(json!({"ok": false, "description": "Bad Request: chat not found"}))
            ),
            DeliveryOutcome::Rejected(_)
        ));
        assert!(matches!(
            classify("sendMessage", 502, None),
            DeliveryOutcome::Unavailable(_)
        ));
    }

    #[test]
    fn renders_inline_keyboard() {
        let (method, body) = render(
            5,
            &OutboundAction::SendMessage {
                text: "hi".into(),
                keyboard: Some(Keyboard {
                    rows: vec![vec![
                        Button::Callback {
                            text: "A".into(),
                            data: "a~x".into(),
                        },
                        Button::Url {
                            text: "Pay".into(),
                            url: "https://pay.example/i".into(),
                        },
                    ]],
                }),
            },
        );
        assert_eq!(method, "sendMessage");
        assert_eq!(
            body["reply_markup"],
            json!({"inline_keyboard": [[{"text": "A", "callback_data": "a~x"}, {"text": "Pay", "url": "https://pay.example/i"}]]})
        );
    }
}
