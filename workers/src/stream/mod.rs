//! Redis Streams consumer groups: reading, claiming orphans, dead-lettering, trimming.

mod backoff;
mod consumer;
mod trim;

pub use backoff::Backoff;
pub use consumer::{Consumer, EntryContext, EntryHandler, Failure, StepOutcome, StreamError};
pub use trim::{trim_acknowledged, StreamId};
