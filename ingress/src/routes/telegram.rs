use super::{append, read_body, State};
use crate::error::IngressError;
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName};
use hyper::Request;
use shared::secret::SecretString;
use shared::streams::{partition_for_chat, Keys, SINGLE_PARTITION};
use shared::telegram_update::{normalize, Normalized};
use std::borrow::Cow;
use subtle::ConstantTimeEq;
use tracing::Span;

const SECRET_HEADER: HeaderName = HeaderName::from_static("x-telegram-bot-api-secret-token");

/// The Bot API webhook: its secret and where its updates go.
pub(crate) struct Webhook {
    secret: SecretString,
    keys: Keys,
    /// Formatted once: every chat maps to this partition today.
    single_partition_stream: String,
}

impl Webhook {
    pub(crate) fn new(secret: SecretString, keys: Keys) -> Self {
        let single_partition_stream = keys.updates_stream(SINGLE_PARTITION);
        Self {
            secret,
            keys,
            single_partition_stream,
        }
    }

    fn stream(&self, partition: u16) -> Cow<'_, str> {
        if partition == SINGLE_PARTITION {
            Cow::Borrowed(&self.single_partition_stream)
        } else {
            Cow::Owned(self.keys.updates_stream(partition))
        }
    }
}

/// `Ok` only once Redis has the entry (or the update is one we acknowledge and drop).
pub(super) async fn webhook(
    state: &State,
    hook: &Webhook,
    req: Request<Incoming>,
) -> Result<(), IngressError> {
    check_secret(req.headers(), &hook.secret)?;
    let body = read_body(req.into_body(), state.max_body_bytes).await?;
    let event = match normalize(&body)? {
        Normalized::Event(event) => event,
        Normalized::Ignored { update_id, kind } => {
            Span::current().record("update_id", update_id.0);
            tracing::debug!(kind, "Update ignored.");
            state.metrics.update_ignored(kind);
            return Ok(());
        }
    };
    Span::current().record("update_id", event.update_id.0);
    let payload = serde_json::to_vec(&*event).map_err(IngressError::Encode)?;
    let stream = hook.stream(partition_for_chat(event.chat_id()));
    append(state, &stream, &payload).await
}

fn check_secret(headers: &HeaderMap, secret: &SecretString) -> Result<(), IngressError> {
    let given = headers
        .get(&SECRET_HEADER)
        .ok_or(IngressError::MissingSecret)?;
    // Constant time over the content; a length mismatch returns early, which reveals only the
    // length, and the secret's strength is in its content.
    if bool::from(given.as_bytes().ct_eq(secret.expose_secret().as_bytes())) {
        Ok(())
    } else {
        Err(IngressError::WrongSecret)
    }
}
