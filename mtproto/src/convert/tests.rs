use super::*;
use crate::test_support::{text_message, user};

const ANA: i64 = 123;

fn users() -> HashMap<i64, tl::types::User> {
    HashMap::from([(ANA, user(ANA, "Ana", Some("ana"), Some("pt")))])
}

fn peer_user(user_id: i64) -> tl::enums::Peer {
    tl::types::PeerUser { user_id }.into()
}

/// An incoming private text message from `ANA`.
fn message(
    id: i32,
    text: &str,
    entities: Option<Vec<tl::enums::MessageEntity>>,
) -> tl::types::Message {
    text_message(ANA, id, text, entities)
}

fn new_message(message: tl::types::Message) -> tl::enums::Update {
    tl::types::UpdateNewMessage {
        message: tl::enums::Message::Message(message),
        pts: 10,
        pts_count: 1,
    }
    .into()
}

fn bot_command(offset: i32, length: i32) -> tl::enums::MessageEntity {
    tl::types::MessageEntityBotCommand { offset, length }.into()
}

fn bold(offset: i32, length: i32) -> tl::enums::MessageEntity {
    tl::types::MessageEntityBold { offset, length }.into()
}

fn ev(converted: Converted) -> InboundEvent {
    match converted {
        Converted::Event(e) => *e,
        other => panic!("expected an event, got {other:?}"),
    }
}

#[test]
fn command_with_bot_suffix_and_args() {
    let text = "/Start@PayBot  ref_77";
    let e = ev(convert(
        &new_message(message(42, text, Some(vec![bot_command(0, 13)]))),
        &users(),
    ));
    assert_eq!(e.update_id, UpdateId((1 << 56) | 42));
    assert_eq!(
        e.from,
        TelegramUser {
            id: ANA,
            username: Some("ana".into()),
            first_name: "Ana".into(),
            last_name: None,
            language_code: Some("pt".into()),
        }
    );
    assert_eq!(
        e.kind,
        EventKind::Command {
            chat_id: ANA,
            message_id: 42,
            name: "start".into(),
            args: "ref_77".into()
        }
    );
}

#[test]
fn plain_text_without_entities() {
    let e = ev(convert(&new_message(message(7, "hello", None)), &users()));
    assert_eq!(
        e.kind,
        EventKind::Text {
            chat_id: ANA,
            message_id: 7,
            text: "hello".into()
        }
    );
    // No entities at all: a leading slash decides, as on the webhook path.
    let e = ev(convert(
        &new_message(message(8, "/balance", None)),
        &users(),
    ));
    assert!(matches!(e.kind, EventKind::Command { ref name, .. } if name == "balance"));
}

#[test]
fn text_with_non_command_entities_is_text_even_with_a_slash() {
    let e = ev(convert(
        &new_message(message(9, "/start is bold here", Some(vec![bold(0, 6)]))),
        &users(),
    ));
    assert!(matches!(e.kind, EventKind::Text { ref text, .. } if text == "/start is bold here"));
    // A command entity that is not at the start does not make a command either.
    let e = ev(convert(
        &new_message(message(10, "say /start", Some(vec![bot_command(4, 6)]))),
        &users(),
    ));
    assert!(matches!(e.kind, EventKind::Text { .. }));
}

#[test]
fn sender_missing_from_attached_users_still_yields_the_event() {
    let e = ev(convert(
        &new_message(message(11, "hi", None)),
        &HashMap::new(),
    ));
    assert_eq!(e.from.id, ANA);
    assert_eq!(e.from.first_name, "");
    assert_eq!(e.chat_id(), ANA);
}

#[test]
fn callback_query() {
    let update: tl::enums::Update = tl::types::UpdateBotCallbackQuery {
        query_id: -5_123_456_789_012_345_678,
        user_id: ANA,
        peer: peer_user(ANA),
        msg_id: 43,
        chat_instance: -5,
        data: Some(b"pay:5".to_vec()),
        game_short_name: None,
    }
    .into();
    let e = ev(convert(&update, &users()));
    assert_eq!(
        e.kind,
        EventKind::Callback {
            query_id: "-5123456789012345678".into(),
            chat_id: Some(ANA),
            message_id: Some(43),
            data: "pay:5".into()
        }
    );
    let low_bits = (-5_123_456_789_012_345_678_i64 as u64) & ((1 << 56) - 1);
    assert_eq!(e.update_id, UpdateId(((2_u64 << 56) | low_bits) as i64));
    assert_eq!(e.from.first_name, "Ana");
}

#[test]
fn callback_with_non_utf8_data_is_ignored() {
    let update: tl::enums::Update = tl::types::UpdateBotCallbackQuery {
        query_id: 1,
        user_id: ANA,
        peer: peer_user(ANA),
        msg_id: 43,
        chat_instance: 0,
        data: Some(vec![0xff, 0xfe]),
        game_short_name: None,
    }
    .into();
    assert_eq!(
        convert(&update, &users()),
        Converted::Ignored("callback_data_not_utf8")
    );
}

#[test]
fn bot_stopped_and_restarted() {
    let stopped = |stopped, qts| -> tl::enums::Update {
        tl::types::UpdateBotStopped {
            user_id: ANA,
            date: 1,
            stopped,
            qts,
        }
        .into()
    };
    let e = ev(convert(&stopped(true, 77), &users()));
    assert_eq!(e.update_id, UpdateId((3 << 56) | 77));
    assert_eq!(
        e.kind,
        EventKind::MemberChange {
            chat_id: ANA,
            status: MemberStatus::Blocked
        }
    );
    let e = ev(convert(&stopped(false, 78), &users()));
    assert_eq!(e.update_id, UpdateId((3 << 56) | 78));
    assert_eq!(
        e.kind,
        EventKind::MemberChange {
            chat_id: ANA,
            status: MemberStatus::Unblocked
        }
    );
}

#[test]
fn replayed_update_keeps_its_id() {
    let update = new_message(message(42, "/start", None));
    let first = ev(convert(&update, &users()));
    let replay = ev(convert(&update, &HashMap::new()));
    assert_eq!(first.update_id, replay.update_id);
}

#[test]
fn outgoing_message_is_ignored() {
    let mut m = message(12, "sent by the bot", None);
    m.out = true;
    assert_eq!(
        convert(&new_message(m), &users()),
        Converted::Ignored("message_outgoing")
    );
}

#[test]
fn group_message_is_ignored() {
    let mut m = message(13, "/start", Some(vec![bot_command(0, 6)]));
    m.peer_id = tl::types::PeerChat { chat_id: 555 }.into();
    m.from_id = Some(peer_user(ANA));
    assert_eq!(
        convert(&new_message(m), &users()),
        Converted::Ignored("message_not_private")
    );
}

#[test]
fn message_from_a_bot_and_media_without_text_are_ignored() {
    let mut bots = users();
    bots.get_mut(&ANA).unwrap().bot = true;
    assert_eq!(
        convert(&new_message(message(14, "hi", None)), &bots),
        Converted::Ignored("message_from_bot")
    );
    let mut m = message(15, "a caption", None);
    m.media = Some(tl::enums::MessageMedia::Unsupported);
    assert_eq!(
        convert(&new_message(m), &users()),
        Converted::Ignored("message_without_text")
    );
    assert_eq!(
        convert(&new_message(message(16, "", None)), &users()),
        Converted::Ignored("message_without_text")
    );
}

#[test]
fn other_updates_are_ignored_with_a_label() {
    let edit: tl::enums::Update = tl::types::UpdateEditMessage {
        message: tl::enums::Message::Message(message(17, "x", None)),
        pts: 1,
        pts_count: 1,
    }
    .into();
    assert_eq!(
        convert(&edit, &users()),
        Converted::Ignored("edited_message")
    );
    assert_eq!(
        convert(&tl::enums::Update::Config, &users()),
        Converted::Ignored("other")
    );
}
