//! The consumer-group workers: roles `updates` and `sender`, the schema migration, and the
//! metrics/health endpoint.

pub mod admin;
pub mod app;
pub mod db;
pub mod gauges;
mod health;
pub mod metrics;
pub mod payments;
pub mod ratelimit;
pub mod repo;
pub mod sender;
pub mod settings;
pub mod texts;
pub mod updates;

pub use app::{build, App};
pub use settings::{Role, Settings};
