use hyper::StatusCode;
use shared::heleket::webhook::WebhookError;
use shared::telegram_update::UpdateError;
use std::time::Duration;

/// Why a request was refused.
///
/// Display strings are safe to log: none holds the secret or any part of the body. That is why
/// the parse errors keep only their kind and drop serde's message, which may quote the body.
#[derive(thiserror::Error)]
pub enum IngressError {
    #[error("no such route")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed { allow: &'static str },
    #[error("missing secret token header")]
    MissingSecret,
    #[error("wrong secret token")]
    WrongSecret,
    #[error("body over the {limit}-byte limit")]
    BodyTooLarge { limit: usize },
    #[error("failed to read the request body")]
    BodyRead(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("body is not JSON")]
    NotJson,
    #[error("body is not a Telegram Update")]
    NotAnUpdate,
    #[error("payments are not configured (no HELEKET_API_KEY)")]
    PaymentsNotConfigured,
    /// `sender` is the address that was judged, or `unreadable` (an address is not a secret,
    /// and the operator needs it to fix an allow-list).
    #[error("sender {sender} is not allowed to post payment webhooks")]
    SenderNotAllowed { sender: String },
    #[error("payment webhook has no sign")]
    MissingSign,
    /// Also what a webhook signed with another merchant's key gets: webhooks name no merchant.
    #[error("payment webhook sign does not match")]
    BadSign,
    /// Signed correctly but not a payment event; the reason names a field, never a value.
    #[error("body is not a payment webhook: {0}")]
    NotAWebhook(String),
    #[error("failed to encode the event")]
    Encode(#[source] serde_json::Error),
    #[error("failed to encode the metrics")]
    Metrics(#[source] prometheus::Error),
    #[error("failed to append the update to the stream")]
    StreamAppend(#[source] redis::RedisError),
    #[error("Redis did not answer within {0:?}")]
    StreamTimeout(Duration),
}

impl IngressError {
    /// A short fixed reason: the response body and the `reason` field of the refusal log.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotFound => "not found",
            Self::MethodNotAllowed { .. } => "method not allowed",
            Self::MissingSecret => "missing secret token",
            Self::WrongSecret => "wrong secret token",
            Self::BodyTooLarge { .. } => "body too large",
            Self::BodyRead(_) => "unreadable body",
            Self::NotJson => "body is not JSON",
            Self::NotAnUpdate => "body is not a Telegram Update",
            Self::PaymentsNotConfigured => "payments not configured",
            Self::SenderNotAllowed { .. } => "sender not allowed",
            Self::MissingSign => "missing sign",
            Self::BadSign => "bad sign",
            Self::NotAWebhook(_) => "body is not a payment webhook",
            Self::Encode(_) | Self::Metrics(_) => "internal error",
            Self::StreamAppend(_) | Self::StreamTimeout(_) => "storage unavailable, retry",
        }
    }
}

impl From<UpdateError> for IngressError {
    fn from(e: UpdateError) -> Self {
        match e {
            UpdateError::NotJson(_) => Self::NotJson,
            UpdateError::NotAnUpdate(_) => Self::NotAnUpdate,
        }
    }
}

impl From<WebhookError> for IngressError {
    fn from(e: WebhookError) -> Self {
        match e {
            WebhookError::NotJson(_) => Self::NotJson,
            WebhookError::MissingSign => Self::MissingSign,
            WebhookError::BadSign => Self::BadSign,
            WebhookError::Malformed(reason) => Self::NotAWebhook(reason),
        }
    }
}

/// The contract's failure table, in one place.
pub fn status_for(error: &IngressError) -> StatusCode {
    match error {
        IngressError::NotFound | IngressError::PaymentsNotConfigured => StatusCode::NOT_FOUND,
        IngressError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
        IngressError::MissingSecret
        | IngressError::WrongSecret
        | IngressError::MissingSign
        | IngressError::BadSign => StatusCode::UNAUTHORIZED,
        IngressError::SenderNotAllowed { .. } => StatusCode::FORBIDDEN,
        IngressError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        IngressError::BodyRead(_)
        | IngressError::NotJson
        | IngressError::NotAnUpdate
        | IngressError::NotAWebhook(_) => StatusCode::BAD_REQUEST,
        IngressError::Encode(_) | IngressError::Metrics(_) => StatusCode::INTERNAL_SERVER_ERROR,
        IngressError::StreamAppend(_) | IngressError::StreamTimeout(_) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

/// The whole `source()` chain, so `error.cause_chain = ?e` shows why Redis failed.
impl std::fmt::Debug for IngressError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")?;
        let mut cause = std::error::Error::source(self);
        while let Some(e) = cause {
            write!(f, "\nCaused by:\n\t{e}")?;
            cause = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_do_not_carry_the_body() {
        let e = IngressError::from(UpdateError::NotAnUpdate(
            "invalid type: string \"card 4111\"".into(),
        ));
        assert_eq!(status_for(&e), StatusCode::BAD_REQUEST);
        assert!(!format!("{e:?}").contains("4111"));
    }

    #[test]
    fn webhook_errors_follow_the_contract() {
        let not_json = serde_json::from_str::<serde_json::Value>("{").unwrap_err();
        for (e, status) in [
            (WebhookError::NotJson(not_json), StatusCode::BAD_REQUEST),
            (WebhookError::MissingSign, StatusCode::UNAUTHORIZED),
            (WebhookError::BadSign, StatusCode::UNAUTHORIZED),
            (
                WebhookError::Malformed("uuid is missing".into()),
                StatusCode::BAD_REQUEST,
            ),
        ] {
            assert_eq!(status_for(&IngressError::from(e)), status);
        }
        assert_eq!(
            status_for(&IngressError::SenderNotAllowed {
                sender: "127.0.0.1".into()
            }),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status_for(&IngressError::PaymentsNotConfigured),
            StatusCode::NOT_FOUND
        );
    }
}
