//! `loadtest mixed` and `loadtest storm`: the whole system driven from outside, as Telegram
//! and Heleket would drive it. See the crate's README section and `loadtest/run`.

use std::process::ExitCode;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hyper::header::HeaderValue;
use serde_json::{json, Value};

use crate::args::{self, Args};
use crate::driver::{Driver, Shape};
use crate::http::{Poster, Target};
use crate::mix::Action;
use crate::progress::Progress;
use crate::report::{self, Outcome, Ramp, Step};
use crate::sims::{SimSettings, Sims};
use crate::stats::Stats;
use crate::user::{Ctx, User};

/// Simulated users are `USER_BASE + run offset + i`: far above real Telegram ids and apart
/// from `loadtest payments`' users, with a clock-derived offset so that runs against the same
/// database do not share users.
const USER_BASE: i64 = 7_500_000_000_000;
const MAX_USERS: usize = 200_000;

pub async fn run(argv: &[String]) -> ExitCode {
    if argv.iter().any(|a| a == "--help" || a == "-h") {
        println!("{}", args::USAGE);
        return ExitCode::SUCCESS;
    }
    let args = match args::parse(argv, |k| std::env::var(k).ok()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("loadtest: {e}\n{}", args::USAGE);
            return ExitCode::from(2);
        }
    };
    match execute(&args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("loadtest: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn shape(args: &Args) -> Shape {
    match args.burst {
        Some((factor, at, len)) => Shape::Burst {
            rate: args.rate,
            secs: args.duration,
            at,
            len,
            factor,
        },
        None => Shape::Steady {
            rate: args.rate,
            secs: args.duration,
        },
    }
}

/// Enough users that each acts about every `think + 1 s` at the peak rate, so arrivals find
/// an idle user even when replies take a while.
fn users_needed(args: &Args) -> usize {
    if args.storm {
        return args.invoices;
    }
    let peak = if args.find_max {
        args.max_rate
    } else {
        shape(args).peak()
    };
    let cycle = args.think.as_secs_f64() + 1.0;
    ((peak * cycle * 1.5).ceil() as usize).clamp(20, MAX_USERS)
}

fn clock() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

async fn execute(args: &Args) -> anyhow::Result<bool> {
    let n = args.users.unwrap_or_else(|| users_needed(args)).max(1);
    let base = USER_BASE + i64::try_from(clock().as_secs() % 40_000).unwrap_or(0) * 200_000;
    let settings = SimSettings {
        telegram_addr: args.telegram_addr,
        heleket_addr: args.heleket_addr,
        merchant_id: args.merchant.clone(),
        heleket_key: args.heleket_key.clone(),
        chat_rate: args.chat_rate,
        global_rate: args.send_rate,
    };
    let (sims, replies) = Sims::start(&settings, base, n).await?;
    println!(
        "loadtest: telegram simulator {}, heleket simulator {}, {n} users from {base}",
        sims.telegram.api_url(),
        sims.heleket.api_url()
    );
    let setup_stats = Arc::new(Stats::default());
    let ctx = Arc::new(Ctx {
        poster: Poster::start(Target::parse(&args.ingress)?, args.connections),
        heleket: sims.heleket.clone(),
        stats_now: RwLock::new(Arc::clone(&setup_stats)),
        secret: HeaderValue::from_str(&args.secret)?,
        mix: args.mix.clone(),
        reply_timeout: args.reply_timeout,
        retry_for: args.retry_for,
        payment_duplicates: args.payment_duplicates.unwrap_or(usize::from(args.storm)),
        think: args.think,
        // Update ids never repeat, also across runs against the same Redis (whose done
        // markers would swallow a repeated id).
        next_update_id: AtomicI64::new(i64::try_from(clock().as_millis()).unwrap_or(1) * 100),
    });
    let users: Vec<User> = replies
        .into_iter()
        .enumerate()
        .map(|(i, rx)| User::new(i, base + i as i64, args.seed, rx))
        .collect();
    let mut driver = Driver::start(users, ctx.clone());
    let drain_limit = args.reply_timeout * 2 + args.retry_for + Duration::from_secs(5);

    // Setup, not measured: every user starts the bot (and gets the menu its buttons need).
    let first_rate = if args.find_max {
        args.start_rate
    } else {
        args.rate
    };
    let setup_rate = args
        .setup_rate
        .unwrap_or_else(|| first_rate.clamp(200.0, 2000.0));
    let setup = Shape::Steady {
        rate: setup_rate,
        secs: n as f64 / setup_rate + 1.0,
    };
    let progress = Progress::start(
        &args.progress,
        "setup".into(),
        setup.secs(),
        setup_stats.clone(),
    );
    let started = Instant::now();
    driver
        .run(&setup, Some(Action::Start), Some(n as u64), |_| 0)
        .await;
    driver.wait_idle(drain_limit).await;
    progress.finish().await;
    println!(
        "setup: {n} users sent /start at {setup_rate:.0}/s in {:.1} s: {} welcomes, {} missing, {} unexpected",
        started.elapsed().as_secs_f64(),
        setup_stats.get(crate::stats::C::RepliesMatched),
        setup_stats.get(crate::stats::C::Missing),
        setup_stats.get(crate::stats::C::Unexpected),
    );

    // Every user has finished thinking after its welcome before the load starts.
    tokio::time::sleep(args.think).await;
    let stats = Arc::new(Stats::default());
    ctx.set_stats(stats.clone());
    if args.share_429 > 0.0 {
        sims.telegram
            .fail_share_with_429(args.share_429, args.retry_after);
    }
    if let Some(path) = &args.started_file {
        std::fs::write(path, b"load started\n")?;
    }
    let cpu = report::CpuWatch::start(&args.cpu);
    let load_started = Instant::now();
    let mut ramp = None;
    let mut storm_pay_secs = None;
    let (offered, phase) = if args.find_max {
        let (r, phase) = find_max(args, &mut driver, &stats).await;
        ramp = Some(r);
        (None, phase)
    } else if args.storm {
        let (phase, pay_secs) = storm(args, &mut driver, &stats, n, drain_limit).await;
        storm_pay_secs = pay_secs;
        (Some(args.rate), phase)
    } else {
        let shape = shape(args);
        let progress = Progress::start(&args.progress, "load".into(), shape.secs(), stats.clone());
        // Epochs are seconds here: the report shows latency over time.
        let phase = driver.run(&shape, None, None, |t| t as u32).await;
        progress.finish().await;
        (Some(shape.arrivals() / shape.secs()), phase)
    };
    let drained = driver.wait_idle(drain_limit).await;
    let load_secs = load_started.elapsed().as_secs_f64();
    let cpu = cpu.finish(load_secs);
    sims.telegram.fail_share_with_429(0.0, 1);
    tokio::time::sleep(args.settle).await;
    let mut users = driver.finish().await;
    for user in &mut users {
        user.drain_unexpected(&ctx);
    }
    let audit = if args.audit {
        Some(crate::audit::run(&args.database_url, &users).await?)
    } else {
        None
    };
    let outcome = Outcome {
        args,
        users: n,
        offered,
        phase,
        load_secs,
        drained,
        stats: &stats,
        setup: &setup_stats,
        sims: &sims,
        audit: audit.as_ref(),
        ramp: ramp.as_ref(),
        storm_pay_secs,
        cpu,
    };
    let pass = outcome.print();
    if let Some(path) = &args.json {
        let summary: Value = outcome.to_json(pass);
        std::fs::write(path, serde_json::to_vec_pretty(&summary)?)?;
    }
    Ok(pass)
}

/// Ramps the rate by `step_factor` every `step_secs` until a step's p99 passes the bound or
/// it has errors. A step is judged one step later, so its slow replies are in.
async fn find_max(
    args: &Args,
    driver: &mut Driver,
    stats: &Arc<Stats>,
) -> (Ramp, crate::driver::Phase) {
    let mut steps: Vec<Step> = Vec::new();
    let mut rate = args.start_rate;
    let mut total = crate::driver::Phase {
        arrivals: 0,
        skipped: 0,
        secs: 0.0,
    };
    let judge = |steps: &mut Vec<Step>, epoch: usize| -> bool {
        let (h, errors, in_flight) = stats.epoch(epoch as u32);
        let step = &mut steps[epoch];
        step.latency = crate::stats::percentiles(&h);
        step.p99_ms = h.value_at_quantile(0.99) as f64 / 1000.0;
        step.errors = errors;
        step.in_flight = in_flight;
        step.pass =
            errors == 0 && in_flight == 0 && !h.is_empty() && step.p99_ms <= args.p99_bound_ms;
        println!(
            "  step {epoch}: offered {:.0}/s, achieved {:.0}/s, p99 {:.1} ms, errors {errors}, still in flight {in_flight}: {}",
            step.offered,
            step.achieved,
            step.p99_ms,
            if step.pass { "pass" } else { "FAIL" }
        );
        step.pass
    };
    println!(
        "find-max: from {:.0}/s, x{} every {} s, up to {:.0}/s, p99 bound {} ms",
        args.start_rate, args.step_factor, args.step_secs, args.max_rate, args.p99_bound_ms
    );
    loop {
        let epoch = steps.len();
        let shape = Shape::Steady {
            rate,
            secs: args.step_secs,
        };
        let progress = Progress::start(
            &args.progress,
            format!("{rate:.0}/s"),
            args.step_secs,
            stats.clone(),
        );
        let phase = driver.run(&shape, None, None, |_| epoch as u32).await;
        progress.finish().await;
        total.arrivals += phase.arrivals;
        total.skipped += phase.skipped;
        total.secs += phase.secs;
        steps.push(Step::new(rate, phase));
        if epoch > 0 && !judge(&mut steps, epoch - 1) {
            break;
        }
        if rate >= args.max_rate {
            driver
                .wait_idle(args.reply_timeout + Duration::from_secs(5))
                .await;
            judge(&mut steps, epoch);
            break;
        }
        rate = (rate * args.step_factor).min(args.max_rate);
    }
    let best = steps
        .iter()
        .filter(|s| s.pass)
        .map(|s| s.offered)
        .fold(None, |b: Option<f64>, r| Some(b.map_or(r, |b| b.max(r))));
    (Ramp { steps, best }, total)
}

/// Payment storm: every user asks for an invoice (at the rate), then all are paid at once,
/// each webhook delivered `1 + duplicates` times. Returns the invoice phase and the seconds
/// from the first payment until every notification came.
async fn storm(
    args: &Args,
    driver: &mut Driver,
    stats: &Arc<Stats>,
    n: usize,
    drain_limit: Duration,
) -> (crate::driver::Phase, Option<f64>) {
    let invoices = Shape::Steady {
        rate: args.rate,
        secs: n as f64 / args.rate + 1.0,
    };
    let progress = Progress::start(
        &args.progress,
        "invoices".into(),
        invoices.secs(),
        stats.clone(),
    );
    let phase = driver
        .run(&invoices, Some(Action::Invoice), Some(n as u64), |_| 0)
        .await;
    driver.wait_idle(drain_limit).await;
    progress.finish().await;
    // Every user is ready to pay: none is still in its pause after the invoice.
    tokio::time::sleep(args.think).await;
    println!(
        "storm: {n} invoices asked for in {:.1} s; paying them all at once",
        phase.secs
    );
    let all_at_once = Shape::Steady {
        rate: 1e9,
        secs: 1.0,
    };
    let progress = Progress::start(&args.progress, "payments".into(), 10.0, stats.clone());
    let paying = Instant::now();
    driver
        .run(
            &all_at_once,
            Some(Action::PayInvoice),
            Some(n as u64),
            |_| 1,
        )
        .await;
    let done = driver.wait_idle(drain_limit).await;
    let pay_secs = paying.elapsed().as_secs_f64();
    progress.finish().await;
    // The phase is the invoices' (the updates); the payments are reported on their own.
    (phase, done.then_some(pay_secs))
}

/// For the JSON: the flags that shaped the run.
pub fn describe(args: &Args) -> Value {
    json!({
        "rate": args.rate,
        "duration_secs": args.duration,
        "mix": args.mix.describe(),
        "burst": args.burst.map(|(f, at, len)| json!({"factor": f, "at_secs": at, "secs": len})),
        "think_ms": args.think.as_millis() as u64,
        "connections": args.connections,
        "invoices": args.storm.then_some(args.invoices),
        "payment_duplicates": args.payment_duplicates,
        "telegram_429_share": args.share_429,
        "telegram_retry_after_secs": args.retry_after,
        "reply_timeout_secs": args.reply_timeout.as_secs_f64(),
        "find_max": args.find_max.then(|| json!({
            "start_rate": args.start_rate, "step_factor": args.step_factor,
            "step_secs": args.step_secs, "max_rate": args.max_rate,
            "p99_bound_ms": args.p99_bound_ms,
        })),
    })
}
