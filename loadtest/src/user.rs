//! One simulated Telegram user: their own private chat with the bot, one request outstanding
//! at a time, and a model of their money to check the bot's answers against.
//!
//! **Correlation.** A user sends an update only when the previous action's replies have all
//! arrived (or timed out), so every reply on the user's channel belongs to the action in hand.
//! Each action names the replies it expects (a message whose text starts a certain way, or a
//! callback answer); a reply that matches none of them, or arrives while the user is idle, is
//! counted as unexpected (a double or a late reply). Latency is from the first attempt of
//! the webhook POST that caused the replies (a Telegram update, or the Heleket webhook for a
//! payment) to the moment the simulator answered the last expected one.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use sim::heleket::HeleketSim;
use sim::SimUser;
use tokio::sync::mpsc;

use crate::http::{Post, Poster, SECRET_HEADER};
use crate::mix::{Action, Mix, Rng};
use crate::sims::{Reply, ReplyKind};
use crate::stats::{Stats, C};

/// Everything users share.
pub struct Ctx {
    pub poster: Poster,
    pub heleket: HeleketSim,
    /// Swapped between phases, so setup does not count in the measured load.
    pub stats_now: RwLock<Arc<Stats>>,
    pub secret: HeaderValue,
    pub mix: Mix,
    pub reply_timeout: Duration,
    /// How long a webhook answered 5xx (or not at all) is retried, as Telegram retries.
    pub retry_for: Duration,
    /// Extra deliveries of each payment webhook.
    pub payment_duplicates: usize,
    /// Pause between one action's end and the user's next one.
    pub think: Duration,
    pub next_update_id: AtomicI64,
}

impl Ctx {
    pub fn stats(&self) -> Arc<Stats> {
        self.stats_now
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Counts from now on go to `stats`.
    pub fn set_stats(&self, stats: Arc<Stats>) {
        *self
            .stats_now
            .write()
            .unwrap_or_else(PoisonError::into_inner) = stats;
    }

    pub fn update_id(&self) -> i64 {
        self.next_update_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// A user's money as the generator knows it, in cents.
#[derive(Debug, Default, Clone)]
pub struct Model {
    pub credited: i64,
    pub spent: i64,
    pub invoices_paid: u32,
    pub purchases: u32,
    /// An answer about money went missing, so the model may be behind the database.
    pub uncertain: bool,
}

impl Model {
    pub fn balance(&self) -> i64 {
        self.credited - self.spent
    }
}

/// Go: do one action. `at` is when the arrival was scheduled; `epoch` the ramp step.
#[derive(Debug, Clone, Copy)]
pub struct Go {
    pub at: Instant,
    pub epoch: u32,
    pub action: Option<Action>,
}

/// What a reply must look like.
#[derive(Debug, Clone, Copy)]
pub enum Want {
    /// A message whose text starts with one of these.
    Message(&'static [&'static str]),
    CallbackAnswer,
}

impl Want {
    fn matches(self, reply: &Reply) -> bool {
        match self {
            Want::Message(prefixes) => {
                reply.kind == ReplyKind::Message
                    && (prefixes.is_empty() || prefixes.iter().any(|p| reply.text.starts_with(p)))
            }
            Want::CallbackAnswer => reply.kind == ReplyKind::CallbackAnswer,
        }
    }
}

pub struct User {
    pub index: usize,
    pub id: i64,
    pub sim: SimUser,
    pub model: Model,
    pub rng: Rng,
    /// `callback_data` of the main menu's buttons, from the last welcome.
    pub menu: Vec<String>,
    /// The storm's unpaid invoice: uuid and amount in cents.
    pub invoice: Option<(String, i64)>,
    pub presses: u64,
    pub topups: i64,
    pub(crate) epoch: u32,
    replies: mpsc::UnboundedReceiver<Reply>,
}

/// How a webhook POST ended.
pub enum Posted {
    /// Accepted with the expected status; the instant the first attempt left.
    Accepted(Instant),
    Failed,
}

impl User {
    pub fn new(index: usize, id: i64, seed: u64, replies: mpsc::UnboundedReceiver<Reply>) -> User {
        User {
            index,
            id,
            sim: SimUser::new(id, format!("Load{index}")).with_language("en"),
            model: Model::default(),
            rng: Rng::new(seed ^ (id as u64).wrapping_mul(0x2545_F491_4F6C_DD1D)),
            menu: Vec::new(),
            invoice: None,
            presses: 0,
            topups: 0,
            epoch: 0,
            replies,
        }
    }

    /// Takes `Go`s until the channel closes, telling `idle` when it may be picked again.
    pub async fn run(
        mut self,
        ctx: Arc<Ctx>,
        mut go: mpsc::Receiver<Go>,
        idle: mpsc::UnboundedSender<(usize, Instant)>,
    ) -> User {
        while let Some(order) = go.recv().await {
            self.epoch = order.epoch;
            self.drain_unexpected(&ctx);
            let action = order.action.unwrap_or_else(|| ctx.mix.pick(&mut self.rng));
            let stats = ctx.stats();
            stats.action(self.epoch, false);
            self.act(&ctx, action, order.at).await;
            stats.action(self.epoch, true);
            if idle.send((self.index, Instant::now() + ctx.think)).is_err() {
                break;
            }
        }
        self
    }

    /// Replies that arrived while nothing was expected.
    pub fn drain_unexpected(&mut self, ctx: &Ctx) -> u64 {
        let mut n = 0;
        while self.replies.try_recv().is_ok() {
            n += 1;
        }
        ctx.stats().fail(C::Unexpected, n, self.epoch);
        n
    }

    /// POSTs a Telegram update; a 5xx or no answer is retried for `retry_for` with a
    /// doubling pause, as Telegram retries a webhook.
    pub async fn post_update(
        &self,
        ctx: &Ctx,
        body: Bytes,
        secret: Option<HeaderValue>,
        expect: u16,
        scheduled: Instant,
    ) -> Posted {
        let first = Instant::now();
        let lag = first.saturating_duration_since(scheduled);
        ctx.stats().add(C::Updates, 1);
        let header = secret.unwrap_or_else(|| ctx.secret.clone());
        let mut pause = Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let post = Post {
                path: "/telegram/webhook",
                header: Some((HeaderName::from_static(SECRET_HEADER), header.clone())),
                body: body.clone(),
            };
            let (answer, took) = ctx.poster.post(post).await;
            let label = match &answer {
                Ok(status) => status.to_string(),
                Err(_) => "no answer".to_owned(),
            };
            if attempt == 1 {
                ctx.stats().post(took, lag, &label);
            } else {
                ctx.stats().retry_status(&label);
            }
            let retryable = match answer {
                Ok(status) if status == expect => return Posted::Accepted(first),
                Ok(status) => status >= 500 || status == 429,
                Err(_) => {
                    ctx.stats().add(C::TransportErrors, 1);
                    true
                }
            };
            if !retryable {
                ctx.stats().fail(C::WrongStatus, 1, self.epoch);
                return Posted::Failed;
            }
            if first.elapsed() + pause > ctx.retry_for {
                ctx.stats().fail(C::GaveUp, 1, self.epoch);
                return Posted::Failed;
            }
            ctx.stats().add(C::Retries, 1);
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    /// Waits for one reply per `want`, in any order. Returns them in `want` order when all
    /// came (and records the latency from `since` to the last), or `None` after counting the
    /// missing ones.
    pub async fn expect(
        &mut self,
        ctx: &Ctx,
        segment: &'static str,
        since: Instant,
        wants: &[Want],
    ) -> Option<Vec<Reply>> {
        ctx.stats().add(C::RepliesExpected, wants.len() as u64);
        let deadline = tokio::time::Instant::now() + ctx.reply_timeout;
        let mut got: Vec<Option<Reply>> = vec![None; wants.len()];
        while got.iter().any(Option::is_none) {
            let Ok(Some(reply)) = tokio::time::timeout_at(deadline, self.replies.recv()).await
            else {
                break;
            };
            let slot = (0..wants.len()).find(|&i| got[i].is_none() && wants[i].matches(&reply));
            match slot {
                Some(i) => got[i] = Some(reply),
                None => ctx.stats().fail(C::Unexpected, 1, self.epoch),
            }
        }
        let matched = got.iter().filter(|g| g.is_some()).count() as u64;
        ctx.stats().add(C::RepliesMatched, matched);
        ctx.stats()
            .fail(C::Missing, wants.len() as u64 - matched, self.epoch);
        let replies: Vec<Reply> = got.into_iter().collect::<Option<_>>()?;
        if let Some(last) = replies.iter().map(|r| r.at).max() {
            ctx.stats()
                .latency(segment, last.saturating_duration_since(since), self.epoch);
        }
        Some(replies)
    }

    /// Counts a reply whose content disagrees with the model.
    pub fn wrong(&self, ctx: &Ctx, what: &str, text: &str) {
        ctx.stats().fail(C::WrongContent, 1, self.epoch);
        if ctx.stats().get(C::WrongContent) <= 5 {
            eprintln!(
                "loadtest: user {} ({what}): unexpected reply {text:?}; model {:?}",
                self.id, self.model
            );
        }
    }
}

/// The amount right after `marker` (`"Balance: 12.50 USD"` → 1250 cents).
pub fn cents_after(text: &str, marker: &str) -> Option<i64> {
    let rest = &text[text.find(marker)? + marker.len()..];
    let number: String = rest
        .trim_start_matches('+')
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let (whole, fraction) = number.split_once('.').unwrap_or((&number, "0"));
    let fraction = format!("{fraction:0<2}");
    Some(whole.parse::<i64>().ok()? * 100 + fraction.get(..2)?.parse::<i64>().ok()?)
}

/// `1050` → `"10.50"`.
pub fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_read_in_cents() {
        assert_eq!(cents_after("Balance: 12.50 USD", "Balance: "), Some(1250));
        assert_eq!(
            cents_after(
                "Payment received: +10.01 USD. Balance: 3.00 USD",
                "received: "
            ),
            Some(1001)
        );
        assert_eq!(cents_after("Balance: 7 USD", "Balance: "), Some(700));
        assert_eq!(cents_after("nothing", "Balance: "), None);
        assert_eq!(money(1001), "10.01");
        assert_eq!(money(5), "0.05");
    }
}
