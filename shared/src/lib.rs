//! Code every paystream process shares: settings, the messages that travel on the streams,
//! Redis plumbing, telemetry and shutdown.

pub mod callback;
pub mod config;
pub mod event;
pub mod gcra;
pub mod heleket;
pub mod http_serve;
pub mod money;
pub mod outbound;
pub mod redis_conn;
pub mod secret;
pub mod shutdown;
pub mod streams;
pub mod telegram_update;
pub mod telemetry;
