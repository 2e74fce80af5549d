//! Parsing a Bot API `Update` (webhook body) into the normalized `InboundEvent`.
//! Only the fields the bot uses are read; everything else is ignored, so new Telegram fields
//! never break parsing.

use crate::event::{EventKind, InboundEvent, MemberStatus, TelegramUser, UpdateId};
use serde::Deserialize;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UpdateError {
    #[error("body is not JSON: {0}")]
    NotJson(String),
    #[error("body is not a Telegram Update: {0}")]
    NotAnUpdate(String),
}

/// What became of a well-formed update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Normalized {
    Event(Box<InboundEvent>),
    /// Acknowledged and dropped; `kind` is a bounded label for the counter.
    Ignored {
        update_id: UpdateId,
        kind: &'static str,
    },
}

#[derive(Deserialize)]
struct Update {
    update_id: i64,
    message: Option<Message>,
    callback_query: Option<CallbackQuery>,
    my_chat_member: Option<ChatMemberUpdated>,
    edited_message: Option<serde::de::IgnoredAny>,
    channel_post: Option<serde::de::IgnoredAny>,
    inline_query: Option<serde::de::IgnoredAny>,
    pre_checkout_query: Option<serde::de::IgnoredAny>,
    chat_member: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct User {
    id: i64,
    #[serde(default)]
    is_bot: bool,
    #[serde(default)]
    first_name: String,
    last_name: Option<String>,
    username: Option<String>,
    language_code: Option<String>,
}

impl From<User> for TelegramUser {
    fn from(u: User) -> Self {
        TelegramUser {
            id: u.id,
            username: u.username,
            first_name: u.first_name,
            last_name: u.last_name,
            language_code: u.language_code,
        }
    }
}

#[derive(Deserialize)]
struct Chat {
    id: i64,
}

#[derive(Deserialize)]
struct Entity {
    #[serde(rename = "type")]
    kind: String,
    offset: usize,
}

#[derive(Deserialize)]
struct Message {
    message_id: i64,
    from: Option<User>,
    chat: Chat,
    text: Option<String>,
    #[serde(default)]
    entities: Vec<Entity>,
}

#[derive(Deserialize)]
struct CallbackQuery {
    id: String,
    from: User,
    message: Option<CallbackMessage>,
    data: Option<String>,
}

#[derive(Deserialize)]
struct CallbackMessage {
    message_id: i64,
    chat: Chat,
}

#[derive(Deserialize)]
struct ChatMember {
    status: String,
}

#[derive(Deserialize)]
struct ChatMemberUpdated {
    chat: Chat,
    from: User,
    new_chat_member: ChatMember,
}

/// Parses the body straight into the fields the bot reads, in one pass: no intermediate
/// `serde_json::Value` (building that tree took three quarters of the instructions, see
/// BENCHMARKS.md "Micro-benchmarks"). A key repeated inside an object the bot reads is refused
/// as not an Update; Telegram never sends one.
pub fn normalize(body: &[u8]) -> Result<Normalized, UpdateError> {
    let update: Update = serde_json::from_slice(body).map_err(|e| classify(body, &e))?;
    Ok(normalize_update(update))
}

/// A syntax error is `NotJson`; so is a shape error in a body that is not valid JSON further
/// on, as when the body was first parsed as JSON and only then read as an Update.
fn classify(body: &[u8], error: &serde_json::Error) -> UpdateError {
    if error.is_data() {
        match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
            Ok(_) => UpdateError::NotAnUpdate(error.to_string()),
            Err(not_json) => UpdateError::NotJson(not_json.to_string()),
        }
    } else {
        UpdateError::NotJson(error.to_string())
    }
}

fn normalize_update(update: Update) -> Normalized {
    let update_id = UpdateId(update.update_id);
    let ignored = |kind| Normalized::Ignored { update_id, kind };
    let event = |from: User, kind| {
        Normalized::Event(Box::new(InboundEvent {
            update_id,
            from: from.into(),
            kind,
        }))
    };

    if let Some(message) = update.message {
        let Some(from) = message.from else {
            return ignored("message_without_sender");
        };
        if from.is_bot {
            return ignored("message_from_bot");
        }
        let Some(text) = message.text else {
            return ignored("message_without_text");
        };
        let command_entity = if message.entities.is_empty() {
            CommandEntity::Unknown
        } else if message
            .entities
            .iter()
            .any(|e| e.kind == "bot_command" && e.offset == 0)
        {
            CommandEntity::AtStart
        } else {
            CommandEntity::Absent
        };
        let kind = message_kind(message.chat.id, message.message_id, text, command_entity);
        return event(from, kind);
    }
    if let Some(query) = update.callback_query {
        let Some(data) = query.data else {
            return ignored("callback_without_data");
        };
        let (chat_id, message_id) = match query.message {
            Some(m) => (Some(m.chat.id), Some(m.message_id)),
            None => (None, None),
        };
        return event(
            query.from,
            EventKind::Callback {
                query_id: query.id,
                chat_id,
                message_id,
                data,
            },
        );
    }
    if let Some(change) = update.my_chat_member {
        let status = match change.new_chat_member.status.as_str() {
            "kicked" | "left" => MemberStatus::Blocked,
            "member" | "administrator" | "creator" => MemberStatus::Unblocked,
            _ => return ignored("member_change_other"),
        };
        // Only a private chat's membership says whether this user can be written to.
        if change.chat.id != change.from.id {
            return ignored("member_change_group");
        }
        return event(
            change.from,
            EventKind::MemberChange {
                chat_id: change.chat.id,
                status,
            },
        );
    }
    let kind = if update.edited_message.is_some() {
        "edited_message"
    } else if update.channel_post.is_some() {
        "channel_post"
    } else if update.inline_query.is_some() {
        "inline_query"
    } else if update.pre_checkout_query.is_some() {
        "pre_checkout_query"
    } else if update.chat_member.is_some() {
        "chat_member"
    } else {
        "other"
    };
    ignored(kind)
}

/// What a message's entities say about a command at its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandEntity {
    /// A `bot_command` entity at offset 0.
    AtStart,
    /// Entities were sent, none of them a command at offset 0.
    Absent,
    /// The client sent no entities at all; a leading `/` decides.
    Unknown,
}

/// The event for a text message, shared by every transport so that a command reads the
/// same whether it came by webhook or over MTProto.
pub fn message_kind(
    chat_id: i64,
    message_id: i64,
    text: String,
    command_entity: CommandEntity,
) -> EventKind {
    match parse_command(&text, command_entity) {
        Some((name, args)) => EventKind::Command {
            chat_id,
            message_id,
            name,
            args,
        },
        None => EventKind::Text {
            chat_id,
            message_id,
            text,
        },
    }
}

/// `/Start@PayBot ref_77` → `("start", "ref_77")`.
fn parse_command(text: &str, command_entity: CommandEntity) -> Option<(String, String)> {
    let leading_slash = text.starts_with('/');
    let is_command = match command_entity {
        CommandEntity::AtStart => true,
        CommandEntity::Absent => false,
        CommandEntity::Unknown => leading_slash,
    };
    if !is_command {
        return None;
    }
    let rest = text.strip_prefix('/')?;
    let (head, args) = match rest.split_once(char::is_whitespace) {
        Some((head, args)) => (head, args.trim()),
        None => (rest, ""),
    };
    let name = head.split('@').next().unwrap_or_default();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    Some((name.to_ascii_lowercase(), args.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn norm(v: serde_json::Value) -> Normalized {
        normalize(v.to_string().as_bytes()).unwrap()
    }

    fn ev(n: Normalized) -> InboundEvent {
        match n {
            Normalized::Event(e) => *e,
            other => panic!("expected event, got {other:?}"),
        }
    }

    #[test]
    fn command_with_bot_suffix_and_args() {
        let e = ev(norm(
            json!({"update_id": 811, "message": {"message_id": 42, "date": 1,
            "from": {"id": 123, "is_bot": false, "first_name": "Ana", "username": "ana", "language_code": "pt"},
            "chat": {"id": 123, "type": "private"},
            "text": "/Start@PayBot  ref_77", "entities": [{"type": "bot_command", "offset": 0, "length": 13}]}}),
        ));
        assert_eq!(e.update_id, UpdateId(811));
        assert_eq!(e.from.language_code.as_deref(), Some("pt"));
        assert_eq!(
            e.kind,
            EventKind::Command {
                chat_id: 123,
                message_id: 42,
                name: "start".into(),
                args: "ref_77".into()
            }
        );
    }

    #[test]
    fn plain_text_and_slash_not_at_start() {
        let e = ev(norm(
            json!({"update_id": 1, "message": {"message_id": 2, "date": 1,
            "from": {"id": 5, "first_name": "B"}, "chat": {"id": 5, "type": "private"},
            "text": "hello /start"}}),
        ));
        assert!(matches!(e.kind, EventKind::Text { ref text, .. } if text == "hello /start"));
    }

    #[test]
    fn callback_query() {
        let e = ev(norm(
            json!({"update_id": 812, "callback_query": {"id": "q1", "chat_instance": "-5",
            "from": {"id": 7, "first_name": "C"},
            "message": {"message_id": 43, "date": 1, "chat": {"id": 7, "type": "private"}, "text": "x"},
            "data": "pay:5"}}),
        ));
        assert_eq!(
            e.kind,
            EventKind::Callback {
                query_id: "q1".into(),
                chat_id: Some(7),
                message_id: Some(43),
                data: "pay:5".into()
            }
        );
        assert_eq!(e.chat_id(), 7);
    }

    #[test]
    fn bot_blocked_by_user() {
        let e = ev(norm(
            json!({"update_id": 813, "my_chat_member": {"chat": {"id": 9, "type": "private"},
            "from": {"id": 9, "first_name": "D"}, "date": 1,
            "old_chat_member": {"status": "member", "user": {"id": 1, "is_bot": true, "first_name": "Bot"}},
            "new_chat_member": {"status": "kicked", "user": {"id": 1, "is_bot": true, "first_name": "Bot"}, "until_date": 0}}}),
        ));
        assert_eq!(
            e.kind,
            EventKind::MemberChange {
                chat_id: 9,
                status: MemberStatus::Blocked
            }
        );
    }

    #[test]
    fn unsupported_updates_are_ignored_not_rejected() {
        assert_eq!(
            norm(json!({"update_id": 5, "edited_message": {"message_id": 1}})),
            Normalized::Ignored {
                update_id: UpdateId(5),
                kind: "edited_message"
            }
        );
        assert!(matches!(
            norm(
                json!({"update_id": 6, "message": {"message_id": 1, "date": 1, "chat": {"id": 1, "type": "private"}, "from": {"id": 1, "first_name": "x"}, "sticker": {}}})
            ),
            Normalized::Ignored {
                kind: "message_without_text",
                ..
            }
        ));
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(matches!(
            normalize(b"{not json"),
            Err(UpdateError::NotJson(_))
        ));
        assert!(matches!(normalize(b"[]"), Err(UpdateError::NotAnUpdate(_))));
        assert!(matches!(
            normalize(br#"{"update_id": "x"}"#),
            Err(UpdateError::NotAnUpdate(_))
        ));
        assert!(matches!(
            normalize(br#"{"update_id": 1, "message": {"text": "hi"}}"#),
            Err(UpdateError::NotAnUpdate(_))
        ));
        // A shape error found before a syntax error: still not JSON.
        assert!(matches!(
            normalize(br#"{"update_id": "x", "message": {"#),
            Err(UpdateError::NotJson(_))
        ));
        assert!(matches!(normalize(b"[1,"), Err(UpdateError::NotJson(_))));
        // A repeated key is ambiguous; Telegram never sends one.
        assert!(matches!(
            normalize(br#"{"update_id": 1, "update_id": 2}"#),
            Err(UpdateError::NotAnUpdate(_))
        ));
        assert!(matches!(normalize(b""), Err(UpdateError::NotJson(_))));
    }

    #[test]
    fn event_round_trips_through_json() {
        let e = ev(norm(
            json!({"update_id": 1, "message": {"message_id": 2, "date": 1,
            "from": {"id": 5, "first_name": "B"}, "chat": {"id": 5, "type": "private"}, "text": "/balance"}}),
        ));
        let s = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<InboundEvent>(&s).unwrap(), e);
    }
}
