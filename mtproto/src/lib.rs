//! Telegram over MTProto with grammers-client. The only crate that sees grammers types:
//! everything it exposes is ours (events, outbound actions, delivery outcomes).
//!
//! [`connect`] signs the bot in and returns the two halves: [`MtprotoSender`] executes
//! outbound actions, [`MtprotoUpdates`] yields inbound events and commits how far they were
//! durably handled.

mod classify;
mod client;
mod commit_state;
mod convert;
mod error;
mod render;
mod retry;
mod sender;
#[cfg(test)]
mod test_support;
mod updates;

pub use client::{connect, MtprotoSettings};
pub use convert::Converted;
pub use error::MtprotoError;
pub use sender::MtprotoSender;
pub use updates::{MtprotoUpdates, StreamIncidents};
