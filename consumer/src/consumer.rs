//! One consumer of one stream in one consumer group.
//!
//! Guarantees: an entry is acknowledged only after its handler succeeded (at-least-once);
//! entries left pending by a dead consumer are claimed after `claim_idle`; an entry that
//! fails `max_deliveries` times, or cannot be decoded, moves to the dead-letter stream with
//! the reason; the stream is trimmed only below what every group acknowledged.

use crate::{trim_acknowledged, Backoff, ConsumerMetrics, ConsumerSettings};
use redis::aio::ConnectionManager;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamPendingCountReply, StreamReadReply};
use shared::streams::PAYLOAD_FIELD;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Why a handler did not finish an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Will never succeed (bad data, refused by Telegram): dead-letter it now.
    Permanent(String),
    /// May succeed later (a dependency is down): leave it pending; it is retried after
    /// `claim_idle`, up to `max_deliveries` times.
    Transient(String),
}

#[derive(Debug, Clone)]
pub struct EntryContext {
    pub entry_id: String,
    pub deliveries: u64,
}

/// What a role does with the entries of its stream.
pub trait EntryHandler: Send + Sync + 'static {
    type Item: Send + 'static;
    /// Bounded label for metrics: `updates`, `sender`.
    const ROLE: &'static str;

    fn decode(&self, payload: &str) -> Result<Self::Item, String>;
    /// Entries with the same key are handled one after another, in stream order; different
    /// keys run concurrently.
    fn order_key(item: &Self::Item) -> i64;
    fn handle(
        &self,
        item: Self::Item,
        ctx: EntryContext,
    ) -> impl Future<Output = Result<(), Failure>> + Send;

    /// Handlers that apply a whole read at once (one transaction for many entries) set this
    /// and override `handle_batch`; they get every entry of a read in stream order.
    const BATCHED: bool = false;

    fn handle_batch(
        &self,
        items: Vec<(Self::Item, EntryContext)>,
    ) -> impl Future<Output = Vec<(String, Result<(), Failure>)>> + Send {
        async move {
            let mut results = Vec::with_capacity(items.len());
            for (item, ctx) in items {
                let id = ctx.entry_id.clone();
                results.push((id, self.handle(item, ctx).await));
            }
            results
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepOutcome {
    /// Entries were read or claimed (and each acknowledged, dead-lettered or left pending).
    Processed(usize),
    Idle,
}

pub struct Consumer<H: EntryHandler> {
    conn: ConnectionManager,
    blocking_conn: ConnectionManager,
    stream: String,
    dead_letters: String,
    group: String,
    name: String,
    settings: ConsumerSettings,
    handler: Arc<H>,
    metrics: ConsumerMetrics,
    next_claim: std::sync::Mutex<Instant>,
}

struct Entry {
    id: String,
    payload: Option<String>,
    deliveries: u64,
}

impl<H: EntryHandler> Consumer<H> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        conn: ConnectionManager,
        blocking_conn: ConnectionManager,
        stream: String,
        dead_letters: String,
        group: &str,
        settings: ConsumerSettings,
        handler: Arc<H>,
        metrics: ConsumerMetrics,
    ) -> Self {
        let name = format!(
            "{}-{}-{}",
            shared::telemetry::hostname(),
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        Self {
            conn,
            blocking_conn,
            stream,
            dead_letters,
            group: group.to_owned(),
            name,
            settings,
            handler,
            metrics,
            next_claim: std::sync::Mutex::new(Instant::now()),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Creates the group (reading from the stream's start, so entries appended before the
    /// first worker existed are not skipped). Idempotent.
    pub async fn ensure_group(&self) -> Result<(), StreamError> {
        let mut conn = self.conn.clone();
        let created: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.stream)
            .arg(&self.group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match created {
            Err(e) if e.code() != Some("BUSYGROUP") => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Reads and handles until `token` is cancelled. Work in hand is finished before return;
    /// anything not acknowledged stays pending and is claimed by another consumer.
    pub async fn run(self: Arc<Self>, token: CancellationToken) {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut group_ready = false;
        while !token.is_cancelled() {
            let step = async {
                if !group_ready {
                    self.ensure_group().await?;
                }
                self.step().await
            };
            match step.await {
                Ok(_) => {
                    group_ready = true;
                    backoff.reset();
                }
                Err(e) => {
                    group_ready = false;
                    tracing::warn!(
                        stream = %self.stream, group = %self.group,
                        error.message = %e, "Stream step failed, backing off."
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(backoff.next_delay()) => {}
                        _ = token.cancelled() => {}
                    }
                }
            }
        }
        tracing::info!(stream = %self.stream, consumer = %self.name, "Consumer stopped.");
    }

    /// Claims orphans when due, otherwise reads new entries (blocking up to `block`).
    pub async fn step(&self) -> Result<StepOutcome, StreamError> {
        let claim_due = {
            let mut next = self.next_claim.lock().unwrap_or_else(|p| p.into_inner());
            if Instant::now() >= *next {
                *next = Instant::now() + self.settings.claim_interval;
                true
            } else {
                false
            }
        };
        if claim_due {
            let claimed = self.claim_orphans().await?;
            if !claimed.is_empty() {
                let n = claimed.len();
                self.process(claimed).await?;
                return Ok(StepOutcome::Processed(n));
            }
        }
        let fresh = self.read_new().await?;
        if fresh.is_empty() {
            return Ok(StepOutcome::Idle);
        }
        let n = fresh.len();
        self.process(fresh).await?;
        Ok(StepOutcome::Processed(n))
    }

    /// Steps until idle; for tests and for draining.
    pub async fn drain(&self) -> Result<usize, StreamError> {
        let mut total = 0;
        while let StepOutcome::Processed(n) = self.step().await? {
            total += n;
        }
        Ok(total)
    }

    /// Makes the next `step` look for orphans regardless of the interval.
    pub fn claim_now(&self) {
        *self.next_claim.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    async fn read_new(&self) -> Result<Vec<Entry>, StreamError> {
        let mut conn = self.blocking_conn.clone();
        let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(&self.group)
            .arg(&self.name)
            .arg("COUNT")
            .arg(self.settings.batch_size)
            .arg("BLOCK")
            .arg(u64::try_from(self.settings.block.as_millis()).unwrap_or(u64::MAX))
            .arg("STREAMS")
            .arg(&self.stream)
            .arg(">")
            .query_async(&mut conn)
            .await?;
        let ids = reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .collect::<Vec<_>>();
        Ok(ids.into_iter().map(|id| to_entry(id, 1)).collect())
    }

    /// `XAUTOCLAIM`s entries idle longer than `claim_idle`, with their delivery counts.
    async fn claim_orphans(&self) -> Result<Vec<Entry>, StreamError> {
        let mut conn = self.conn.clone();
        let min_idle = u64::try_from(self.settings.claim_idle.as_millis()).unwrap_or(u64::MAX);
        let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(&self.name)
            .arg(min_idle)
            .arg("0-0")
            .arg("COUNT")
            .arg(self.settings.batch_size)
            .query_async(&mut conn)
            .await?;
        if reply.claimed.is_empty() {
            return Ok(Vec::new());
        }
        // XAUTOCLAIM does not say how often each entry was delivered; XPENDING does.
        let first = &reply.claimed[0].id;
        let last = &reply.claimed[reply.claimed.len() - 1].id;
        let pending: StreamPendingCountReply = redis::cmd("XPENDING")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(first)
            .arg(last)
            .arg(reply.claimed.len())
            .arg(&self.name)
            .query_async(&mut conn)
            .await?;
        let deliveries: HashMap<String, u64> = pending
            .ids
            .into_iter()
            .map(|p| (p.id, p.times_delivered as u64))
            .collect();
        self.metrics.claimed(H::ROLE, reply.claimed.len());
        Ok(reply
            .claimed
            .into_iter()
            .map(|id| {
                let n = deliveries.get(&id.id).copied().unwrap_or(1);
                to_entry(id, n)
            })
            .collect())
    }

    async fn process(&self, entries: Vec<Entry>) -> Result<(), StreamError> {
        // Entries per order key, keys in order of first appearance.
        let mut groups: Vec<Vec<(H::Item, EntryContext)>> = Vec::new();
        let mut index: HashMap<i64, usize> = HashMap::new();
        let mut dead: Vec<(Entry, String)> = Vec::new();
        for entry in entries {
            if entry.deliveries > self.settings.max_deliveries {
                let reason = self.last_failure(&entry.id).await.unwrap_or_else(|| {
                    format!("not acknowledged after {} deliveries", entry.deliveries - 1)
                });
                dead.push((entry, reason));
                continue;
            }
            let decoded = match entry.payload.as_deref() {
                Some(p) => self.handler.decode(p),
                None => Err(format!("entry has no {PAYLOAD_FIELD:?} field")),
            };
            match decoded {
                Ok(item) => {
                    let key = H::order_key(&item);
                    let ctx = EntryContext {
                        entry_id: entry.id,
                        deliveries: entry.deliveries,
                    };
                    let slot = *index.entry(key).or_insert_with(|| {
                        groups.push(Vec::new());
                        groups.len() - 1
                    });
                    groups[slot].push((item, ctx));
                }
                Err(reason) => dead.push((entry, format!("undecodable: {reason}"))),
            }
        }

        let mut tasks = JoinSet::new();
        if H::BATCHED {
            let handler = Arc::clone(&self.handler);
            let metrics = self.metrics.clone();
            let items: Vec<_> = groups.into_iter().flatten().collect();
            groups = Vec::new();
            tasks.spawn(async move {
                let started = Instant::now();
                let n = items.len().max(1) as u32;
                let results = handler.handle_batch(items).await;
                for (_, result) in &results {
                    metrics.processed(H::ROLE, outcome_label(result), started.elapsed() / n);
                }
                results
            });
        }
        for items in groups {
            let handler = Arc::clone(&self.handler);
            let metrics = self.metrics.clone();
            tasks.spawn(async move {
                let mut results = Vec::with_capacity(items.len());
                for (item, ctx) in items {
                    let started = Instant::now();
                    let result = handler.handle(item, ctx.clone()).await;
                    metrics.processed(H::ROLE, outcome_label(&result), started.elapsed());
                    results.push((ctx.entry_id, result));
                }
                results
            });
        }
        let mut acked = Vec::new();
        let mut failed = HashSet::new();
        while let Some(joined) = tasks.join_next().await {
            let results = match joined {
                Ok(r) => r,
                Err(e) => {
                    // A panicking handler leaves its entries pending: retried, then dead-lettered.
                    tracing::error!(error.message = %e, "Handler task panicked.");
                    continue;
                }
            };
            for (id, result) in results {
                match result {
                    Ok(()) => acked.push(id),
                    Err(Failure::Permanent(reason)) => {
                        dead.push((
                            Entry {
                                id,
                                payload: None,
                                deliveries: 0,
                            },
                            reason,
                        ));
                    }
                    Err(Failure::Transient(reason)) => {
                        tracing::warn!(stream = %self.stream, entry_id = %id, %reason, "Entry failed; it will be retried.");
                        self.record_failure(&id, &reason).await;
                        failed.insert(id);
                    }
                }
            }
        }
        self.ack(&acked).await?;
        for (entry, reason) in dead {
            self.dead_letter(&entry.id, &reason).await?;
        }
        Ok(())
    }

    async fn ack(&self, ids: &[String]) -> Result<(), StreamError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        let _: u64 = redis::cmd("XACK")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(ids)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    fn failure_key(&self, id: &str) -> String {
        format!("{}:failure:{id}", self.stream)
    }

    async fn record_failure(&self, id: &str, reason: &str) {
        let mut conn = self.conn.clone();
        let result: redis::RedisResult<()> = redis::cmd("SET")
            .arg(self.failure_key(id))
            .arg(reason)
            .arg("EX")
            .arg(7 * 24 * 3600)
            .query_async(&mut conn)
            .await;
        if let Err(e) = result {
            tracing::warn!(error.message = %e, "Failed to record an entry's failure reason.");
        }
    }

    async fn last_failure(&self, id: &str) -> Option<String> {
        let mut conn = self.conn.clone();
        redis::cmd("GET")
            .arg(self.failure_key(id))
            .query_async::<Option<String>>(&mut conn)
            .await
            .ok()
            .flatten()
            .map(|r| format!("failed repeatedly; last error: {r}"))
    }

    /// Copies the entry (all its fields) to the dead-letter stream with the reason, and
    /// acknowledges it, atomically.
    async fn dead_letter(&self, id: &str, reason: &str) -> Result<(), StreamError> {
        let mut conn = self.conn.clone();
        let original: Vec<StreamId> = redis::cmd("XRANGE")
            .arg(&self.stream)
            .arg(id)
            .arg(id)
            .query_async::<redis::streams::StreamRangeReply>(&mut conn)
            .await?
            .ids;
        let mut add = redis::cmd("XADD");
        add.arg(&self.dead_letters)
            .arg("MAXLEN")
            .arg("~")
            .arg(self.settings.dead_letter_max_len)
            .arg("*")
            .arg("source_id")
            .arg(id)
            .arg("group")
            .arg(&self.group)
            .arg("reason")
            .arg(reason);
        if let Some(entry) = original.first() {
            for (field, value) in &entry.map {
                if let Ok(v) = redis::from_redis_value_ref::<String>(value) {
                    add.arg(field).arg(v);
                }
            }
        }
        let mut pipe = redis::pipe();
        pipe.atomic()
            .add_command(add)
            .ignore()
            .cmd("XACK")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(id)
            .ignore()
            .cmd("DEL")
            .arg(self.failure_key(id))
            .ignore();
        pipe.query_async::<()>(&mut conn).await?;
        self.metrics.dead_lettered(H::ROLE);
        tracing::error!(
            stream = %self.stream, entry_id = %id, %reason,
            "Entry moved to the dead-letter stream."
        );
        Ok(())
    }

    /// Trims what every group has acknowledged; run periodically by one task per stream.
    pub async fn trim(&self) -> Result<(), StreamError> {
        let mut conn = self.conn.clone();
        trim_acknowledged(&mut conn, &self.stream).await?;
        Ok(())
    }

    pub async fn run_trimmer(self: Arc<Self>, token: CancellationToken) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.settings.trim_interval) => {}
                _ = token.cancelled() => return,
            }
            if let Err(e) = self.trim().await {
                tracing::warn!(stream = %self.stream, error.message = %e, "Trimming failed.");
            }
        }
    }
}

fn to_entry(id: StreamId, deliveries: u64) -> Entry {
    let payload = id
        .map
        .get(PAYLOAD_FIELD)
        .and_then(|v| redis::from_redis_value_ref::<String>(v).ok());
    Entry {
        id: id.id,
        payload,
        deliveries,
    }
}

fn outcome_label(result: &Result<(), Failure>) -> &'static str {
    match result {
        Ok(()) => "ok",
        Err(Failure::Permanent(_)) => "permanent_failure",
        Err(Failure::Transient(_)) => "transient_failure",
    }
}
