use super::State;
use crate::error::IngressError;
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::{Body as _, Incoming};
use hyper::header::{HeaderMap, HeaderName};
use hyper::Request;
use shared::secret::SecretString;
use shared::streams::{partition_for_chat, Keys, PAYLOAD_FIELD, SINGLE_PARTITION};
use shared::telegram_update::{normalize, Normalized};
use std::borrow::Cow;
use std::time::Instant;
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

async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, IngressError> {
    // With a Content-Length the hint is exact: refuse before reading a byte. Chunked bodies
    // have no useful hint, so `Limited` stops them once they pass the cap.
    if body.size_hint().lower() > limit as u64 {
        return Err(IngressError::BodyTooLarge { limit });
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(IngressError::BodyTooLarge { limit }),
        Err(e) => Err(IngressError::BodyRead(e)),
    }
}

async fn append(state: &State, stream: &str, payload: &[u8]) -> Result<(), IngressError> {
    let mut conn = state.redis.clone();
    let mut xadd = redis::cmd("XADD");
    xadd.arg(stream).arg("*").arg(PAYLOAD_FIELD).arg(payload);
    let started = Instant::now();
    let reply = tokio::time::timeout(state.redis_timeout, xadd.query_async::<()>(&mut conn)).await;
    state.metrics.stream_append(started.elapsed());
    match reply {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(IngressError::StreamAppend(e)),
        Err(_elapsed) => Err(IngressError::StreamTimeout(state.redis_timeout)),
    }
}
