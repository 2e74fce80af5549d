//! End-to-end tests: the real ingress, real workers, real PostgreSQL and Redis, and the
//! Telegram simulator as the outside world. Run through `scripts/test`.

mod admin;
mod conversation;
mod gateway;
mod helpers;
mod metrics;
mod payments;
mod process;
mod rate_limits;
mod reliability;
mod scaling;
mod sending;
mod shop;
mod streams;
