//! Connections that keep their prepared statements. A plain `query(sql)` costs a Parse and
//! Describe round trip, then Bind/Execute, then a Close, and PostgreSQL parses and plans the
//! text every time; here each connection prepares a statement once and reuses it.

use bb8_postgres::PostgresConnectionManager;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Error, GenericClient, NoTls, Row, Statement, Transaction};

/// Statements prepared on one connection, by their SQL text. Prepared statements outlive
/// a rolled-back transaction, so caching one prepared inside a transaction is sound.
#[derive(Default)]
pub struct StatementCache(Mutex<HashMap<String, Statement>>);

impl StatementCache {
    fn get(&self, sql: &str) -> Option<Statement> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(sql)
            .cloned()
    }

    fn insert(&self, sql: &str, statement: Statement) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(sql.to_owned(), statement);
    }
}

/// What the repositories run their SQL on: a pooled connection or a transaction on one.
pub trait Db: Send + Sync {
    type Client: GenericClient + Sync;

    fn client(&self) -> &Self::Client;
    fn statements(&self) -> &StatementCache;

    fn prepared(&self, sql: &str) -> impl Future<Output = Result<Statement, Error>> + Send {
        async move {
            if let Some(statement) = self.statements().get(sql) {
                return Ok(statement);
            }
            let statement = self.client().prepare(sql).await?;
            self.statements().insert(sql, statement.clone());
            Ok(statement)
        }
    }

    fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Vec<Row>, Error>> + Send {
        async move {
            let statement = self.prepared(sql).await?;
            self.client().query(&statement, params).await
        }
    }

    fn query_one(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Row, Error>> + Send {
        async move {
            let statement = self.prepared(sql).await?;
            self.client().query_one(&statement, params).await
        }
    }

    fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Option<Row>, Error>> + Send {
        async move {
            let statement = self.prepared(sql).await?;
            self.client().query_opt(&statement, params).await
        }
    }

    fn execute(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<u64, Error>> + Send {
        async move {
            let statement = self.prepared(sql).await?;
            self.client().execute(&statement, params).await
        }
    }
}

pub struct PgConn {
    client: Client,
    statements: StatementCache,
}

impl PgConn {
    pub async fn transaction(&mut self) -> Result<PgTransaction<'_>, Error> {
        let PgConn { client, statements } = self;
        Ok(PgTransaction {
            tx: client.transaction().await?,
            statements,
        })
    }

    pub async fn simple_query(&self, sql: &str) -> Result<(), Error> {
        self.client.simple_query(sql).await.map(|_| ())
    }
}

impl Db for PgConn {
    type Client = Client;

    fn client(&self) -> &Client {
        &self.client
    }

    fn statements(&self) -> &StatementCache {
        &self.statements
    }
}

pub struct PgTransaction<'a> {
    tx: Transaction<'a>,
    statements: &'a StatementCache,
}

impl PgTransaction<'_> {
    pub async fn commit(self) -> Result<(), Error> {
        self.tx.commit().await
    }

    pub async fn rollback(self) -> Result<(), Error> {
        self.tx.rollback().await
    }
}

impl<'a> Db for PgTransaction<'a> {
    type Client = Transaction<'a>;

    fn client(&self) -> &Transaction<'a> {
        &self.tx
    }

    fn statements(&self) -> &StatementCache {
        self.statements
    }
}

/// bb8's PostgreSQL manager, handing out connections with a statement cache each.
pub struct CachingManager(pub PostgresConnectionManager<NoTls>);

impl bb8::ManageConnection for CachingManager {
    type Connection = PgConn;
    type Error = Error;

    async fn connect(&self) -> Result<PgConn, Error> {
        Ok(PgConn {
            client: self.0.connect().await?,
            statements: StatementCache::default(),
        })
    }

    async fn is_valid(&self, conn: &mut PgConn) -> Result<(), Error> {
        self.0.is_valid(&mut conn.client).await
    }

    fn has_broken(&self, conn: &mut PgConn) -> bool {
        self.0.has_broken(&mut conn.client)
    }
}
