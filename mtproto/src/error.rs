use std::path::PathBuf;
use std::time::Duration;

/// grammers' errors travel as opaque sources so that no grammers type is part of our API;
/// the chain still prints whole. None of them contains the bot token or the api_hash: those
/// are only ever sent inside a request, never formatted.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum MtprotoError {
    #[error("failed to open the MTProto session file {path}")]
    Session {
        path: PathBuf,
        #[source]
        source: BoxError,
    },
    /// Telegram refused the credentials; retrying cannot help.
    #[error(
        "Telegram refused the bot credentials ({name}); check the bot token, api_id and api_hash"
    )]
    Credentials { name: String },
    #[error("Telegram request failed while {step}")]
    Telegram {
        step: &'static str,
        #[source]
        source: BoxError,
    },
    #[error("no answer from Telegram within {limit:?} while {step}")]
    Timeout { step: &'static str, limit: Duration },
    /// Fetching updates (usually a gap being filled with getDifference) failed. The stream
    /// stays usable and retries by itself after a growing pause; count these.
    #[error("fetching updates from Telegram failed")]
    Updates {
        #[source]
        source: BoxError,
    },
    #[error("saving the update state to the session failed")]
    Commit {
        #[source]
        source: BoxError,
    },
    /// The connection pool has stopped (after `disconnect`, or it died): no more updates.
    #[error("the connection to Telegram is closed")]
    Closed,
}
