//! `/metrics` of the worker and the ingress after real traffic: a message, a paid top-up, a
//! failed Heleket call and a poison entry.

use crate::helpers::*;
use crate::payments::{top_up, wait_for_notices};
use shared::streams::SINGLE_PARTITION;
use sim::heleket::PayOptions;
use std::collections::BTreeMap;
use std::time::Duration;

/// One sample of the Prometheus text format.
#[derive(Debug)]
pub(crate) struct Sample {
    pub(crate) name: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) value: f64,
}

pub(crate) fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("sample has a value");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let body = rest.strip_suffix('}').expect("closed label set");
                    let labels = body
                        .split("\",")
                        .filter(|p| !p.is_empty())
                        .map(|pair| {
                            let (k, v) = pair.split_once('=').expect("label pair");
                            (k.to_owned(), v.trim_matches('"').to_owned())
                        })
                        .collect();
                    (name, labels)
                }
                None => (series, BTreeMap::new()),
            };
            Sample {
                name: name.to_owned(),
                labels,
                value: value.parse().expect("numeric value"),
            }
        })
        .collect()
}

/// The value of the one series of `name` whose labels include `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect();
    assert!(found.len() <= 1, "{name}{labels:?} matches {found:?}");
    found.first().map(|s| s.value)
}

fn get(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    value(samples, name, labels).unwrap_or_else(|| panic!("no series {name}{labels:?}"))
}

async fn scrape(sys: &TestSystem, url: &str) -> Vec<Sample> {
    let response = sys.http.get(url).send().await.expect("metrics answer");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let content_type = response.headers().get("content-type").cloned();
    let text = response.text().await.unwrap();
    assert!(
        text.contains("# TYPE"),
        "not Prometheus text ({content_type:?}): {text}"
    );
    parse(&text)
}

const STREAM_ROLES: [&str; 3] = ["updates", "payments", "outbound"];

#[tokio::test]
async fn metrics_of_worker_and_ingress_after_real_traffic() {
    let mut sys = TestSystem::start_without_workers().await;
    let worker = sys.spawn_worker(&[("HELEKET_RETRIES", "1")]).await;
    let worker_url = format!("http://{worker}/metrics");
    let ana = user(7001);

    // A message, a paid top-up, a Heleket call failing on both attempts, a poison entry.
    sys.say(1, &ana, "/start").await;
    sys.wait_for_sends(7001, 1).await;
    let uuid = top_up(&sys, 2, &ana, "10").await;
    sys.heleket.pay(&uuid, PayOptions::default()).await.unwrap();
    wait_for_notices(&sys, 7001, 1).await;
    sys.heleket.fail_with_500(2);
    sys.say(3, &ana, "/topup 3").await;
    let sent = sys.wait_for_sends(7001, 4).await;
    assert!(
        text_of(&sent[3]).starts_with("Payments are temporarily unavailable"),
        "{}",
        text_of(&sent[3])
    );
    sys.append_raw(
        &sys.keys.updates_stream(SINGLE_PARTITION),
        "{\"not\": \"an event\"}",
    )
    .await;

    // The stream gauges are sampled every few seconds: wait until a sample shows the
    // dead letter and every group drained.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let m = loop {
        let m = scrape(&sys, &worker_url).await;
        let settled = value(
            &m,
            "stream_dead_letter_entries",
            &[("stream_role", "updates")],
        ) == Some(1.0)
            && STREAM_ROLES.iter().all(|r| {
                value(&m, "stream_group_lag", &[("stream_role", r)]) == Some(0.0)
                    && value(&m, "stream_group_pending", &[("stream_role", r)]) == Some(0.0)
            });
        if settled {
            break m;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "stream gauges never settled: {:?}",
            m.iter()
                .filter(|s| s.name.starts_with("stream_group") || s.name.contains("dead"))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };

    // Streams and groups.
    for role in ["payments", "outbound"] {
        assert_eq!(
            get(&m, "stream_dead_letter_entries", &[("stream_role", role)]),
            0.0
        );
    }
    assert!(
        get(
            &m,
            "stream_entries_processed_total",
            &[("role", "updates"), ("outcome", "ok")]
        ) >= 3.0
    );
    assert!(
        get(
            &m,
            "stream_entries_processed_total",
            &[("role", "payments"), ("outcome", "ok")]
        ) >= 1.0
    );
    assert!(
        get(
            &m,
            "stream_entries_processed_total",
            &[("role", "sender"), ("outcome", "ok")]
        ) >= 4.0
    );
    for role in ["updates", "payments", "sender"] {
        assert!(
            get(
                &m,
                "stream_entry_processing_seconds_count",
                &[("role", role)]
            ) >= 1.0
        );
        assert_eq!(
            get(&m, "stream_entries_claimed_total", &[("role", role)]),
            0.0
        );
    }
    assert_eq!(
        get(&m, "stream_dead_letters_total", &[("role", "updates")]),
        1.0
    );
    assert_eq!(
        get(&m, "stream_dead_letters_total", &[("role", "sender")]),
        0.0
    );

    // Rate limits and Telegram sends.
    assert_eq!(
        get(&m, "rate_limit_hits_total", &[("class", "messages")]),
        0.0
    );
    assert_eq!(
        get(&m, "rate_limit_hits_total", &[("class", "expensive")]),
        0.0
    );
    assert!(get(&m, "telegram_sends_total", &[("result", "ok")]) >= 4.0);
    assert_eq!(get(&m, "telegram_sends_total", &[("result", "429")]), 0.0);
    assert_eq!(
        get(&m, "telegram_flood_waits_total", &[("source", "bot_api")]),
        0.0
    );

    // Heleket: one successful create, one that failed on both attempts, the breaker closed.
    let ok = [("endpoint", "create_invoice"), ("result", "ok")];
    let failed = [("endpoint", "create_invoice"), ("result", "unavailable")];
    assert_eq!(get(&m, "heleket_api_seconds_count", &ok), 1.0);
    assert!(get(&m, "heleket_api_seconds_sum", &ok) > 0.0);
    assert_eq!(get(&m, "heleket_api_seconds_count", &failed), 1.0);
    assert_eq!(
        get(
            &m,
            "heleket_api_errors_total",
            &[("endpoint", "create_invoice"), ("kind", "unavailable")]
        ),
        1.0
    );
    assert_eq!(
        value(&m, "heleket_api_errors_total", &[("kind", "ok")]),
        None,
        "successes are not errors"
    );
    assert_eq!(get(&m, "heleket_circuit_state", &[]), 0.0);

    // Payments.
    assert_eq!(
        get(
            &m,
            "payment_events_total",
            &[("status", "paid"), ("outcome", "credited")]
        ),
        1.0
    );
    assert_eq!(get(&m, "payments_credited_total", &[]), 1.0);
    assert_eq!(get(&m, "payments_credited_amount_total", &[]), 10.0);
    // The reconciler (hourly here) has found nothing yet; its series exist at 0.
    assert_eq!(
        get(
            &m,
            "reconciler_findings_total",
            &[("finding", "status_changed")]
        ),
        0.0
    );

    // No label value is a user or chat id.
    for s in &m {
        for v in s.labels.values() {
            assert!(!v.contains("7001"), "user id in a label: {s:?}");
        }
    }

    // The ingress.
    let i = scrape(&sys, &format!("{}/metrics", sys.ingress_url)).await;
    assert!(
        get(
            &i,
            "ingress_requests_total",
            &[("route", "/telegram/webhook"), ("status", "200")]
        ) >= 3.0
    );
    assert!(
        get(
            &i,
            "ingress_requests_total",
            &[("route", "/heleket/webhook"), ("status", "200")]
        ) >= 1.0
    );
    assert!(get(&i, "ingress_stream_append_seconds_count", &[]) >= 4.0);

    sys.finish().await;
}
