//! The Heleket payment gateway (see `shared/reference/heleket.md`): signing, webhook
//! verification, and the API client and its types.

pub mod breaker;
pub mod client;
pub mod sign;
pub mod types;
pub mod webhook;
