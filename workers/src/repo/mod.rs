//! Every SQL statement of the workers lives here, in named functions. Callers own the
//! transaction boundary.

pub mod outbox;
pub mod payments;
pub mod shop;
pub mod stats;
pub mod users;

pub use crate::db::DbError as RepoError;
