use tokio_postgres::NoTls;

/// A database of its own for one test, created on the server named by `DATABASE_URL` and
/// dropped by `drop_database` (or left for inspection when a test fails).
pub struct TestDatabase {
    admin_url: String,
    name: String,
}

impl TestDatabase {
    /// Creates an empty database. The schema is applied by the code under test
    /// (`worker migrate`), exactly as in production.
    pub async fn create() -> anyhow::Result<Self> {
        let admin_url = std::env::var("DATABASE_URL").map_err(|_| {
            anyhow::anyhow!("DATABASE_URL is not set; run the tests through scripts/test")
        })?;
        let name = crate::unique_name("t");
        let (client, connection) = tokio_postgres::connect(&admin_url, NoTls).await?;
        tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await?;
        Ok(Self { admin_url, name })
    }

    /// The URL of this test's database.
    pub fn url(&self) -> String {
        let (base, query) = match self.admin_url.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (self.admin_url.as_str(), None),
        };
        let server = base.rsplit_once('/').map(|(s, _)| s).unwrap_or(base);
        match query {
            Some(q) => format!("{server}/{}?{q}", self.name),
            None => format!("{server}/{}", self.name),
        }
    }

    pub async fn client(&self) -> anyhow::Result<tokio_postgres::Client> {
        let (client, connection) = tokio_postgres::connect(&self.url(), NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    }

    pub async fn drop_database(self) -> anyhow::Result<()> {
        let (client, connection) = tokio_postgres::connect(&self.admin_url, NoTls).await?;
        tokio::spawn(connection);
        client
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ))
            .await?;
        Ok(())
    }
}
