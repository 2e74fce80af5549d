//! Opening the session, signing the bot in and starting the update stream.

use crate::error::MtprotoError;
use crate::retry::IoRetryOnce;
use crate::sender::MtprotoSender;
use crate::updates::MtprotoUpdates;
use grammers_client::client::ClientConfiguration;
use grammers_client::{Client, InvocationError};
use grammers_mtsender::{ConnectionParams, SenderPool};
use grammers_session::storages::{ErasedSession, SqliteSession};
use grammers_session::updates::UpdatesLike;
use shared::secret::SecretString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Authorizing (on a fresh session also generating the auth key and migrating to the bot's
/// home DC) takes a few round trips; grammers puts no timeout on connecting, so without this
/// bound a black-holed network would hang startup.
const SIGN_IN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stopping pool may take before its task is aborted. The runner connects inline,
/// so it only notices the quit request once a pending connect attempt ends.
const QUIT_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct MtprotoSettings {
    pub api_id: i32,
    pub api_hash: SecretString,
    pub bot_token: SecretString,
    /// SQLite file holding the auth key (a secret, like the token), the cached access hashes
    /// and the update state. One process at a time: two connections with one auth key break
    /// each other.
    pub session_path: PathBuf,
}

/// Signs the bot in (only when the session is not authorized yet) and starts the update
/// stream, catching up on what happened since the last [`MtprotoUpdates::commit`].
pub async fn connect(
    settings: &MtprotoSettings,
) -> Result<(MtprotoSender, MtprotoUpdates), MtprotoError> {
    connect_within(settings, SIGN_IN_TIMEOUT).await
}

pub(crate) async fn connect_within(
    settings: &MtprotoSettings,
    limit: Duration,
) -> Result<(MtprotoSender, MtprotoUpdates), MtprotoError> {
    let session = SqliteSession::open(&settings.session_path)
        .await
        .map_err(|e| MtprotoError::Session {
            path: settings.session_path.clone(),
            source: Box::new(e),
        })?;
    let pool = Pool::start(Arc::new(session), settings.api_id);
    let signed_in = match tokio::time::timeout(limit, sign_in(&pool.client, settings)).await {
        Ok(result) => result,
        Err(_) => Err(MtprotoError::Timeout {
            step: "signing in",
            limit,
        }),
    };
    if let Err(e) = signed_in {
        pool.stop().await;
        return Err(e);
    }
    let sender = MtprotoSender::new(pool.client.clone(), Arc::clone(&pool.session));
    let updates = MtprotoUpdates::start(pool, true).await?;
    Ok((sender, updates))
}

async fn sign_in(client: &Client, settings: &MtprotoSettings) -> Result<(), MtprotoError> {
    let authorized = client
        .is_authorized()
        .await
        .map_err(|e| telegram_error("checking the authorization", e))?;
    if authorized {
        return Ok(());
    }
    client
        .bot_sign_in(
            settings.bot_token.expose_secret(),
            settings.api_hash.expose_secret(),
        )
        .await
        .map_err(|e| telegram_error("signing the bot in", e))?;
    tracing::info!("Bot signed in; the session file now holds its authorization.");
    Ok(())
}

fn telegram_error(step: &'static str, error: InvocationError) -> MtprotoError {
    match error {
        InvocationError::Rpc(rpc) if rpc.is("ACCESS_TOKEN_*") || rpc.is("API_ID_*") => {
            MtprotoError::Credentials { name: rpc.name }
        }
        other => MtprotoError::Telegram {
            step,
            source: Box::new(other),
        },
    }
}

/// The running sender pool and what hangs off it.
pub(crate) struct Pool {
    pub(crate) client: Client,
    pub(crate) session: Arc<ErasedSession>,
    pub(crate) updates: mpsc::Receiver<UpdatesLike>,
    pub(crate) runner: JoinHandle<()>,
}

impl Pool {
    pub(crate) fn start(session: Arc<SqliteSession>, api_id: i32) -> Self {
        let params = ConnectionParams {
            device_model: "paystream".into(),
            app_version: env!("CARGO_PKG_VERSION").into(),
            retry_policy: Box::new(IoRetryOnce::default()),
            ..Default::default()
        };
        let SenderPool {
            runner,
            handle,
            updates,
        } = SenderPool::with_configuration(session, api_id, params);
        let session = Arc::clone(&handle.session);
        let client = Client::with_configuration(
            handle,
            ClientConfiguration {
                // Access hashes of everyone who writes to the bot land in the session, so
                // they can be written to after a restart.
                auto_cache_peers: true,
            },
        );
        Self {
            client,
            session,
            updates,
            runner: tokio::spawn(runner.run()),
        }
    }

    pub(crate) async fn stop(self) {
        stop_runner(&self.client, self.runner).await;
    }
}

pub(crate) async fn stop_runner(client: &Client, mut runner: JoinHandle<()>) {
    client.disconnect();
    if tokio::time::timeout(QUIT_GRACE, &mut runner).await.is_err() {
        tracing::warn!("MTProto connection pool did not stop in time; aborted.");
        runner.abort();
    }
}

#[cfg(test)]
mod tests;
