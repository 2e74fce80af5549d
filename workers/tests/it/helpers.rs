use reqwest::StatusCode;
use serde_json::Value;
use shared::config::{Env, RedisSettings};
use shared::secret::SecretString;
use shared::streams::Keys;
use sim::heleket::{HeleketSim, HeleketSimConfig};
use sim::{RecordedCall, SimUser, TelegramSim};
use std::net::SocketAddr;
use std::time::Duration;
use testkit::{TestDatabase, TestRedis};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const BOT_TOKEN: &str = "123456:TEST-token";
pub const SECRET: &str = "test_webhook_secret";
pub const WAIT: Duration = Duration::from_secs(20);
pub const MERCHANT: &str = "3f1c6a2e-7b54-4d2a-9c1e-5a8b7d6e4f30";
pub const HELEKET_KEY: &str = "test-payment-api-key";

/// The whole system for one test: its own Redis, database, namespace and simulator.
pub struct TestSystem {
    pub redis: TestRedis,
    pub db: TestDatabase,
    pub sim: TelegramSim,
    pub heleket: HeleketSim,
    pub keys: Keys,
    pub ingress_url: String,
    pub http: reqwest::Client,
    ingress_stop: CancellationToken,
    workers: Vec<RunningWorker>,
}

pub struct RunningWorker {
    stop: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl RunningWorker {
    pub async fn stop(self) {
        self.stop.cancel();
        self.task.await.expect("worker task").expect("worker ran");
    }
}

impl TestSystem {
    /// Everything up, with one worker running every role.
    pub async fn start() -> TestSystem {
        let mut sys = TestSystem::start_without_workers().await;
        sys.spawn_worker(&[]).await;
        sys
    }

    pub async fn start_without_workers() -> TestSystem {
        shared::telemetry::init_for_tests();
        let redis = TestRedis::start().await.expect("redis");
        let db = TestDatabase::create().await.expect("database");
        workers::db::migrate(&SecretString::new(db.url()))
            .await
            .expect("migrate");
        let sim = TelegramSim::start("127.0.0.1:0".parse().unwrap())
            .await
            .expect("sim");
        let mut heleket_config = HeleketSimConfig::new(MERCHANT, SecretString::new(HELEKET_KEY));
        heleket_config.webhook_backoff = Duration::from_millis(50);
        let heleket = HeleketSim::start("127.0.0.1:0".parse().unwrap(), heleket_config)
            .await
            .expect("heleket sim");
        let namespace = testkit::unique_name("ns");
        let mut settings = ingress::Settings::new(
            RedisSettings::for_url(redis.url(), namespace.clone()),
            ingress::TelegramInput::Webhook {
                secret: SecretString::new(SECRET),
            },
        );
        settings.heleket = Some(ingress::HeleketInput {
            api_key: SecretString::new(HELEKET_KEY),
            sources: shared::config::WebhookSources::default(),
        });
        let app = ingress::build(settings).await.expect("ingress");
        let ingress_url = format!("http://{}", app.local_addr());
        let ingress_stop = CancellationToken::new();
        tokio::spawn(app.run_until_stopped(ingress_stop.clone()));
        TestSystem {
            redis,
            db,
            sim,
            heleket,
            keys: Keys::new(namespace),
            ingress_url,
            http: reqwest::Client::new(),
            ingress_stop,
            workers: Vec::new(),
        }
    }

    /// The environment a worker of this system runs with: fast claim and block times, and
    /// Telegram's limits raised out of the way unless a test overrides them.
    pub fn worker_env(&self, overrides: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut vars: Vec<(String, String)> = [
            ("DATABASE_URL", self.db.url()),
            ("REDIS_URL", self.redis.url()),
            ("PAYSTREAM_NAMESPACE", self.keys.namespace().to_owned()),
            ("TELEGRAM_BOT_TOKEN", BOT_TOKEN.to_owned()),
            ("TELEGRAM_API_URL", self.sim.api_url()),
            ("WORKER_METRICS_ADDR", "127.0.0.1:0".to_owned()),
            ("STREAM_BLOCK_MS", "100".to_owned()),
            ("STREAM_CLAIM_IDLE_MS", "1000".to_owned()),
            ("STREAM_CLAIM_INTERVAL_MS", "200".to_owned()),
            ("STREAM_TRIM_INTERVAL_MS", "200".to_owned()),
            ("STREAM_MAX_DELIVERIES", "3".to_owned()),
            ("TELEGRAM_SEND_RATE", "1000".to_owned()),
            ("TELEGRAM_CHAT_SEND_RATE", "100".to_owned()),
            ("RATE_LIMIT_PER_MINUTE", "600".to_owned()),
            ("RATE_LIMIT_BURST", "100".to_owned()),
            ("RATE_LIMIT_EXPENSIVE_PER_MINUTE", "600".to_owned()),
            ("RATE_LIMIT_EXPENSIVE_BURST", "100".to_owned()),
            ("SHUTDOWN_GRACE_SECS", "5".to_owned()),
            ("HELEKET_MERCHANT_ID", MERCHANT.to_owned()),
            ("HELEKET_API_KEY", HELEKET_KEY.to_owned()),
            ("HELEKET_API_URL", self.heleket.api_url()),
            ("HELEKET_RETRY_BASE_MS", "10".to_owned()),
            ("HELEKET_RETRY_MAX_MS", "50".to_owned()),
            ("HELEKET_TIMEOUT_MS", "2000".to_owned()),
            ("PUBLIC_URL", self.ingress_url.clone()),
            ("RECONCILE_AFTER_SECS", "3600".to_owned()),
            ("RECONCILE_INTERVAL_SECS", "3600".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (k, v) in overrides {
            vars.retain(|(key, _)| key != k);
            vars.push(((*k).to_owned(), (*v).to_owned()));
        }
        vars
    }

    /// Starts one more in-process worker running every role (or `--roles` via "ROLES").
    pub async fn spawn_worker(&mut self, overrides: &[(&str, &str)]) -> SocketAddr {
        let vars = self.worker_env(overrides);
        let roles = vars
            .iter()
            .find(|(k, _)| k == "ROLES")
            .map(|(_, v)| v.clone());
        let env = Env::from_pairs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let settings = workers::Settings::from_env(&env, roles.as_deref()).expect("settings");
        let app = workers::build(settings).await.expect("worker");
        let metrics_addr = app.local_addr();
        let stop = CancellationToken::new();
        let task = tokio::spawn(app.run_until_stopped(stop.clone()));
        self.workers.push(RunningWorker { stop, task });
        metrics_addr
    }

    pub fn take_worker(&mut self) -> RunningWorker {
        self.workers.remove(0)
    }

    pub async fn post_update(&self, update: &Value) -> StatusCode {
        self.http
            .post(format!("{}/telegram/webhook", self.ingress_url))
            .header("X-Telegram-Bot-Api-Secret-Token", SECRET)
            .json(update)
            .send()
            .await
            .expect("ingress answers")
            .status()
    }

    pub async fn say(&self, update_id: i64, user: &SimUser, text: &str) {
        let status = self
            .post_update(&sim::updates::message_text(update_id, user, text))
            .await;
        assert_eq!(status, StatusCode::OK, "ingress refused update {update_id}");
    }

    /// Waits until `chat` has received `n` messages, then a little longer to catch extras.
    pub async fn wait_for_sends(&self, chat: i64, n: usize) -> Vec<RecordedCall> {
        self.sim
            .wait_until(WAIT, |_| self.sim.sends_to(chat).len() >= n)
            .await
            .expect("replies arrive");
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.sim.sends_to(chat)
    }

    /// Puts an entry on a stream directly, as a producer would; returns its id.
    pub async fn append_raw(&self, stream: &str, payload: &str) -> String {
        let mut conn = self.redis().await;
        redis::cmd("XADD")
            .arg(stream)
            .arg("*")
            .arg(shared::streams::PAYLOAD_FIELD)
            .arg(payload)
            .query_async(&mut conn)
            .await
            .unwrap()
    }

    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        self.redis.connection().await.expect("redis connection")
    }

    pub async fn finish(mut self) {
        for w in self.workers.drain(..) {
            w.stop().await;
        }
        self.ingress_stop.cancel();
        self.sim.clone().shutdown().await;
        self.heleket.clone().shutdown().await;
        self.db.drop_database().await.expect("drop database");
    }
}

pub fn text_of(call: &RecordedCall) -> &str {
    call.params["text"].as_str().unwrap_or_default()
}

pub fn user(id: i64) -> SimUser {
    SimUser::new(id, "Ana").with_username("ana")
}

pub async fn stream_len(conn: &mut redis::aio::MultiplexedConnection, stream: &str) -> usize {
    redis::cmd("XLEN")
        .arg(stream)
        .query_async(conn)
        .await
        .unwrap()
}
