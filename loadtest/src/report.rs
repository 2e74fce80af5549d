//! The end of a run: the summary printed and written as JSON, and the pass/fail verdict.

use serde_json::{json, Value};

use crate::args::Args;
use crate::audit::Audit;
use crate::cpu::{cores, machine_busy_ticks, peak_rss_kib, tree_ticks, CLOCK_TICKS};
use crate::driver::Phase;
use crate::sims::Sims;
use crate::stats::{Stats, C, SEGMENTS};

/// One step of `--find-max`.
#[derive(Debug, Clone)]
pub struct Step {
    pub offered: f64,
    pub achieved: f64,
    pub skipped: u64,
    pub p99_ms: f64,
    pub errors: u64,
    pub in_flight: u64,
    pub pass: bool,
    pub latency: Value,
}

impl Step {
    pub fn new(offered: f64, phase: Phase) -> Step {
        Step {
            offered,
            achieved: (phase.arrivals - phase.skipped) as f64 / phase.secs.max(1e-9),
            skipped: phase.skipped,
            p99_ms: 0.0,
            errors: 0,
            in_flight: 0,
            pass: false,
            latency: Value::Null,
        }
    }
}

pub struct Ramp {
    pub steps: Vec<Step>,
    /// The highest offered rate whose step passed.
    pub best: Option<f64>,
}

/// CPU time of the processes named with `--cpu` (and this one) over the load.
pub struct CpuWatch {
    watched: Vec<(String, u32, u64)>,
    machine: u64,
}

pub struct Cpu {
    pub secs: f64,
    pub by_process: Vec<(String, f64, Option<u64>)>,
    pub machine_busy: f64,
}

impl CpuWatch {
    pub fn start(pids: &[(String, u32)]) -> CpuWatch {
        let mut watched: Vec<(String, u32, u64)> = pids
            .iter()
            .map(|(name, pid)| (name.clone(), *pid, tree_ticks(*pid)))
            .collect();
        let me = std::process::id();
        watched.push(("loadtest".into(), me, tree_ticks(me)));
        CpuWatch {
            watched,
            machine: machine_busy_ticks(),
        }
    }

    pub fn finish(self, secs: f64) -> Cpu {
        Cpu {
            secs,
            by_process: self
                .watched
                .iter()
                .map(|(name, pid, before)| {
                    let used = tree_ticks(*pid).saturating_sub(*before) as f64 / CLOCK_TICKS;
                    (name.clone(), used, peak_rss_kib(*pid))
                })
                .collect(),
            machine_busy: machine_busy_ticks().saturating_sub(self.machine) as f64 / CLOCK_TICKS,
        }
    }

    fn json(cpu: &Cpu) -> Value {
        let procs: serde_json::Map<String, Value> = cpu
            .by_process
            .iter()
            .map(|(n, s, rss)| {
                (
                    n.clone(),
                    json!({"cpu_secs": s, "share_of_a_core": s / cpu.secs.max(1e-9),
                           "peak_rss_mib": rss.map(|k| k as f64 / 1024.0)}),
                )
            })
            .collect();
        json!({"window_secs": cpu.secs, "cores": cores(), "machine_busy_cpu_secs": cpu.machine_busy, "processes": procs})
    }
}

pub struct Outcome<'a> {
    pub args: &'a Args,
    pub users: usize,
    pub offered: Option<f64>,
    pub phase: Phase,
    pub load_secs: f64,
    pub drained: bool,
    pub stats: &'a Stats,
    pub setup: &'a Stats,
    pub sims: &'a Sims,
    pub audit: Option<&'a Audit>,
    pub ramp: Option<&'a Ramp>,
    pub storm_pay_secs: Option<f64>,
    pub cpu: Cpu,
}

fn line(name: &str, p: &Value) -> String {
    format!(
        "  {name:<9} n={:<7} p50 {:>7.2}  p90 {:>7.2}  p99 {:>7.2}  p99.9 {:>7.2}  max {:>8.2}",
        p["count"], p["p50"], p["p90"], p["p99"], p["p99_9"], p["max"]
    )
}

impl Outcome<'_> {
    fn scenario(&self) -> &'static str {
        let a = self.args;
        if a.storm {
            "payment storm"
        } else if a.find_max {
            "find-max"
        } else if a.burst.is_some() {
            "burst"
        } else if a.share_429 > 0.0 {
            "slow telegram"
        } else {
            "steady"
        }
    }

    fn achieved(&self) -> f64 {
        self.stats.get(C::Updates) as f64 / self.phase.secs.max(1e-9)
    }

    /// Prints the summary; returns whether the run passed.
    pub fn print(&self) -> bool {
        let s = self.stats;
        let j = s.to_json();
        let v = self.sims.telegram.violations();
        println!(
            "\n{} ({} users, mix {}): {} updates in {:.1} s of load: {:.0}/s achieved{}; {} arrivals skipped (no idle user)",
            self.scenario(),
            self.users,
            self.args.mix.describe(),
            s.get(C::Updates),
            self.phase.secs,
            self.achieved(),
            self.offered
                .map(|o| format!(" (offered {o:.0}/s)"))
                .unwrap_or_default(),
            s.get(C::Skipped),
        );
        println!(
            "replies: {} expected, {} matched, {} missing, {} unexpected (doubled or late), {} with wrong content; {} stray Bot API calls",
            s.get(C::RepliesExpected),
            s.get(C::RepliesMatched),
            s.get(C::Missing),
            s.get(C::Unexpected),
            s.get(C::WrongContent),
            self.sims.counters.stray.load(std::sync::atomic::Ordering::Relaxed),
        );
        println!("latency, webhook POST → reply at the simulator (ms):");
        println!("{}", line("all", &j["latency_ms"]));
        for seg in SEGMENTS {
            if let Some(p) = j["latency_ms_by_segment"].get(seg) {
                println!("{}", line(seg, p));
            }
        }
        println!(
            "ingress answers to Telegram webhooks: {}; retries {}, given up {}, unexpected status {}",
            j["telegram_webhook_statuses"],
            s.get(C::Retries),
            s.get(C::GaveUp),
            s.get(C::WrongStatus)
        );
        println!(
            "Heleket webhook deliveries: {} payments, answers {}; payments with no webhook accepted {}",
            s.get(C::Payments),
            j["heleket_webhook_statuses"],
            s.get(C::WebhooksFailed)
        );
        println!(
            "Telegram simulator: calls by status {:?}; limit violations: per chat {}, global {}, retry_after ignored {} (of {} sends)",
            self.sims.counters.statuses(),
            v.per_chat,
            v.global,
            v.retry_after,
            v.sends
        );
        println!(
            "generator: ingress POST p99 {} ms, arrival lag p99 {} ms (max {} ms)",
            j["ingress_post_ms"]["p99"], j["generator_lag_ms"]["p99"], j["generator_lag_ms"]["max"]
        );
        if let Some(secs) = self.storm_pay_secs {
            let n = s.get(C::Payments) as f64;
            println!(
                "storm: {n} invoices paid at once, every notification in {secs:.2} s: {:.0} credits/s end to end",
                n / secs
            );
        }
        if let Some(ramp) = self.ramp {
            match ramp.best {
                Some(r) => println!(
                    "find-max: highest sustained rate {r:.0} updates/s (p99 ≤ {} ms, no errors)",
                    self.args.p99_bound_ms
                ),
                None => println!("find-max: no step passed"),
            }
        }
        if self.ramp.is_none() && !self.args.storm {
            self.print_timeline();
        }
        let c = &self.cpu;
        let ours: f64 = c.by_process.iter().map(|p| p.1).sum();
        println!(
            "CPU over {:.1} s ({} cores, machine busy {:.0} %, of which {:.0} % of a core outside the processes below): {}",
            c.secs,
            cores(),
            100.0 * c.machine_busy / (c.secs * cores() as f64).max(1e-9),
            100.0 * (c.machine_busy - ours).max(0.0) / c.secs.max(1e-9),
            c.by_process
                .iter()
                .map(|(n, secs, rss)| format!(
                    "{n} {:.0} %{}",
                    100.0 * secs / c.secs.max(1e-9),
                    rss.map(|k| format!(" (peak RSS {:.0} MiB)", k as f64 / 1024.0))
                        .unwrap_or_default()
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if let Some(a) = self.audit {
            a.print();
        }
        if !self.drained {
            println!("not every user finished its last action in time");
        }
        if s.get(C::Skipped) > 0 {
            println!(
                "warning: {} arrivals found no idle user, so less than the offered rate was sent; \
                 more --users keeps the rate through slow periods",
                s.get(C::Skipped)
            );
        }
        let setup_ok = self.setup.errors() == 0;
        if !setup_ok {
            println!("setup had errors: {}", self.setup.to_json()["counters"]);
        }
        let pass = s.errors() == 0
            && setup_ok
            && self.drained
            && self.audit.is_none_or(Audit::ok)
            && self.ramp.is_none_or(|r| r.best.is_some());
        println!("result: {}", if pass { "PASS" } else { "FAIL" });
        pass
    }

    /// Latency by when the action started, five seconds a line.
    fn print_timeline(&self) {
        let timeline = self.stats.timeline();
        println!("over time (by when the action started):");
        for chunk in timeline.chunks(5) {
            let first = &chunk[0];
            let actions: u64 = chunk
                .iter()
                .map(|t| t["actions"].as_u64().unwrap_or(0))
                .sum();
            let errors: u64 = chunk
                .iter()
                .map(|t| t["errors"].as_u64().unwrap_or(0))
                .sum();
            let worst = |k: &str| {
                chunk
                    .iter()
                    .filter_map(|t| t["latency_ms"][k].as_f64())
                    .fold(0.0, f64::max)
            };
            println!(
                "  {:>3}s+ {:>6.0} actions/s  p50 ≤ {:>8.2} ms  p99 ≤ {:>8.2} ms  errors {errors}",
                first["second"],
                actions as f64 / chunk.len() as f64,
                worst("p50"),
                worst("p99"),
            );
        }
    }

    pub fn to_json(&self, pass: bool) -> Value {
        let v = self.sims.telegram.violations();
        let ramp = self.ramp.map(|r| {
            json!({
                "best_rate": r.best,
                "steps": r.steps.iter().map(|s| json!({
                    "offered": s.offered, "achieved": s.achieved, "skipped": s.skipped,
                    "p99_ms": s.p99_ms, "errors": s.errors, "in_flight": s.in_flight,
                    "pass": s.pass, "latency_ms": s.latency,
                })).collect::<Vec<_>>(),
            })
        });
        json!({
            "scenario": self.scenario(),
            "settings": crate::run::describe(self.args),
            "users": self.users,
            "offered_rate": self.offered,
            "achieved_rate": self.achieved(),
            "load_secs": self.phase.secs,
            "until_drained_secs": self.load_secs,
            "drained": self.drained,
            "measured": self.stats.to_json(),
            "timeline": self.stats.timeline(),
            "setup": self.setup.to_json()["counters"],
            "telegram_sim": {
                "calls_by_status": self.sims.counters.statuses(),
                "stray_calls": self.sims.counters.stray.load(std::sync::atomic::Ordering::Relaxed),
                "violations": {"sends": v.sends, "per_chat": v.per_chat, "global": v.global, "retry_after": v.retry_after},
            },
            "storm_pay_secs": self.storm_pay_secs,
            "find_max": ramp,
            "cpu": CpuWatch::json(&self.cpu),
            "audit": self.audit.map(Audit::to_json),
            "pass": pass,
        })
    }
}
