//! The outbound half: executes one [`OutboundAction`] and says what came of it.

use crate::classify::classify;
use crate::render::{render, Rendered};
use grammers_client::{Client, InvocationError};
use grammers_session::storages::ErasedSession;
use grammers_session::types::{PeerId, PeerRef};
use shared::outbound::{DeliveryOutcome, OutboundAction};
use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request, including grammers' single retry after an I/O error. Past it the outcome is
/// Unavailable and the sender's own backoff takes over; the request may still have reached
/// Telegram, as with a Bot API timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Bounds the memory of chats already logged as lacking an access hash.
const AMBIENT_LOG_LIMIT: usize = 10_000;

/// Cheap to clone; all clones share the bot's connections. Implements what the `sender`
/// crate's `Transport` needs (`execute`).
#[derive(Clone)]
pub struct MtprotoSender {
    client: Client,
    session: Arc<ErasedSession>,
    ambient_logged: Arc<Mutex<HashSet<i64>>>,
}

impl std::fmt::Debug for MtprotoSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MtprotoSender").finish_non_exhaustive()
    }
}

impl MtprotoSender {
    pub(crate) fn new(client: Client, session: Arc<ErasedSession>) -> Self {
        Self {
            client,
            session,
            ambient_logged: Arc::default(),
        }
    }

    /// `chat_id` is the Bot API dialog id (a user's id for a private chat).
    pub async fn execute(&self, chat_id: i64, action: &OutboundAction) -> DeliveryOutcome {
        let rendered = match render(action) {
            Ok(rendered) => rendered,
            Err(outcome) => return outcome,
        };
        match rendered {
            Rendered::AnswerCallback(request) => outcome(self.client.invoke(&request)).await,
            Rendered::Send(message) => match self.peer(chat_id).await {
                Ok(peer) => outcome(self.client.send_message(peer, message.into_input())).await,
                Err(outcome) => outcome,
            },
            Rendered::Edit {
                message_id,
                message,
            } => match self.peer(chat_id).await {
                Ok(peer) => {
                    outcome(
                        self.client
                            .edit_message(peer, message_id, message.into_input()),
                    )
                    .await
                }
                Err(outcome) => outcome,
            },
        }
    }

    /// The access hash cached in the session (grammers caches everyone who wrote to the
    /// bot or pressed its buttons, and the session outlives restarts). Without one the
    /// ambient reference (hash 0) is tried, which Telegram may accept from a bot; if it does
    /// not, the send fails with PEER_ID_INVALID, classified as Forbidden.
    pub(crate) async fn peer(&self, chat_id: i64) -> Result<PeerRef, DeliveryOutcome> {
        let Some(id) = PeerId::from_bot_api_dialog_id(chat_id) else {
            return Err(DeliveryOutcome::Rejected(format!(
                "chat_id {chat_id} is not a Telegram dialog id"
            )));
        };
        match self.session.peer_ref(id).await {
            Ok(Some(peer)) => Ok(peer),
            Ok(None) => {
                self.log_ambient_once(chat_id);
                Ok(id.to_ambient_ref())
            }
            Err(e) => Err(DeliveryOutcome::Unavailable(format!(
                "reading the session's peer cache failed: {e}"
            ))),
        }
    }

    fn log_ambient_once(&self, chat_id: i64) {
        let Ok(mut logged) = self.ambient_logged.lock() else {
            return;
        };
        if logged.len() >= AMBIENT_LOG_LIMIT {
            logged.clear();
        }
        if logged.insert(chat_id) {
            tracing::debug!(
                chat_id,
                "No access hash cached for this chat; trying the ambient one."
            );
        }
    }
}

async fn outcome<T>(request: impl Future<Output = Result<T, InvocationError>>) -> DeliveryOutcome {
    match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
        Ok(Ok(_)) => DeliveryOutcome::Delivered,
        Ok(Err(error)) => classify(&error),
        Err(_) => DeliveryOutcome::Unavailable(format!(
            "no answer from Telegram within {REQUEST_TIMEOUT:?}"
        )),
    }
}

#[cfg(test)]
mod tests;
