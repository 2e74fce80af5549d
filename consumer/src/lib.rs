//! Redis Streams consumer groups: reading in batches, claiming orphans, dead-lettering,
//! trimming. Shared by the workers' roles and the MTProto gateway's sender.

mod backoff;
mod consumer;
mod metrics;
mod settings;
mod trim;

pub use backoff::Backoff;
pub use consumer::{Consumer, EntryContext, EntryHandler, Failure, StepOutcome, StreamError};
pub use metrics::ConsumerMetrics;
pub use settings::ConsumerSettings;
pub use trim::{trim_acknowledged, StreamId};
