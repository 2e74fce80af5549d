//! Offline stand-ins for Telegram: a session whose home DC is a local port.

use grammers_client::tl;
use grammers_session::storages::SqliteSession;
use grammers_session::types::DcOption;
use grammers_session::Session;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::path::Path;

/// A session file whose home DC (2, the default) lives at 127.0.0.1:`port`.
pub(crate) async fn session_at(path: &Path, port: u16) -> SqliteSession {
    let session = SqliteSession::open(path).await.unwrap();
    session.set_home_dc_id(2).await.unwrap();
    session
        .set_dc_option(&DcOption {
            id: 2,
            ipv4: SocketAddrV4::new(Ipv4Addr::LOCALHOST, port),
            ipv6: SocketAddrV6::new(Ipv6Addr::LOCALHOST, port, 0, 0),
            auth_key: None,
        })
        .await
        .unwrap();
    session
}

/// A port nothing listens on, so connecting is refused at once.
pub(crate) fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    listener.local_addr().unwrap().port()
}

/// A user as Telegram attaches it to updates, with access hash 99.
pub(crate) fn user(
    id: i64,
    first_name: &str,
    username: Option<&str>,
    lang: Option<&str>,
) -> tl::types::User {
    tl::types::User {
        is_self: false,
        contact: false,
        mutual_contact: false,
        deleted: false,
        bot: false,
        bot_chat_history: false,
        bot_nochats: false,
        verified: false,
        restricted: false,
        min: false,
        bot_inline_geo: false,
        support: false,
        scam: false,
        apply_min_photo: false,
        fake: false,
        bot_attach_menu: false,
        premium: false,
        attach_menu_enabled: false,
        bot_can_edit: false,
        close_friend: false,
        stories_hidden: false,
        stories_unavailable: false,
        contact_require_premium: false,
        bot_business: false,
        bot_has_main_app: false,
        bot_forum_view: false,
        bot_forum_can_manage_topics: false,
        bot_can_manage_bots: false,
        bot_guestchat: false,
        bot_guard: false,
        id,
        access_hash: Some(99),
        first_name: Some(first_name.into()),
        last_name: None,
        username: username.map(Into::into),
        phone: None,
        photo: None,
        status: None,
        bot_info_version: None,
        restriction_reason: None,
        bot_inline_placeholder: None,
        lang_code: lang.map(Into::into),
        emoji_status: None,
        usernames: None,
        stories_max_id: None,
        color: None,
        profile_color: None,
        bot_active_users: None,
        bot_verification_icon: None,
        send_paid_messages_stars: None,
        linked_community_id: None,
    }
}

/// An incoming private text message from `from`, as Telegram sends it since layer 119.
pub(crate) fn text_message(
    from: i64,
    id: i32,
    text: &str,
    entities: Option<Vec<tl::enums::MessageEntity>>,
) -> tl::types::Message {
    tl::types::Message {
        out: false,
        mentioned: false,
        media_unread: false,
        silent: false,
        post: false,
        from_scheduled: false,
        legacy: false,
        edit_hide: false,
        pinned: false,
        noforwards: false,
        invert_media: false,
        offline: false,
        video_processing_pending: false,
        paid_suggested_post_stars: false,
        paid_suggested_post_ton: false,
        id,
        from_id: None,
        from_boosts_applied: None,
        from_rank: None,
        peer_id: tl::types::PeerUser { user_id: from }.into(),
        saved_peer_id: None,
        fwd_from: None,
        via_bot_id: None,
        via_business_bot_id: None,
        guestchat_via_from: None,
        reply_to: None,
        date: 1_700_000_000,
        message: text.into(),
        media: None,
        reply_markup: None,
        entities,
        views: None,
        forwards: None,
        replies: None,
        edit_date: None,
        post_author: None,
        grouped_id: None,
        reactions: None,
        restriction_reason: None,
        ttl_period: None,
        quick_reply_shortcut_id: None,
        effect: None,
        factcheck: None,
        report_delivery_until_date: None,
        paid_message_stars: None,
        suggested_post: None,
        schedule_repeat_period: None,
        summary_from_language: None,
        rich_message: None,
    }
}
