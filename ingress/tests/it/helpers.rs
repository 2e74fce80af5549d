use ingress::{HeleketInput, Settings, TelegramInput};
use redis::streams::StreamRangeReply;
use shared::config::{RedisSettings, WebhookSources};
use shared::event::InboundEvent;
use shared::heleket::webhook::WebhookEvent;
use shared::secret::SecretString;
use shared::streams::{Keys, PAYLOAD_FIELD};
use std::net::SocketAddr;
use std::time::Duration;
use testkit::TestRedis;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const SECRET: &str = "test_secret-123";
pub const SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";

pub struct TestApp {
    pub addr: SocketAddr,
    pub keys: Keys,
    pub redis: TestRedis,
    pub client: reqwest::Client,
    pub shutdown: CancellationToken,
    pub server: JoinHandle<anyhow::Result<()>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    shared::telemetry::init_for_tests();
    let redis = TestRedis::start().await.expect("redis-server starts");
    let namespace = testkit::unique_name("ns");
    let mut redis_settings = RedisSettings::for_url(redis.url(), namespace.clone());
    // Short, so outage tests do not wait long for each 503.
    redis_settings.response_timeout = Duration::from_millis(500);
    redis_settings.connect_timeout = Duration::from_millis(300);
    let mut settings = Settings::new(
        redis_settings,
        TelegramInput::Webhook {
            secret: SecretString::new(SECRET),
        },
    );
    configure(&mut settings);
    let app = ingress::build(settings).await.expect("ingress builds");
    let addr = app.local_addr();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    TestApp {
        addr,
        keys: Keys::new(namespace),
        redis,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
        shutdown,
        server,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn post_update(&self, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.client
            .post(self.url("/telegram/webhook"))
            .header(SECRET_HEADER, SECRET)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    /// Every payload on the (single) updates stream, oldest first.
    pub async fn enqueued(&self) -> Vec<InboundEvent> {
        self.stream_payloads(&self.keys.updates_stream(0))
            .await
            .iter()
            .map(|payload| serde_json::from_str(payload).expect("payload is an InboundEvent"))
            .collect()
    }

    /// Every payload on the (single) payments stream, oldest first.
    pub async fn payments_enqueued(&self) -> Vec<WebhookEvent> {
        self.stream_payloads(&self.keys.payments_stream(0))
            .await
            .iter()
            .map(|payload| serde_json::from_str(payload).expect("payload is a WebhookEvent"))
            .collect()
    }

    async fn stream_payloads(&self, stream: &str) -> Vec<String> {
        let mut conn = self.redis.connection().await.expect("redis connection");
        let reply: StreamRangeReply = redis::cmd("XRANGE")
            .arg(stream)
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .expect("XRANGE");
        reply
            .ids
            .iter()
            .map(|entry| entry.get(PAYLOAD_FIELD).expect("payload field"))
            .collect()
    }

    /// Posts a Heleket webhook body, with `X-Forwarded-For` when given.
    pub async fn post_heleket(
        &self,
        body: impl Into<reqwest::Body>,
        forwarded_for: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(self.url("/heleket/webhook"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(list) = forwarded_for {
            request = request.header("x-forwarded-for", list);
        }
        request.send().await.expect("request sent")
    }

    pub async fn metrics_text(&self) -> String {
        self.get("/metrics").await.text().await.unwrap()
    }

    /// Cancels the token and waits for `run_until_stopped`, failing if it takes over `limit`.
    pub async fn stop_within(self, limit: Duration) -> Duration {
        let started = std::time::Instant::now();
        self.shutdown.cancel();
        tokio::time::timeout(limit, self.server)
            .await
            .expect("ingress stops in time")
            .expect("server task joins")
            .expect("server returns Ok");
        started.elapsed()
    }
}

/// Payments on, verified with the test vectors' key; `allowed` empty admits any sender.
pub fn heleket_input(allowed: &[&str], trusted_proxies: &[&str]) -> Option<HeleketInput> {
    let ips = |list: &[&str]| list.iter().map(|ip| ip.parse().expect("an IP")).collect();
    Some(HeleketInput {
        api_key: SecretString::new(testkit::heleket::API_KEY),
        sources: WebhookSources {
            allowed: ips(allowed),
            trusted_proxies: ips(trusted_proxies),
        },
    })
}

pub fn start_update(update_id: i64, chat_id: i64) -> serde_json::Value {
    serde_json::json!({
        "update_id": update_id,
        "message": {
            "message_id": 42, "date": 1,
            "from": {"id": chat_id, "is_bot": false, "first_name": "Ana", "language_code": "pt"},
            "chat": {"id": chat_id, "type": "private"},
            "text": "/start ref_7",
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}]
        }
    })
}

/// A hand-written HTTP/1.1 exchange, for what reqwest will not do: declare a length and send
/// no body, send chunks, or stop half-way.
pub struct RawConn(pub TcpStream);

impl RawConn {
    pub async fn open(addr: SocketAddr) -> Self {
        Self(TcpStream::connect(addr).await.expect("connect"))
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.0.write_all(bytes).await.expect("write");
    }

    /// Reads until the server closes; returns the status code and the whole response.
    pub async fn response(&mut self) -> (u16, String) {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), self.0.read_to_end(&mut buf));
        // A reset after the response still leaves the response in `buf`.
        let _ = read.await.expect("response within 5s");
        let text = String::from_utf8_lossy(&buf).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {text:?}"));
        (status, text)
    }
}

pub fn webhook_head(content_length: Option<usize>) -> String {
    let length = match content_length {
        Some(n) => format!("Content-Length: {n}\r\n"),
        None => "Transfer-Encoding: chunked\r\n".to_owned(),
    };
    format!(
        "POST /telegram/webhook HTTP/1.1\r\nHost: x\r\n{SECRET_HEADER}: {SECRET}\r\n\
         Content-Type: application/json\r\nConnection: close\r\n{length}\r\n"
    )
}
