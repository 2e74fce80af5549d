//! Wiring: one consumer (plus a trimmer) per role, sharing a PostgreSQL pool and a Redis
//! connection, and the health endpoint.

use crate::admin::Admin;
use crate::db::{self, PgPool};
use crate::gauges::{GaugeSampler, SAMPLE_INTERVAL};
use crate::health::{self, HealthState};
use crate::metrics::Metrics;
use crate::payments::{OutboxPublisher, PaymentsHandler, Reconciler};
use crate::ratelimit::{Rate, UserLimiter};
use crate::sender::PgBlockedRecorder;
use crate::settings::{Role, Settings};
use crate::updates::topup::TopUp;
use crate::updates::{Conversation, UpdatesHandler};
use anyhow::Context;
use consumer::{Consumer, EntryHandler};
use redis::aio::ConnectionManager;
use sender::{BotApi, SenderHandler, TurnScript, CHAT_BURST};
use shared::callback::CallbackSigner;
use shared::redis_conn;
use shared::streams::{Keys, PAYMENTS_GROUP, SENDER_GROUP, SINGLE_PARTITION, UPDATES_GROUP};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

pub struct App {
    settings: Settings,
    listener: TcpListener,
    local_addr: SocketAddr,
    pool: PgPool,
    conn: ConnectionManager,
    metrics: Metrics,
    /// Cancelled after the shutdown signal: consumers stop reading, waits are cut short.
    stop: CancellationToken,
    /// Consumer and trimmer loops; futures do nothing until spawned by `run_until_stopped`.
    tasks: Vec<Task>,
    admin: Option<Admin>,
}

pub async fn build(settings: Settings) -> anyhow::Result<App> {
    let pool = db::pool(&settings.database_url, settings.database_pool_size)
        .context("Failed to configure the PostgreSQL pool")?;
    let conn = redis_conn::connect(&settings.redis).context("Failed to configure Redis")?;
    let listener = TcpListener::bind(settings.metrics_addr)
        .await
        .with_context(|| format!("Failed to bind {}", settings.metrics_addr))?;
    let local_addr = listener.local_addr()?;
    let metrics = Metrics::new();
    let keys = Keys::new(settings.redis.namespace.clone());
    let stop = CancellationToken::new();
    let mut tasks = Vec::new();

    let heleket = match &settings.heleket {
        Some(h) => Some(
            h.client()
                .context("Failed to build the Heleket client")?
                .with_observer(Arc::new(metrics.clone())),
        ),
        None => {
            tracing::warn!("HELEKET_API_KEY is not set: top-ups are off and the reconciler idles.");
            None
        }
    };
    let admin = settings.admin_token.clone().map(|token| Admin {
        token,
        pool: pool.clone(),
        conn: conn.clone(),
        keys: keys.clone(),
        heleket: heleket.clone(),
    });
    let limiter = UserLimiter::new(conn.clone(), keys.clone(), settings.rate_limits);
    if settings.roles.contains(&Role::Updates) {
        let topup = TopUp {
            pool: pool.clone(),
            conn: conn.clone(),
            keys: keys.clone(),
            client: heleket.clone(),
            settings: settings.payments.clone(),
            limiter: limiter.clone(),
            metrics: metrics.clone(),
        };
        let conversation = Conversation {
            topup,
            pool: pool.clone(),
            conn: conn.clone(),
            keys: keys.clone(),
            signer: CallbackSigner::from_bot_token(&settings.bot.token),
            limiter,
            metrics: metrics.clone(),
            admin_ids: settings.admin_ids.clone(),
        };
        let handler = UpdatesHandler::new(conversation, conn.clone(), keys.clone());
        let stream = keys.updates_stream(SINGLE_PARTITION);
        let consumer = consumer(
            &settings,
            &conn,
            &keys,
            stream,
            UPDATES_GROUP,
            handler,
            &metrics,
        )?;
        tasks.extend(consumer_loops(consumer, &stop));
    }
    if settings.roles.contains(&Role::Payments) {
        let outbox = Arc::new(OutboxPublisher::new(
            pool.clone(),
            conn.clone(),
            keys.clone(),
        ));
        let handler = PaymentsHandler {
            pool: pool.clone(),
            conn: conn.clone(),
            keys: keys.clone(),
            policy: settings.payments.credit_policy,
            metrics: metrics.clone(),
            outbox: Arc::clone(&outbox),
            crash_after_credit_commit: settings.failpoint.as_deref()
                == Some("crash_after_credit_commit"),
        };
        let stream = keys.payments_stream(SINGLE_PARTITION);
        let consumer = consumer(
            &settings,
            &conn,
            &keys,
            stream,
            PAYMENTS_GROUP,
            handler,
            &metrics,
        )?;
        tasks.extend(consumer_loops(consumer, &stop));
        tasks.push(Box::pin(outbox.run(stop.clone())));
    }
    let sampler = GaugeSampler {
        conn: conn.clone(),
        keys: keys.clone(),
        metrics: metrics.clone(),
        heleket: heleket.clone(),
        interval: SAMPLE_INTERVAL,
    };
    tasks.push(Box::pin(sampler.run(stop.clone())));
    if let (true, Some(client)) = (settings.roles.contains(&Role::Reconciler), heleket) {
        let reconciler = Reconciler {
            pool: pool.clone(),
            conn: conn.clone(),
            keys: keys.clone(),
            client,
            settings: settings.payments.clone(),
            metrics: metrics.clone(),
        };
        tasks.push(Box::pin(reconciler.run(stop.clone())));
    }
    if settings.roles.contains(&Role::Sender) {
        let bot = &settings.bot;
        let handler = SenderHandler {
            transport: BotApi::new(bot).context("Failed to build the Bot API client")?,
            blocked: PgBlockedRecorder { pool: pool.clone() },
            conn: conn.clone(),
            keys: keys.clone(),
            turn: TurnScript::default(),
            global_rate: Rate::per_second(bot.send_rate, bot.send_rate.ceil().max(1.0) as u32),
            chat_rate: Rate::per_second(bot.chat_send_rate, CHAT_BURST),
            metrics: metrics.sends.clone(),
            shutdown: stop.clone(),
        };
        let stream = keys.outbound_stream(SINGLE_PARTITION);
        let consumer = consumer(
            &settings,
            &conn,
            &keys,
            stream,
            SENDER_GROUP,
            handler,
            &metrics,
        )?;
        tasks.extend(consumer_loops(consumer, &stop));
    }
    Ok(App {
        settings,
        listener,
        local_addr,
        pool,
        conn,
        metrics,
        stop,
        tasks,
        admin,
    })
}

fn consumer<H: EntryHandler>(
    settings: &Settings,
    conn: &ConnectionManager,
    keys: &Keys,
    stream: String,
    group: &'static str,
    handler: H,
    metrics: &Metrics,
) -> anyhow::Result<Arc<Consumer<H>>> {
    let blocking = redis_conn::connect_for_blocking(&settings.redis, settings.consumer.block)?;
    Ok(Arc::new(Consumer::new(
        conn.clone(),
        blocking,
        stream.clone(),
        keys.dead_letter_stream(&stream),
        group,
        settings.consumer.clone(),
        Arc::new(handler),
        metrics.consumer.clone(),
    )))
}

fn consumer_loops<H: EntryHandler>(
    consumer: Arc<Consumer<H>>,
    stop: &CancellationToken,
) -> Vec<Task> {
    vec![
        Box::pin(Arc::clone(&consumer).run(stop.clone())),
        Box::pin(consumer.run_trimmer(stop.clone())),
    ]
}

impl App {
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Runs every role until `shutdown`; then stops reading, lets work in hand finish (up to
    /// the grace period) and returns.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let tracker = TaskTracker::new();
        for task in self.tasks {
            tracker.spawn(task);
        }
        let health_token = CancellationToken::new();
        let health_state = HealthState {
            pool: self.pool,
            conn: self.conn,
            metrics: self.metrics,
            admin: self.admin,
        };
        let health = tokio::spawn(health::serve(
            self.listener,
            health_state,
            health_token.clone(),
        ));
        tracing::info!(metrics_addr = %self.local_addr, roles = ?self.settings.roles, "Worker started.");
        shutdown.cancelled().await;
        self.stop.cancel();
        tracker.close();
        let drained = tokio::time::timeout(self.settings.shutdown_grace, tracker.wait()).await;
        health_token.cancel();
        let _ = health.await;
        match drained {
            Ok(()) => tracing::info!("Worker stopped cleanly."),
            Err(_) => tracing::warn!(
                "Grace period over; unfinished entries stay pending for another worker."
            ),
        }
        Ok(())
    }
}
