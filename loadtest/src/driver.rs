//! Open-loop arrivals: at a fixed (or shaped) rate, whatever the system answers, the next
//! arrival goes to the user who has been idle longest. Users are independent tasks; an
//! arrival that finds no idle user (every user still waiting for replies, or thinking) is
//! counted as skipped, never delayed, so a slow system shows as latency and skips instead of
//! quietly lowering the offered rate.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::mix::Action;
use crate::stats::C;
use crate::user::{Ctx, Go, User};

/// The offered rate over time.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    Steady {
        rate: f64,
        secs: f64,
    },
    /// `rate`, but `factor` times that from `at` for `len` seconds.
    Burst {
        rate: f64,
        secs: f64,
        at: f64,
        len: f64,
        factor: f64,
    },
}

impl Shape {
    /// The rate at `t` seconds in, or `None` once the shape is over.
    pub fn rate_at(&self, t: f64) -> Option<f64> {
        match *self {
            Shape::Steady { rate, secs } => (t < secs).then_some(rate),
            Shape::Burst {
                rate,
                secs,
                at,
                len,
                factor,
            } => {
                let in_burst = t >= at && t < at + len;
                (t < secs).then_some(if in_burst { rate * factor } else { rate })
            }
        }
    }

    pub fn peak(&self) -> f64 {
        match *self {
            Shape::Steady { rate, .. } => rate,
            Shape::Burst { rate, factor, .. } => rate * factor.max(1.0),
        }
    }

    pub fn secs(&self) -> f64 {
        match *self {
            Shape::Steady { secs, .. } | Shape::Burst { secs, .. } => secs,
        }
    }

    /// Arrivals the shape offers in total.
    pub fn arrivals(&self) -> f64 {
        match *self {
            Shape::Steady { rate, secs } => rate * secs,
            Shape::Burst {
                rate,
                secs,
                at,
                len,
                factor,
            } => rate * secs + rate * (factor - 1.0) * len.min((secs - at).max(0.0)),
        }
    }
}

/// What one phase did.
#[derive(Debug, Clone, Copy)]
pub struct Phase {
    pub arrivals: u64,
    pub skipped: u64,
    pub secs: f64,
}

pub struct Driver {
    ctx: Arc<Ctx>,
    go: Vec<mpsc::Sender<Go>>,
    idle_rx: mpsc::UnboundedReceiver<(usize, Instant)>,
    idle: VecDeque<(usize, Instant)>,
    tasks: Vec<JoinHandle<User>>,
}

impl Driver {
    /// Starts one task per user; all are idle and ready at once.
    pub fn start(users: Vec<User>, ctx: Arc<Ctx>) -> Driver {
        let (idle_tx, idle_rx) = mpsc::unbounded_channel();
        let now = Instant::now();
        let mut go = Vec::with_capacity(users.len());
        let mut idle = VecDeque::with_capacity(users.len());
        let mut tasks = Vec::with_capacity(users.len());
        for user in users {
            let (tx, rx) = mpsc::channel(1);
            idle.push_back((user.index, now));
            go.push(tx);
            tasks.push(tokio::spawn(user.run(ctx.clone(), rx, idle_tx.clone())));
        }
        Driver {
            ctx,
            go,
            idle_rx,
            idle,
            tasks,
        }
    }

    /// Users in an action right now.
    pub fn busy(&mut self) -> usize {
        self.collect_idle();
        self.go.len() - self.idle.len()
    }

    fn collect_idle(&mut self) {
        while let Ok(entry) = self.idle_rx.try_recv() {
            self.idle.push_back(entry);
        }
    }

    /// Offers arrivals following `shape` (at most `limit` of them), each doing `action` or a
    /// pick from the mix; `epoch` maps seconds into the phase to the ramp step.
    pub async fn run(
        &mut self,
        shape: &Shape,
        action: Option<Action>,
        limit: Option<u64>,
        epoch: impl Fn(f64) -> u32,
    ) -> Phase {
        let start = Instant::now();
        let mut next = start;
        let mut phase = Phase {
            arrivals: 0,
            skipped: 0,
            secs: 0.0,
        };
        'arrivals: loop {
            tokio::time::sleep_until(next.into()).await;
            self.collect_idle();
            let now = Instant::now();
            // Every arrival that is due, in one go: the timer is coarser than the gaps.
            while next <= now {
                let t = next.duration_since(start).as_secs_f64();
                let Some(rate) = shape.rate_at(t) else {
                    break 'arrivals;
                };
                if limit.is_some_and(|l| phase.arrivals >= l) {
                    break 'arrivals;
                }
                phase.arrivals += 1;
                let step = epoch(t);
                let order = Go {
                    at: next,
                    epoch: step,
                    action,
                };
                match self.idle.front() {
                    Some(&(user, ready)) if ready <= now => {
                        self.idle.pop_front();
                        // Capacity 1 and the user is idle, so this cannot be full.
                        let _ = self.go[user].try_send(order);
                    }
                    _ => {
                        phase.skipped += 1;
                        self.ctx.stats().fail(C::Skipped, 1, step);
                    }
                }
                next += Duration::from_secs_f64(1.0 / rate.max(1e-3));
            }
        }
        phase.secs = start.elapsed().as_secs_f64();
        phase
    }

    /// Waits until every user is idle again (each bounded by its own timeouts).
    pub async fn wait_idle(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if self.busy() == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Ends the user tasks and hands the users back (for late replies and the audit).
    pub async fn finish(self) -> Vec<User> {
        drop(self.go);
        let mut users = Vec::with_capacity(self.tasks.len());
        for task in self.tasks {
            if let Ok(user) = task.await {
                users.push(user);
            }
        }
        users
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_multiplies_the_rate_for_its_window() {
        let s = Shape::Burst {
            rate: 100.0,
            secs: 30.0,
            at: 10.0,
            len: 10.0,
            factor: 10.0,
        };
        assert_eq!(s.rate_at(5.0), Some(100.0));
        assert_eq!(s.rate_at(10.0), Some(1000.0));
        assert_eq!(s.rate_at(19.9), Some(1000.0));
        assert_eq!(s.rate_at(20.0), Some(100.0));
        assert_eq!(s.rate_at(30.0), None);
        assert_eq!(s.peak(), 1000.0);
        assert_eq!(s.arrivals(), 3000.0 + 9000.0);
    }
}
