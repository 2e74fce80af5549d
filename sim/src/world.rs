//! What Telegram remembers between calls: messages per chat (for edits), answered callback
//! queries and webhooks, and the `Message` objects it answers with.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Value};

use crate::methods::{query_invalid, Action, ApiError, Target};
use crate::{BOT_FIRST_NAME, BOT_ID, BOT_USERNAME};

/// Messages older than this many in one chat are forgotten (editing them answers "not
/// found"), which bounds memory in long load tests; bots edit recent messages. The default of
/// [`crate::SimConfig::kept_messages_per_chat`].
#[cfg(test)]
const KEPT_PER_CHAT: i64 = 1000;

struct Stored {
    date: i64,
    text: String,
    markup: Option<Value>,
}

#[derive(Default)]
struct ChatLog {
    last_id: i64,
    messages: HashMap<i64, Stored>,
}

#[derive(Default)]
struct Webhook {
    url: String,
    max_connections: i64,
    allowed_updates: Option<Value>,
    ip_address: Option<String>,
}

/// What Telegram remembers between calls.
pub(crate) struct World {
    kept_per_chat: i64,
    chats: HashMap<i64, ChatLog>,
    answered: HashSet<String>,
    webhooks: HashMap<String, Webhook>,
}

impl World {
    pub(crate) fn new(kept_per_chat: i64) -> World {
        World {
            kept_per_chat: kept_per_chat.max(1),
            chats: HashMap::new(),
            answered: HashSet::new(),
            webhooks: HashMap::new(),
        }
    }

    /// Returns the whole success body: a few methods add a `description` next to `result`.
    pub(crate) fn apply(
        &mut self,
        token: &str,
        action: Action,
        now: i64,
    ) -> Result<Value, ApiError> {
        let ok = |result: Value| json!({"ok": true, "result": result});
        match action {
            Action::GetMe => Ok(ok(json!({
                "id": bot_id(token),
                "is_bot": true,
                "first_name": BOT_FIRST_NAME,
                "username": BOT_USERNAME,
                "can_join_groups": true,
                "can_read_all_group_messages": false,
                "supports_inline_queries": false,
                "can_connect_to_business": false,
                "has_main_web_app": false,
            }))),
            Action::Send {
                chat_id,
                text,
                markup,
            } => {
                let chat = self.chats.entry(chat_id).or_default();
                chat.last_id += 1;
                let stored = Stored {
                    date: now,
                    text,
                    markup,
                };
                let message = message_json(token, chat_id, chat.last_id, &stored, None);
                chat.messages.insert(chat.last_id, stored);
                chat.messages.remove(&(chat.last_id - self.kept_per_chat));
                Ok(ok(message))
            }
            Action::AnswerCallback { query_id } => {
                if self.answered.insert(query_id) {
                    Ok(ok(json!(true)))
                } else {
                    Err(query_invalid())
                }
            }
            Action::Edit {
                target: Target::Inline,
                ..
            } => Ok(ok(json!(true))),
            Action::Edit {
                target:
                    Target::Chat {
                        chat_id,
                        message_id,
                    },
                text,
                markup,
            } => {
                let stored = self
                    .chats
                    .get_mut(&chat_id)
                    .and_then(|c| c.messages.get_mut(&message_id))
                    .ok_or_else(|| ApiError::bad_request("message to edit not found"))?;
                let text = text.unwrap_or_else(|| stored.text.clone());
                if text == stored.text && markup == stored.markup {
                    return Err(ApiError::bad_request(
                        "message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
                    ));
                }
                stored.text = text;
                stored.markup = markup;
                Ok(ok(message_json(
                    token,
                    chat_id,
                    message_id,
                    stored,
                    Some(now),
                )))
            }
            Action::SetWebhook(update) if update.url.is_empty() => Ok(self.delete_webhook(token)),
            Action::SetWebhook(update) => {
                let hook = self.webhooks.entry(token.to_owned()).or_default();
                hook.url = update.url;
                hook.max_connections = update.max_connections;
                hook.ip_address = update.ip_address;
                // Omitting allowed_updates keeps the previous list, per the Bot API docs.
                if update.allowed_updates.is_some() {
                    hook.allowed_updates = update.allowed_updates;
                }
                Ok(json!({"ok": true, "result": true, "description": "Webhook was set"}))
            }
            Action::DeleteWebhook => Ok(self.delete_webhook(token)),
            Action::GetWebhookInfo => {
                let mut info = json!({
                    "url": "",
                    "has_custom_certificate": false,
                    "pending_update_count": 0,
                });
                if let Some(hook) = self.webhooks.get(token) {
                    info["url"] = json!(hook.url);
                    info["max_connections"] = json!(hook.max_connections);
                    if let Some(allowed) = &hook.allowed_updates {
                        info["allowed_updates"] = allowed.clone();
                    }
                    if let Some(ip) = &hook.ip_address {
                        info["ip_address"] = json!(ip);
                    }
                }
                Ok(ok(info))
            }
        }
    }

    fn delete_webhook(&mut self, token: &str) -> Value {
        let description = if self.webhooks.remove(token).is_some() {
            "Webhook was deleted"
        } else {
            "Webhook is already deleted"
        };
        json!({"ok": true, "result": true, "description": description})
    }
}

/// A real token starts with the bot's id; other tokens get the default sim bot.
fn bot_id(token: &str) -> i64 {
    token
        .split_once(':')
        .and_then(|(id, _)| id.parse().ok())
        .unwrap_or(BOT_ID)
}

pub(crate) fn bot_user(id: i64) -> Value {
    json!({"id": id, "is_bot": true, "first_name": BOT_FIRST_NAME, "username": BOT_USERNAME})
}

/// Chat ids encode the chat type: users are positive, supergroups `-100…`, groups negative.
pub(crate) fn chat_json(chat_id: i64) -> Value {
    if chat_id > 0 {
        json!({"id": chat_id, "type": "private"})
    } else if chat_id <= -1_000_000_000_000 {
        json!({"id": chat_id, "type": "supergroup", "title": format!("Supergroup {chat_id}")})
    } else {
        json!({"id": chat_id, "type": "group", "title": format!("Group {chat_id}")})
    }
}

fn message_json(
    token: &str,
    chat_id: i64,
    message_id: i64,
    stored: &Stored,
    edit_date: Option<i64>,
) -> Value {
    let mut message = json!({
        "message_id": message_id,
        "from": bot_user(bot_id(token)),
        "chat": chat_json(chat_id),
        "date": stored.date,
        "text": stored.text,
    });
    if let Some(edit_date) = edit_date {
        message["edit_date"] = json!(edit_date);
    }
    if let Some(markup) = &stored.markup {
        message["reply_markup"] = markup.clone();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(world: &mut World, text: &str) -> Value {
        let action = Action::Send {
            chat_id: 1,
            text: text.to_owned(),
            markup: None,
        };
        world.apply("1:t", action, 0).unwrap()
    }

    fn edit(world: &mut World, message_id: i64) -> Result<Value, ApiError> {
        let action = Action::Edit {
            target: Target::Chat {
                chat_id: 1,
                message_id,
            },
            text: Some("edited".to_owned()),
            markup: None,
        };
        world.apply("1:t", action, 0)
    }

    #[test]
    fn old_messages_are_forgotten() {
        let mut world = World::new(KEPT_PER_CHAT);
        for _ in 0..=KEPT_PER_CHAT {
            send(&mut world, "x");
        }
        assert_eq!(
            edit(&mut world, 1).unwrap_err().description,
            "Bad Request: message to edit not found"
        );
        assert!(edit(&mut world, 2).is_ok());
    }

    #[test]
    fn bot_id_comes_from_the_token() {
        assert_eq!(bot_id("123:abc"), 123);
        assert_eq!(bot_id("test-token"), BOT_ID);
        let message = send(&mut World::new(KEPT_PER_CHAT), "x");
        assert_eq!(message["result"]["from"]["id"], 1);
    }
}
