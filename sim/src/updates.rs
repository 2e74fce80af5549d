//! `Update` objects shaped like the ones Telegram posts to a webhook, for tests, the sandbox
//! and the load generator to send to the ingress.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::world::bot_user;
use crate::BOT_ID;

/// A Telegram user talking to the bot in a private chat (whose chat id is the user id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimUser {
    pub id: i64,
    pub first_name: String,
    pub last_name: Option<String>,
    pub username: Option<String>,
    pub language_code: Option<String>,
}

impl SimUser {
    pub fn new(id: i64, first_name: impl Into<String>) -> SimUser {
        SimUser {
            id,
            first_name: first_name.into(),
            last_name: None,
            username: None,
            language_code: None,
        }
    }

    pub fn with_username(mut self, username: impl Into<String>) -> SimUser {
        self.username = Some(username.into());
        self
    }

    pub fn with_language(mut self, language_code: impl Into<String>) -> SimUser {
        self.language_code = Some(language_code.into());
        self
    }

    pub fn with_last_name(mut self, last_name: impl Into<String>) -> SimUser {
        self.last_name = Some(last_name.into());
        self
    }

    /// The `User` object; optional fields are absent rather than null, as Telegram sends them.
    pub fn user_json(&self) -> Value {
        let mut user = json!({"id": self.id, "is_bot": false, "first_name": self.first_name});
        insert_some(&mut user, "last_name", &self.last_name);
        insert_some(&mut user, "username", &self.username);
        insert_some(&mut user, "language_code", &self.language_code);
        user
    }

    /// The private `Chat` with this user.
    pub fn chat_json(&self) -> Value {
        let mut chat = json!({"id": self.id, "type": "private", "first_name": self.first_name});
        insert_some(&mut chat, "last_name", &self.last_name);
        insert_some(&mut chat, "username", &self.username);
        chat
    }
}

fn insert_some(object: &mut Value, key: &str, value: &Option<String>) {
    if let Some(value) = value {
        object[key] = json!(value);
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A text message from `user`. Its `message_id` is the `update_id`, which keeps ids unique
/// without shared counters. A leading command gets its `bot_command` entity, as Telegram adds.
pub fn message_text(update_id: i64, user: &SimUser, text: &str) -> Value {
    let mut message = json!({
        "message_id": update_id,
        "from": user.user_json(),
        "chat": user.chat_json(),
        "date": now(),
        "text": text,
    });
    if let Some(length) = command_length(text) {
        message["entities"] = json!([{"type": "bot_command", "offset": 0, "length": length}]);
    }
    json!({"update_id": update_id, "message": message})
}

/// Length in UTF-16 code units of a leading `/command` or `/command@bot`, if there is one.
/// Telegram only recognises Latin letters, digits and `_` in commands (at most 32), so
/// `/топап` stays plain text.
fn command_length(text: &str) -> Option<usize> {
    let word = text.strip_prefix('/')?;
    let is_command_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let name_len = word.find(|c| !is_command_char(c)).unwrap_or(word.len());
    if name_len == 0 || name_len > 32 {
        return None;
    }
    let mut end = 1 + name_len;
    if let Some(mention) = text[end..].strip_prefix('@') {
        let mention_len = mention
            .find(|c| !is_command_char(c))
            .unwrap_or(mention.len());
        if mention_len > 0 {
            end += 1 + mention_len;
        }
    }
    Some(text[..end].encode_utf16().count())
}

/// `user` pressed a button carrying `data` under the bot's message `message_id`.
pub fn callback_query(update_id: i64, user: &SimUser, message_id: i64, data: &str) -> Value {
    json!({
        "update_id": update_id,
        "callback_query": {
            // Telegram's ids are opaque numeric strings; this one is unique per update and user.
            "id": format!("{}{:010}", user.id.unsigned_abs(), update_id),
            "from": user.user_json(),
            "message": {
                "message_id": message_id,
                "from": bot_user(BOT_ID),
                "chat": user.chat_json(),
                "date": now(),
            },
            "chat_instance": format!("-{}", user.id.unsigned_abs().wrapping_mul(7919)),
            "data": data,
        }
    })
}

/// `user` changed the bot's status in their private chat: `"member"` → `"kicked"` is blocking
/// the bot, `"kicked"` → `"member"` unblocking it.
pub fn my_chat_member(update_id: i64, user: &SimUser, old_status: &str, new_status: &str) -> Value {
    let member = |status: &str| {
        let mut member = json!({"status": status, "user": bot_user(BOT_ID)});
        if status == "kicked" {
            member["until_date"] = json!(0);
        }
        member
    };
    json!({
        "update_id": update_id,
        "my_chat_member": {
            "chat": user.chat_json(),
            "from": user.user_json(),
            "date": now(),
            "old_chat_member": member(old_status),
            "new_chat_member": member(new_status),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ana() -> SimUser {
        SimUser::new(123_456_789, "Ana")
            .with_username("ana")
            .with_language("pt")
    }

    #[test]
    fn message_with_command_has_entity() {
        let update = message_text(811, &ana(), "/start ref_77");
        let message = &update["message"];
        assert_eq!(update["update_id"], 811);
        assert_eq!(message["chat"]["id"], 123_456_789);
        assert_eq!(message["chat"]["type"], "private");
        assert_eq!(message["from"]["language_code"], "pt");
        assert_eq!(message["from"]["is_bot"], false);
        assert!(message["from"].get("last_name").is_none());
        assert_eq!(
            message["entities"],
            json!([{"type": "bot_command", "offset": 0, "length": 6}])
        );
    }

    #[test]
    fn command_lengths() {
        assert_eq!(command_length("/topup 10"), Some(6));
        assert_eq!(command_length("/buy@PayBot 3"), Some(11));
        assert_eq!(command_length("/help😀"), Some(5));
        assert_eq!(command_length("/"), None);
        assert_eq!(command_length("/ start"), None);
        assert_eq!(command_length("/топап"), None);
        assert_eq!(command_length("hello /start"), None);
        assert!(message_text(1, &ana(), "hi")["message"]
            .get("entities")
            .is_none());
    }

    #[test]
    fn callback_query_shape() {
        let update = callback_query(812, &ana(), 43, "pay:5");
        let query = &update["callback_query"];
        assert_eq!(query["data"], "pay:5");
        assert_eq!(query["message"]["message_id"], 43);
        assert_eq!(query["message"]["from"]["is_bot"], true);
        assert!(query["id"].as_str().is_some_and(|id| !id.is_empty()));
        assert_ne!(
            query["id"],
            callback_query(813, &ana(), 43, "pay:5")["callback_query"]["id"]
        );
    }

    #[test]
    fn my_chat_member_shape() {
        let update = my_chat_member(813, &ana(), "member", "kicked");
        let change = &update["my_chat_member"];
        assert_eq!(change["chat"]["id"], 123_456_789);
        assert_eq!(change["chat"]["type"], "private");
        assert_eq!(change["old_chat_member"]["status"], "member");
        assert_eq!(change["new_chat_member"]["status"], "kicked");
        assert_eq!(change["new_chat_member"]["until_date"], 0);
        assert_eq!(change["new_chat_member"]["user"]["id"], BOT_ID);
    }
}
