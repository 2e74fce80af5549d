//! The MTProto gateway's behaviour above its Telegram boundary, against the real workers,
//! PostgreSQL and Redis: a scripted update source and a recording transport stand in for
//! MTProto (which cannot be reached from here).

use crate::helpers::{TestSystem, WAIT};
use gateway::lease::LeaseSettings;
use gateway::{
    Connector, Gateway, GatewayConfig, GatewayMetrics, Received, SourceError, UpdateSource,
};
use shared::config::RedisSettings;
use shared::event::{EventKind, InboundEvent, TelegramUser, UpdateId};
use shared::gcra::Rate;
use shared::outbound::{DeliveryOutcome, OutboundAction};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What the scripted "Telegram" holds across sessions: the updates it will deliver, the
/// committed position (what a real session file keeps), and what was sent to it.
#[derive(Default)]
struct FakeTelegram {
    updates: Vec<InboundEvent>,
    committed: usize,
    /// Updates handed out, in order, counting replays.
    delivered: Vec<UpdateId>,
    /// A commit of this position never returns: the gateway "crashes" between append and
    /// commit when the test aborts it there.
    hang_on_commit_of: Option<usize>,
    sent: Vec<(i64, OutboundAction, Instant)>,
    /// Outcomes to answer with before delivering normally, per chat.
    scripted: HashMap<i64, VecDeque<DeliveryOutcome>>,
    connects: usize,
}

#[derive(Clone, Default)]
struct FakeConnector(Arc<Mutex<FakeTelegram>>);

impl FakeConnector {
    fn with_updates(updates: Vec<InboundEvent>) -> Self {
        let fake = FakeConnector::default();
        fake.0.lock().unwrap().updates = updates;
        fake
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FakeTelegram> {
        self.0.lock().unwrap()
    }

    fn sends_to(&self, chat: i64) -> Vec<OutboundAction> {
        self.state()
            .sent
            .iter()
            .filter(|(c, _, _)| *c == chat)
            .map(|(_, a, _)| a.clone())
            .collect()
    }
}

struct FakeSource {
    telegram: Arc<Mutex<FakeTelegram>>,
    position: usize,
}

impl UpdateSource for FakeSource {
    async fn next(&mut self) -> Result<Received, SourceError> {
        let next = {
            let mut t = self.telegram.lock().unwrap();
            let next = t.updates.get(self.position).cloned();
            if let Some(u) = &next {
                t.delivered.push(u.update_id);
            }
            next
        };
        match next {
            Some(update) => {
                self.position += 1;
                Ok(Received::Event(Box::new(update)))
            }
            None => std::future::pending().await,
        }
    }

    async fn commit(&mut self) -> Result<(), SourceError> {
        let hang = {
            let mut t = self.telegram.lock().unwrap();
            if t.hang_on_commit_of == Some(self.position) {
                true
            } else {
                t.committed = self.position;
                false
            }
        };
        if hang {
            std::future::pending::<()>().await;
        }
        Ok(())
    }

    async fn close(self) {}
}

struct FakeTransport(Arc<Mutex<FakeTelegram>>);

impl sender::Transport for FakeTransport {
    const NAME: &'static str = "fake";

    async fn execute(&self, chat_id: i64, action: &OutboundAction) -> DeliveryOutcome {
        let mut t = self.0.lock().unwrap();
        if let Some(outcome) = t.scripted.get_mut(&chat_id).and_then(VecDeque::pop_front) {
            return outcome;
        }
        t.sent.push((chat_id, action.clone(), Instant::now()));
        DeliveryOutcome::Delivered
    }
}

impl Connector for FakeConnector {
    type Source = FakeSource;
    type Transport = FakeTransport;

    async fn connect(&self) -> anyhow::Result<(FakeSource, FakeTransport)> {
        let position = {
            let mut t = self.state();
            t.connects += 1;
            t.committed
        };
        Ok((
            FakeSource {
                telegram: Arc::clone(&self.0),
                position,
            },
            FakeTransport(Arc::clone(&self.0)),
        ))
    }
}

struct RunningGateway {
    metrics: GatewayMetrics,
    stop: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl RunningGateway {
    async fn stop(self) {
        self.stop.cancel();
        self.task.await.expect("gateway task").expect("gateway ran");
    }

    /// A crash: no release, no final commit, nothing finished.
    async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

fn lease_ttl() -> Duration {
    Duration::from_millis(1500)
}

async fn start_gateway(sys: &TestSystem, connector: FakeConnector) -> RunningGateway {
    let redis = RedisSettings::for_url(sys.redis.url(), sys.keys.namespace().to_owned());
    let env: Vec<(String, String)> = sys.worker_env(&[]);
    let env = shared::config::Env::from_pairs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let config = GatewayConfig {
        consumer: consumer::ConsumerSettings::from_env(&env).expect("consumer settings"),
        lease: LeaseSettings::new(
            format!("{}:{{gateway}}:lease", redis.namespace),
            lease_ttl(),
        ),
        global_rate: Rate::per_second(1000.0, 1000),
        chat_rate: Rate::per_second(100.0, 3),
        redis: redis.clone(),
    };
    let conn = shared::redis_conn::connect(&redis).expect("redis");
    let metrics = GatewayMetrics::new();
    let gateway = Gateway::new(config, connector, conn, metrics.clone());
    let stop = CancellationToken::new();
    let task = tokio::spawn(gateway.run(stop.clone()));
    RunningGateway {
        metrics,
        stop,
        task,
    }
}

/// Workers as an MTProto deployment runs them: every role but the sender.
async fn system() -> TestSystem {
    let mut sys = TestSystem::start_without_workers().await;
    sys.spawn_worker(&[("TELEGRAM_TRANSPORT", "mtproto")]).await;
    sys
}

fn command(update_id: i64, user_id: i64, name: &str) -> InboundEvent {
    InboundEvent {
        update_id: UpdateId(update_id),
        from: TelegramUser {
            id: user_id,
            username: None,
            first_name: "Ana".into(),
            last_name: None,
            language_code: Some("en".into()),
        },
        kind: EventKind::Command {
            chat_id: user_id,
            message_id: update_id,
            name: name.into(),
            args: String::new(),
        },
    }
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn sends(actions: &[OutboundAction]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, OutboundAction::SendMessage { .. }))
        .count()
}

/// `n` users from `first_user` on, each sending `/balance` once (update ids 1..=n).
fn balance_asked_by(n: i64, first_user: i64) -> (Vec<i64>, FakeConnector) {
    let users: Vec<i64> = (0..n).map(|i| first_user + i).collect();
    let updates = users
        .iter()
        .enumerate()
        .map(|(i, u)| command(1 + i as i64, *u, "balance"))
        .collect();
    (users, FakeConnector::with_updates(updates))
}

#[tokio::test]
async fn updates_from_the_gateway_are_answered_through_its_transport_once_each() {
    let sys = system().await;
    let (users, telegram) = balance_asked_by(10, 7_100);
    let gateway = start_gateway(&sys, telegram.clone()).await;

    wait_for("a reply to every user", || {
        users.iter().all(|u| !telegram.sends_to(*u).is_empty())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for u in &users {
        assert_eq!(sends(&telegram.sends_to(*u)), 1, "user {u}");
    }
    assert!(
        sys.sim.calls().is_empty(),
        "nothing may go out by the Bot API"
    );
    assert_eq!(telegram.state().committed, users.len());
    let metrics = gateway.metrics.render();
    for line in [
        "gateway_lease_active 1",
        "gateway_updates_total{kind=\"command\"} 10",
        "telegram_sends_total{result=\"ok\"} 10",
        "stream_entries_processed_total{outcome=\"ok\",role=\"sender\"} 10",
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
    gateway.stop().await;
    sys.finish().await;
}

#[tokio::test]
async fn a_crash_between_append_and_commit_replays_without_a_second_reply() {
    let sys = system().await;
    let (users, telegram) = balance_asked_by(6, 7_200);
    // The fourth update is appended, then the gateway hangs saving position 4: the crash
    // point. Positions 0..3 are committed.
    telegram.state().hang_on_commit_of = Some(4);
    let first = start_gateway(&sys, telegram.clone()).await;
    wait_for("the fourth update answered", || {
        !telegram.sends_to(users[3]).is_empty()
    })
    .await;
    first.kill().await;
    assert_eq!(telegram.state().committed, 3);

    telegram.state().hang_on_commit_of = None;
    let second = start_gateway(&sys, telegram.clone()).await;
    wait_for("every user answered", || {
        users.iter().all(|u| !telegram.sends_to(*u).is_empty())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let delivered = telegram.state().delivered.clone();
    assert_eq!(
        delivered.iter().filter(|id| **id == UpdateId(4)).count(),
        2,
        "update 4 must have been replayed: {delivered:?}"
    );
    for u in &users {
        assert_eq!(sends(&telegram.sends_to(*u)), 1, "user {u}");
    }
    second.stop().await;
    sys.finish().await;
}

#[tokio::test]
async fn flood_wait_holds_sending_until_it_passes_then_delivers_once() {
    let sys = system().await;
    let user = 7_300;
    let telegram = FakeConnector::with_updates(vec![command(1, user, "balance")]);
    telegram.state().scripted.insert(
        user,
        VecDeque::from([DeliveryOutcome::RetryAfter(Duration::from_secs(1))]),
    );
    let started = Instant::now();
    let gateway = start_gateway(&sys, telegram.clone()).await;
    wait_for("the reply after the flood wait", || {
        !telegram.sends_to(user).is_empty()
    })
    .await;
    let delivered_at = telegram.state().sent[0].2;
    assert!(
        delivered_at.duration_since(started) >= Duration::from_secs(1),
        "sent before FLOOD_WAIT passed"
    );
    let mut conn = sys.redis().await;
    let flood_key = sys.keys.key(format_args!("tg:flood"));
    let exists: bool = redis::cmd("EXISTS")
        .arg(&flood_key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!exists, "the shared flood marker expires after the wait");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sends(&telegram.sends_to(user)), 1);
    gateway.stop().await;
    sys.finish().await;
}

#[tokio::test]
async fn a_chat_that_blocked_the_bot_is_marked_in_the_database_and_skipped() {
    let sys = system().await;
    let user = 7_400;
    let telegram =
        FakeConnector::with_updates(vec![command(1, user, "start"), command(2, user, "balance")]);
    telegram.state().scripted.insert(
        user,
        VecDeque::from([DeliveryOutcome::Forbidden("USER_IS_BLOCKED".into())]),
    );
    let gateway = start_gateway(&sys, telegram.clone()).await;
    let db = sys.db.client().await.expect("db");
    let deadline = Instant::now() + WAIT;
    loop {
        let row = db
            .query_opt(
                "SELECT blocked_at IS NOT NULL FROM users WHERE id = $1",
                &[&user],
            )
            .await
            .unwrap();
        if row.is_some_and(|r| r.get::<_, bool>(0)) {
            break;
        }
        assert!(Instant::now() < deadline, "user never marked blocked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        telegram.sends_to(user).is_empty(),
        "nothing is sent to a chat that blocked the bot"
    );
    gateway.stop().await;
    sys.finish().await;
}

#[tokio::test]
async fn one_gateway_is_active_and_a_standby_takes_over_when_it_dies_or_stops() {
    let sys = system().await;
    let a = FakeConnector::default();
    let b = FakeConnector::default();
    let c = FakeConnector::default();
    let first = start_gateway(&sys, a.clone()).await;
    wait_for("the first gateway connected", || a.state().connects == 1).await;
    let second = start_gateway(&sys, b.clone()).await;
    // Several lease periods: the standby must stay off Telegram the whole time.
    tokio::time::sleep(lease_ttl() * 3).await;
    assert_eq!(b.state().connects, 0, "two active gateways");

    let killed_at = Instant::now();
    first.kill().await;
    wait_for("the standby taking over", || b.state().connects == 1).await;
    let took = killed_at.elapsed();
    // The bound: the lease ttl plus a standby's poll, with room for a slow machine.
    assert!(took <= lease_ttl() * 3, "took over after {took:?}");

    let third = start_gateway(&sys, c.clone()).await;
    tokio::time::sleep(lease_ttl()).await;
    assert_eq!(c.state().connects, 0);
    let stopped_at = Instant::now();
    second.stop().await;
    wait_for("the next standby taking over", || c.state().connects == 1).await;
    // Released at once: well under a ttl.
    assert!(stopped_at.elapsed() < lease_ttl(), "release was not prompt");
    third.stop().await;
    sys.finish().await;
}
