//! The PostgreSQL pool and the schema migration.

mod prepared;

pub use prepared::{Db, PgConn, PgTransaction};

use bb8_postgres::PostgresConnectionManager;
use prepared::CachingManager;
use shared::secret::SecretString;
use std::str::FromStr;
use std::time::Duration;
use tokio_postgres::NoTls;

pub type PgPool = bb8::Pool<CachingManager>;

const SCHEMA: &str = include_str!("../../../schema.sql");
/// Any constant both copies agree on: it serialises concurrent migrations.
const MIGRATION_LOCK_KEY: i64 = 0x7061_7973_7472_6d31;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("DATABASE_URL is not a valid PostgreSQL connection string")]
    BadUrl,
    #[error("database error: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("database pool: {0}")]
    Pool(String),
}

impl From<bb8::RunError<tokio_postgres::Error>> for DbError {
    fn from(e: bb8::RunError<tokio_postgres::Error>) -> Self {
        match e {
            bb8::RunError::User(e) => DbError::Postgres(e),
            bb8::RunError::TimedOut => DbError::Pool("timed out waiting for a connection".into()),
        }
    }
}

fn pg_config(url: &SecretString) -> Result<tokio_postgres::Config, DbError> {
    let mut config =
        tokio_postgres::Config::from_str(url.expose_secret()).map_err(|_| DbError::BadUrl)?;
    config.connect_timeout(Duration::from_secs(5));
    config.application_name("paystream-worker");
    Ok(config)
}

/// The pool is built without connecting, so a worker starts (not ready) while PostgreSQL is
/// down and connects when it returns.
pub fn pool(url: &SecretString, size: u32) -> Result<PgPool, DbError> {
    let manager = CachingManager(PostgresConnectionManager::new(pg_config(url)?, NoTls));
    Ok(bb8::Pool::builder()
        .max_size(size)
        .connection_timeout(Duration::from_secs(5))
        .build_unchecked(manager))
}

/// Applies `schema.sql` in one transaction under an advisory lock: idempotent, and safe when
/// several workers run it at once.
pub async fn migrate(url: &SecretString) -> Result<(), DbError> {
    let (mut client, connection) = pg_config(url)?.connect(NoTls).await?;
    let driver = tokio::spawn(connection);
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await?;
    tx.batch_execute(SCHEMA).await?;
    tx.commit().await?;
    drop(client);
    let _ = driver.await;
    Ok(())
}

pub async fn ping(pool: &PgPool) -> bool {
    match pool.get().await {
        Ok(conn) => conn.simple_query("SELECT 1").await.is_ok(),
        Err(_) => false,
    }
}
