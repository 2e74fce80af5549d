//! The MTProto gateway (`ingress mtproto`): one active copy per bot turns MTProto updates
//! into the same events the webhook produces and delivers the outbound stream over MTProto.
//! Everything here works on two small boundaries, an [`UpdateSource`] and a
//! [`sender::Transport`], so it is tested without Telegram; the MTProto side of both lives
//! in the `mtproto` crate.

mod blocked;
mod gateway;
mod http;
pub mod lease;
mod metrics;
mod relay;
mod run;
mod settings;
mod source;
mod telegram;

pub use blocked::StreamBlockedRecorder;
pub use gateway::{Connector, Gateway, GatewayConfig};
pub use http::{serve, HttpState};
pub use metrics::GatewayMetrics;
pub use run::run;
pub use settings::{GatewaySettings, MtprotoCredentials};
pub use source::{Received, SourceError, UpdateSource};
