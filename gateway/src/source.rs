//! The receiving half of a Telegram transport, as the gateway sees it.

use shared::event::InboundEvent;
use std::future::Future;

/// One update, already in the shape the webhook path produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    Event(Box<InboundEvent>),
    /// Nothing for the workers; `kind` is a bounded label for the counter.
    Ignored(&'static str),
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Updates may have been skipped (a gap the transport could not fill); receiving goes on.
    #[error("update gap: {0}")]
    Gap(String),
    /// The connection is gone; the session must be rebuilt.
    #[error("connection lost: {0}")]
    Connection(String),
}

/// Updates in order, with a position that survives restarts: after a crash the source
/// resumes from the last `commit`, so anything received but not committed comes again.
pub trait UpdateSource: Send {
    fn next(&mut self) -> impl Future<Output = Result<Received, SourceError>> + Send;

    /// Persists the position. The gateway calls it only once everything received so far is
    /// on the stream, so a crash replays rather than loses.
    fn commit(&mut self) -> impl Future<Output = Result<(), SourceError>> + Send;

    /// Ends the session (a final commit is the caller's business).
    fn close(self) -> impl Future<Output = ()> + Send;
}
