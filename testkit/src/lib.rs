//! Real dependencies for tests. Redis: a private `redis-server` per test (it starts in
//! milliseconds, and a test can stop and restart it). PostgreSQL: a fresh database per test on
//! the server that `scripts/services` started (`DATABASE_URL` names it).

pub mod heleket;
mod postgres;
mod redis_server;

pub use postgres::TestDatabase;
pub use redis_server::TestRedis;

/// A random name, for databases, namespaces and consumer groups.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// A free TCP port on loopback. The port is released before use, so another process could
/// take it in between; on a test machine that race is rare enough.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}
