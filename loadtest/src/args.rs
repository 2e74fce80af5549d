//! Flags of `loadtest mixed` and `loadtest storm`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::mix::{Mix, DEFAULT_MIX};

pub const USAGE: &str = "\
usage: loadtest mixed|storm --ingress URL [flags]
  connection (flag, or the variable in parentheses):
    --ingress URL             the ingress, e.g. http://127.0.0.1:8080
    --secret S                (TELEGRAM_WEBHOOK_SECRET) the webhook secret
    --database-url URL        (DATABASE_URL) for the audit
    --merchant ID --heleket-key KEY  (HELEKET_MERCHANT_ID, HELEKET_API_KEY) the embedded Heleket simulator's
    --telegram-addr ADDR --heleket-addr ADDR  where the embedded simulators listen (127.0.0.1:0)
  load:
    --rate R=100              updates/s offered (open loop)
    --duration S=10           seconds of load after setup
    --users N                 simulated users (default: enough for the peak rate)
    --mix SPEC                default start=5,balance=30,topup=10,buy=10,callback=35,junk=10
    --burst-factor F --burst-at S --burst-secs S   F times the rate for a window
    --think MS=1000           a user's pause between actions
    --setup-rate R            /start of every user before the load (default: the (first) rate, 200..2000)
    --connections N=64        keep-alive connections to the ingress
    --seed N=1
  storm (loadtest storm): --invoices N=1000 invoices, asked for at --rate, then paid at once
    --payment-duplicates D=0  extra deliveries of every payment webhook (storm: 1)
  faults:
    --telegram-429-share F=0  share of Bot API calls answered 429
    --telegram-retry-after S=1
  limits the simulator counts violations of: --chat-rate R=1 --send-rate R=1000000
  ramp: --find-max [--start-rate R=200] [--step-factor F=1.25] [--step-secs S=10]
        [--max-rate R=5000] [--p99-bound-ms MS=50]   (users are sized for --max-rate)
  checks and output:
    --reply-timeout S=30      an expected reply later than this is missing
    --retry-for S=60          how long a 5xx'd webhook is retried (as Telegram does)
    --settle S=2              quiet time at the end to catch late and doubled replies
    --no-audit                skip the database audit
    --json FILE               the summary as JSON
    --started-file FILE       touched when the load starts (for chaos timelines)
    --cpu NAME=PID            report the CPU time of a process (and its children)
    --progress auto|bar|plain|off";

#[derive(Debug, Clone)]
pub struct Args {
    pub storm: bool,
    pub ingress: String,
    pub secret: String,
    pub database_url: String,
    pub merchant: String,
    pub heleket_key: String,
    pub telegram_addr: SocketAddr,
    pub heleket_addr: SocketAddr,
    pub rate: f64,
    pub duration: f64,
    pub users: Option<usize>,
    pub mix: Mix,
    pub burst: Option<(f64, f64, f64)>,
    pub think: Duration,
    pub setup_rate: Option<f64>,
    pub connections: usize,
    pub seed: u64,
    pub invoices: usize,
    pub payment_duplicates: Option<usize>,
    pub share_429: f64,
    pub retry_after: u64,
    pub chat_rate: f64,
    pub send_rate: f64,
    pub find_max: bool,
    pub start_rate: f64,
    pub step_factor: f64,
    pub step_secs: f64,
    pub max_rate: f64,
    pub p99_bound_ms: f64,
    pub reply_timeout: Duration,
    pub retry_for: Duration,
    pub settle: Duration,
    pub audit: bool,
    pub json: Option<String>,
    pub started_file: Option<String>,
    pub cpu: Vec<(String, u32)>,
    pub progress: String,
}

const SWITCHES: &[&str] = &["--find-max", "--no-audit"];

fn split(argv: &[String]) -> Result<HashMap<String, Vec<String>>, String> {
    let mut flags: HashMap<String, Vec<String>> = HashMap::new();
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        if !arg.starts_with("--") {
            return Err(format!("unexpected argument {arg:?}"));
        }
        let (flag, value) = match arg.split_once('=') {
            Some((f, v)) => (f.to_owned(), v.to_owned()),
            None if SWITCHES.contains(&arg.as_str()) => (arg.clone(), String::new()),
            None => {
                let v = it.next().ok_or_else(|| format!("{arg} needs a value"))?;
                (arg.clone(), v.clone())
            }
        };
        flags.entry(flag).or_default().push(value);
    }
    Ok(flags)
}

pub fn parse(argv: &[String], env: impl Fn(&str) -> Option<String>) -> Result<Args, String> {
    let storm = match argv.first().map(String::as_str) {
        Some("storm") => true,
        Some("mixed") => false,
        other => return Err(format!("unknown subcommand {other:?}")),
    };
    let mut flags = split(&argv[1..])?;
    let mut take = |name: &str| flags.remove(name).and_then(|mut v| v.pop());
    fn num<T: std::str::FromStr>(name: &str, v: Option<String>, d: T) -> Result<T, String> {
        match v {
            None => Ok(d),
            Some(v) => v
                .parse()
                .map_err(|_| format!("{name}: {v:?} is not a valid number")),
        }
    }
    let or_env = |v: Option<String>, var: &str| v.or_else(|| env(var)).unwrap_or_default();
    let addr = |name: &str, v: Option<String>| -> Result<SocketAddr, String> {
        v.unwrap_or_else(|| "127.0.0.1:0".into())
            .parse()
            .map_err(|_| format!("{name} must be an address like 127.0.0.1:8081"))
    };
    let secs = |v: f64| Duration::from_secs_f64(v.max(0.0));
    let burst_factor: f64 = num("--burst-factor", take("--burst-factor"), 1.0)?;
    let burst_at: f64 = num("--burst-at", take("--burst-at"), 10.0)?;
    let burst_secs: f64 = num("--burst-secs", take("--burst-secs"), 10.0)?;
    let args = Args {
        storm,
        ingress: take("--ingress").unwrap_or_default(),
        secret: or_env(take("--secret"), "TELEGRAM_WEBHOOK_SECRET"),
        database_url: or_env(take("--database-url"), "DATABASE_URL"),
        merchant: or_env(take("--merchant"), "HELEKET_MERCHANT_ID"),
        heleket_key: or_env(take("--heleket-key"), "HELEKET_API_KEY"),
        telegram_addr: addr("--telegram-addr", take("--telegram-addr"))?,
        heleket_addr: addr("--heleket-addr", take("--heleket-addr"))?,
        rate: num("--rate", take("--rate"), 100.0)?,
        duration: num("--duration", take("--duration"), 10.0)?,
        users: take("--users")
            .map(|v| num("--users", Some(v), 0))
            .transpose()?,
        mix: Mix::parse(&take("--mix").unwrap_or_else(|| DEFAULT_MIX.into()))?,
        burst: (burst_factor > 1.0).then_some((burst_factor, burst_at, burst_secs)),
        think: Duration::from_millis(num("--think", take("--think"), 1000)?),
        setup_rate: take("--setup-rate")
            .map(|v| num("--setup-rate", Some(v), 0.0))
            .transpose()?,
        connections: num("--connections", take("--connections"), 64)?,
        seed: num("--seed", take("--seed"), 1)?,
        invoices: num("--invoices", take("--invoices"), 1000)?,
        payment_duplicates: take("--payment-duplicates")
            .map(|v| num("--payment-duplicates", Some(v), 0))
            .transpose()?,
        share_429: num("--telegram-429-share", take("--telegram-429-share"), 0.0)?,
        retry_after: num("--telegram-retry-after", take("--telegram-retry-after"), 1)?,
        chat_rate: num("--chat-rate", take("--chat-rate"), 1.0)?,
        send_rate: num("--send-rate", take("--send-rate"), 1_000_000.0)?,
        find_max: take("--find-max").is_some(),
        start_rate: num("--start-rate", take("--start-rate"), 200.0)?,
        step_factor: num("--step-factor", take("--step-factor"), 1.25)?,
        step_secs: num("--step-secs", take("--step-secs"), 10.0)?,
        max_rate: num("--max-rate", take("--max-rate"), 5_000.0)?,
        p99_bound_ms: num("--p99-bound-ms", take("--p99-bound-ms"), 50.0)?,
        reply_timeout: secs(num("--reply-timeout", take("--reply-timeout"), 30.0)?),
        retry_for: secs(num("--retry-for", take("--retry-for"), 60.0)?),
        settle: secs(num("--settle", take("--settle"), 2.0)?),
        audit: take("--no-audit").is_none(),
        json: take("--json"),
        started_file: take("--started-file"),
        cpu: flags
            .remove("--cpu")
            .unwrap_or_default()
            .iter()
            .map(|v| {
                v.split_once('=')
                    .and_then(|(n, p)| Some((n.to_owned(), p.parse().ok()?)))
                    .ok_or_else(|| format!("--cpu expects NAME=PID, got {v:?}"))
            })
            .collect::<Result<_, _>>()?,
        progress: flags
            .remove("--progress")
            .and_then(|mut v| v.pop())
            .unwrap_or_else(|| "auto".into()),
    };
    if let Some(unknown) = flags.keys().next() {
        return Err(format!("unknown flag {unknown}"));
    }
    for (name, value) in [
        ("--ingress", &args.ingress),
        ("--secret (or TELEGRAM_WEBHOOK_SECRET)", &args.secret),
        ("--merchant (or HELEKET_MERCHANT_ID)", &args.merchant),
        ("--heleket-key (or HELEKET_API_KEY)", &args.heleket_key),
    ] {
        if value.is_empty() {
            return Err(format!("missing {name}"));
        }
    }
    if args.audit && args.database_url.is_empty() {
        return Err("missing --database-url (or DATABASE_URL), or pass --no-audit".into());
    }
    if !(args.rate > 0.0 && args.duration > 0.0 && args.step_factor > 1.0) {
        return Err("--rate and --duration must be positive, --step-factor above 1".into());
    }
    if !(0.0..=1.0).contains(&args.share_429) {
        return Err("--telegram-429-share is a share, 0..1".into());
    }
    if !["auto", "bar", "plain", "off"].contains(&args.progress.as_str()) {
        return Err("--progress is auto, bar, plain or off".into());
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    fn env(k: &str) -> Option<String> {
        match k {
            "TELEGRAM_WEBHOOK_SECRET" => Some("s".into()),
            "HELEKET_MERCHANT_ID" => Some("m".into()),
            "HELEKET_API_KEY" => Some("k".into()),
            "DATABASE_URL" => Some("postgres://x".into()),
            _ => None,
        }
    }

    #[test]
    fn flags_switches_and_the_environment() {
        let a = parse(
            &argv("mixed --ingress http://127.0.0.1:1 --rate=500 --find-max --burst-factor 10 --cpu ingress=12 --cpu worker=13"),
            env,
        )
        .unwrap();
        assert!(!a.storm && a.find_max && a.audit);
        assert_eq!((a.rate, a.secret.as_str()), (500.0, "s"));
        assert_eq!(a.burst, Some((10.0, 10.0, 10.0)));
        assert_eq!(a.cpu.len(), 2);
        assert!(parse(&argv("storm --ingress http://x"), env).unwrap().storm);
    }

    #[test]
    fn mistakes_are_named() {
        let e = |s: &str| parse(&argv(s), env).unwrap_err();
        assert!(e("mixed").contains("--ingress"));
        assert!(e("mixed --ingress x --bogus 1").contains("--bogus"));
        assert!(e("mixed --ingress x --rate fast").contains("--rate"));
        assert!(e("other").contains("subcommand"));
        assert!(e("mixed --ingress x --telegram-429-share 2").contains("share"));
    }
}
