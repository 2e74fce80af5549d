use super::*;
use crate::client::Pool;
use crate::sender::MtprotoSender;
use crate::test_support::{closed_port, session_at, text_message, user};
use grammers_client::tl;
use grammers_session::storages::SqliteSession;
use grammers_session::types::PeerId;
use grammers_session::Session;
use shared::event::{EventKind, MemberStatus};

const ANA: i64 = 123;
const ANA_HASH: i64 = 99;

fn ana() -> tl::enums::User {
    user(ANA, "Ana", None, Some("pt")).into()
}

fn start_command(id: i32, pts: i32) -> tl::enums::Update {
    let command = tl::types::MessageEntityBotCommand {
        offset: 0,
        length: 6,
    };
    tl::types::UpdateNewMessage {
        message: text_message(ANA, id, "/start", Some(vec![command.into()])).into(),
        pts,
        pts_count: 1,
    }
    .into()
}

fn bot_stopped(qts: i32) -> tl::enums::Update {
    tl::types::UpdateBotStopped {
        user_id: ANA,
        date: 1_700_000_001,
        stopped: true,
        qts,
    }
    .into()
}

/// What Telegram pushes over the socket: one container with users attached.
fn pushed(updates: Vec<tl::enums::Update>) -> UpdatesLike {
    UpdatesLike::Updates(
        tl::types::Updates {
            updates,
            users: vec![ana()],
            chats: Vec::new(),
            date: 1_700_000_001,
            // No seq: the container is applied without a seq check.
            seq: 0,
        }
        .into(),
    )
}

fn event(converted: Converted) -> shared::event::InboundEvent {
    match converted {
        Converted::Event(e) => *e,
        other => panic!("expected an event, got {other:?}"),
    }
}

/// The whole inbound path offline: pushed updates go through grammers' message box and our
/// relay, pump and converter; commit writes the session; a closed connection turns into a
/// counted incident and a fetch error, since the gap cannot be filled without Telegram.
#[tokio::test]
async fn pushed_updates_commit_and_a_reset_without_telegram() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bot.session");
    let mut pool = Pool::start(Arc::new(session_at(&path, closed_port()).await), 1);
    let (push, from_telegram) = mpsc::channel(8);
    pool.updates = from_telegram;
    let session = Arc::clone(&pool.session);
    let sender = MtprotoSender::new(pool.client.clone(), Arc::clone(&session));
    let mut updates = MtprotoUpdates::start(pool, false).await.unwrap();

    push.send(pushed(vec![start_command(42, 10), bot_stopped(77)]))
        .await
        .unwrap();
    let first = event(updates.next().await.unwrap());
    assert_eq!(first.from.first_name, "Ana");
    assert!(matches!(first.kind, EventKind::Command { ref name, .. } if name == "start"));
    let second = event(updates.next().await.unwrap());
    assert_eq!(
        second.kind,
        EventKind::MemberChange {
            chat_id: ANA,
            status: MemberStatus::Blocked
        }
    );

    // Nothing is persisted until the caller commits.
    assert_eq!(session.updates_state().await.unwrap().pts, 0);
    updates.commit().await.unwrap();
    let state = session.updates_state().await.unwrap();
    assert_eq!((state.pts, state.qts), (10, 77));

    // Ana's access hash came with the update and is what a send uses.
    let peer = sender.peer(ANA).await.unwrap();
    assert_eq!(peer.auth.hash(), ANA_HASH);

    push.send(UpdatesLike::ConnectionClosed).await.unwrap();
    let error = tokio::time::timeout(Duration::from_secs(10), updates.next())
        .await
        .expect("the failed gap fetch is reported")
        .unwrap_err();
    assert!(matches!(error, MtprotoError::Updates { .. }), "{error:?}");
    assert_eq!(
        updates.incidents(),
        StreamIncidents {
            connection_resets: 1,
            malformed_updates: 0,
            fetch_errors: 1
        }
    );

    updates.disconnect().await;
    drop((sender, session));

    // After a restart the session still knows where to resume and how to reach Ana.
    let reopened = SqliteSession::open(&path).await.unwrap();
    let state = reopened.updates_state().await.unwrap();
    assert_eq!((state.pts, state.qts), (10, 77));
    let peer = reopened
        .peer_ref(PeerId::user(ANA).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(peer.auth.hash(), ANA_HASH);
}

#[tokio::test]
async fn next_after_disconnect_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bot.session");
    let pool = Pool::start(Arc::new(session_at(&path, closed_port()).await), 1);
    let mut updates = MtprotoUpdates::start(pool, false).await.unwrap();
    // The pool quits (as on `disconnect`, or if it died); the stream must end, not hang.
    updates.client.disconnect();
    let closed = tokio::time::timeout(Duration::from_secs(10), updates.next())
        .await
        .expect("the stream ends once the pool is gone");
    assert!(matches!(closed, Err(MtprotoError::Closed)), "{closed:?}");
}
