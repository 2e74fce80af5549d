//! Raw MTProto updates into the transport-neutral [`InboundEvent`]. Pure functions over TL
//! values, so every case is tested without a client or a network.

use grammers_client::tl;
use grammers_session::types::PeerId;
use shared::event::{EventKind, InboundEvent, MemberStatus, TelegramUser, UpdateId};
use shared::telegram_update::{message_kind, CommandEntity};
use std::collections::HashMap;

/// What became of one raw update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Converted {
    Event(Box<InboundEvent>),
    /// Dropped on purpose; the label is bounded, for a counter.
    Ignored(&'static str),
}

/// The users Telegram attached to an update: MTProto sends names and language only there,
/// not inside the update. grammers' `PeerMap` in production, a plain map in tests.
pub(crate) trait UserLookup {
    fn user(&self, id: i64) -> Option<&tl::types::User>;
}

impl UserLookup for HashMap<i64, tl::types::User> {
    fn user(&self, id: i64) -> Option<&tl::types::User> {
        self.get(&id)
    }
}

impl UserLookup for grammers_client::peer::PeerMap {
    fn user(&self, id: i64) -> Option<&tl::types::User> {
        match self.get(PeerId::user(id)?)? {
            grammers_client::peer::Peer::User(user) => match &user.raw {
                tl::enums::User::User(user) => Some(user),
                tl::enums::User::Empty(_) => None,
            },
            _ => None,
        }
    }
}

// MTProto updates carry no `update_id`, yet the workers dedupe on it. The id is therefore
// derived from the update itself, never from arrival order or a counter, so that a replay
// (catch-up after a crash before the commit, or a gap refilled by getDifference) yields the
// same id again. Each tag owns its own space of values:
// 1. new message: the message id, sequential per account in private chats, so unique to the bot;
// 2. callback query: Telegram's random 64-bit query id, of which the low 56 bits are kept
//    (a collision needs two queries equal in 56 random bits inside the dedupe window);
// 3. bot stopped/restarted: its qts, the account's secondary sequence number.
// Every tagged id is at least 2^56, far above Bot API update ids, so switching a deployment
// between the two transports cannot make one look like a duplicate of the other.
const TAG_NEW_MESSAGE: u64 = 1;
const TAG_CALLBACK: u64 = 2;
const TAG_BOT_STOPPED: u64 = 3;
const VALUE_BITS: u32 = 56;

fn update_id(tag: u64, value: u64) -> UpdateId {
    const MASK: u64 = (1 << VALUE_BITS) - 1;
    // tag < 128, so the result stays positive as an i64.
    UpdateId(((tag << VALUE_BITS) | (value & MASK)) as i64)
}

/// `update` as received from `UpdateStream::next_raw`, `users` as attached to it.
pub(crate) fn convert(update: &tl::enums::Update, users: &impl UserLookup) -> Converted {
    use tl::enums::Update as U;
    match update {
        U::NewMessage(update) => new_message(update, users),
        U::BotCallbackQuery(query) => callback(query, users),
        U::BotStopped(stopped) => bot_stopped(stopped, users),
        U::EditMessage(_) => Converted::Ignored("edited_message"),
        U::NewChannelMessage(_) => Converted::Ignored("channel_post"),
        U::EditChannelMessage(_) => Converted::Ignored("edited_channel_post"),
        U::BotInlineQuery(_) => Converted::Ignored("inline_query"),
        U::InlineBotCallbackQuery(_) => Converted::Ignored("inline_callback_query"),
        U::BotPrecheckoutQuery(_) => Converted::Ignored("pre_checkout_query"),
        U::ChatParticipant(_) | U::ChannelParticipant(_) => Converted::Ignored("chat_member"),
        _ => Converted::Ignored("other"),
    }
}

fn event(update_id: UpdateId, from: TelegramUser, kind: EventKind) -> Converted {
    Converted::Event(Box::new(InboundEvent {
        update_id,
        from,
        kind,
    }))
}

fn new_message(update: &tl::types::UpdateNewMessage, users: &impl UserLookup) -> Converted {
    let message = match &update.message {
        tl::enums::Message::Message(message) => message,
        tl::enums::Message::Service(_) => return Converted::Ignored("message_service"),
        tl::enums::Message::Empty(_) => return Converted::Ignored("message_empty"),
    };
    if message.out {
        return Converted::Ignored("message_outgoing");
    }
    let tl::enums::Peer::User(peer) = &message.peer_id else {
        return Converted::Ignored("message_not_private");
    };
    // Incoming private messages have carried no `from_id` since layer 119: the sender is
    // the peer itself.
    let sender_id = match &message.from_id {
        None => peer.user_id,
        Some(tl::enums::Peer::User(from)) => from.user_id,
        Some(_) => return Converted::Ignored("message_without_sender"),
    };
    let sender = users.user(sender_id);
    if sender.is_some_and(|u| u.bot) {
        return Converted::Ignored("message_from_bot");
    }
    if !is_text(message) {
        return Converted::Ignored("message_without_text");
    }
    let kind = message_kind(
        peer.user_id,
        i64::from(message.id),
        message.message.clone(),
        command_entity(message.entities.as_deref()),
    );
    event(
        update_id(TAG_NEW_MESSAGE, i64::from(message.id) as u64),
        telegram_user(sender_id, sender),
        kind,
    )
}

/// What the Bot API calls a text message. MTProto keeps a caption in the same `message`
/// field, so media other than a link preview makes it a captioned media message, which the
/// webhook path ignores too.
fn is_text(message: &tl::types::Message) -> bool {
    let plain = matches!(
        message.media,
        None | Some(tl::enums::MessageMedia::Empty) | Some(tl::enums::MessageMedia::WebPage(_))
    );
    plain && !message.message.is_empty()
}

/// Same rule as the webhook path: no entities at all leaves the decision to a leading `/`.
fn command_entity(entities: Option<&[tl::enums::MessageEntity]>) -> CommandEntity {
    match entities {
        None | Some([]) => CommandEntity::Unknown,
        Some(entities)
            if entities
                .iter()
                .any(|e| matches!(e, tl::enums::MessageEntity::BotCommand(c) if c.offset == 0)) =>
        {
            CommandEntity::AtStart
        }
        Some(_) => CommandEntity::Absent,
    }
}

fn callback(query: &tl::types::UpdateBotCallbackQuery, users: &impl UserLookup) -> Converted {
    let Some(data) = &query.data else {
        // Game buttons carry a short name instead of data; the bot has none.
        return Converted::Ignored("callback_without_data");
    };
    // Our own buttons are built from Strings, so anything else is not ours to act on.
    let Ok(data) = String::from_utf8(data.clone()) else {
        return Converted::Ignored("callback_data_not_utf8");
    };
    let kind = EventKind::Callback {
        // Decimal i64: the render side parses it back for setBotCallbackAnswer.
        query_id: query.query_id.to_string(),
        chat_id: PeerId::from(&query.peer).bot_api_dialog_id(),
        message_id: Some(i64::from(query.msg_id)),
        data,
    };
    event(
        update_id(TAG_CALLBACK, query.query_id as u64),
        telegram_user(query.user_id, users.user(query.user_id)),
        kind,
    )
}

/// MTProto's signal for what the Bot API reports as `my_chat_member` in a private chat.
fn bot_stopped(update: &tl::types::UpdateBotStopped, users: &impl UserLookup) -> Converted {
    let status = if update.stopped {
        MemberStatus::Blocked
    } else {
        MemberStatus::Unblocked
    };
    event(
        update_id(TAG_BOT_STOPPED, i64::from(update.qts) as u64),
        telegram_user(update.user_id, users.user(update.user_id)),
        EventKind::MemberChange {
            chat_id: update.user_id,
            status,
        },
    )
}

/// A user missing from the attached users (possible when Telegram sends a short update)
/// still produces the event, with an empty first name as the webhook path does when the
/// field is absent: losing a user's command would be worse than a missing name.
fn telegram_user(id: i64, user: Option<&tl::types::User>) -> TelegramUser {
    let Some(user) = user else {
        return TelegramUser {
            id,
            username: None,
            first_name: String::new(),
            last_name: None,
            language_code: None,
        };
    };
    // Users with only collectible usernames have `username` unset; the Bot API then reports
    // the first active one.
    let username = user.username.clone().or_else(|| {
        user.usernames.as_deref()?.iter().find_map(|u| {
            let tl::enums::Username::Username(u) = u;
            u.active.then(|| u.username.clone())
        })
    });
    TelegramUser {
        id,
        username,
        first_name: user.first_name.clone().unwrap_or_default(),
        last_name: user.last_name.clone(),
        language_code: user.lang_code.clone(),
    }
}

#[cfg(test)]
mod tests;
