use super::*;
use crate::client::Pool;
use crate::test_support::{closed_port, session_at};
use shared::outbound::{Button, Keyboard};

async fn offline_sender(dir: &tempfile::TempDir) -> (MtprotoSender, Pool) {
    let session = session_at(&dir.path().join("bot.session"), closed_port()).await;
    let pool = Pool::start(Arc::new(session), 1);
    let sender = MtprotoSender::new(pool.client.clone(), Arc::clone(&pool.session));
    (sender, pool)
}

#[tokio::test]
async fn unsendable_actions_are_rejected_without_a_request() {
    let dir = tempfile::tempdir().unwrap();
    let (sender, pool) = offline_sender(&dir).await;
    let answer = OutboundAction::AnswerCallback {
        query_id: "not-a-number".into(),
        text: None,
    };
    assert!(matches!(
        sender.execute(7, &answer).await,
        DeliveryOutcome::Rejected(_)
    ));
    let send = OutboundAction::SendMessage {
        text: "hi".into(),
        keyboard: None,
    };
    assert!(matches!(
        sender.execute(0, &send).await,
        DeliveryOutcome::Rejected(_)
    ));
    pool.stop().await;
}

#[tokio::test]
async fn unreachable_telegram_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let (sender, pool) = offline_sender(&dir).await;
    let send = OutboundAction::SendMessage {
        text: "hi".into(),
        keyboard: Some(Keyboard {
            rows: vec![vec![Button::Callback {
                text: "Pay".into(),
                data: "pay:5".into(),
            }]],
        }),
    };
    assert!(matches!(
        sender.execute(7, &send).await,
        DeliveryOutcome::Unavailable(_)
    ));
    let answer = OutboundAction::AnswerCallback {
        query_id: "-42".into(),
        text: Some("ok".into()),
    };
    assert!(matches!(
        sender.execute(7, &answer).await,
        DeliveryOutcome::Unavailable(_)
    ));
    pool.stop().await;
    // A stopped pool reads as unavailable too, not as a refusal.
    assert!(matches!(
        sender.execute(7, &send).await,
        DeliveryOutcome::Unavailable(_)
    ));
}

#[tokio::test]
async fn uncached_chat_falls_back_to_the_ambient_reference() {
    let dir = tempfile::tempdir().unwrap();
    let (sender, pool) = offline_sender(&dir).await;
    let peer = sender.peer(456).await.unwrap();
    assert_eq!(peer.id, PeerId::user(456).unwrap());
    assert_eq!(peer.auth.hash(), 0);
    pool.stop().await;
}

/// The `sender` crate's `Transport` and the gateway's update source need `Send` futures;
/// type-checked only.
#[allow(dead_code)]
fn futures_are_send(
    sender: &MtprotoSender,
    mut updates: crate::MtprotoUpdates,
    settings: &crate::MtprotoSettings,
    action: &OutboundAction,
) {
    fn send<T: Send>(_: T) {}
    fn shared<T: Send + Sync + 'static>() {}
    shared::<MtprotoSender>();
    send(sender.execute(1, action));
    send(updates.next());
    send(updates.commit());
    send(updates.disconnect());
    send(crate::connect(settings));
}
