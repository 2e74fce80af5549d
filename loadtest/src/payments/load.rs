//! The timed phase of `loadtest payments`: a fixed pool of keep-alive connections POSTing the
//! signed webhooks, closed loop.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::Request;

use super::{Target, ATTEMPTS};

pub(super) struct LoadResult {
    pub(super) histogram: Histogram<u64>,
    pub(super) statuses: BTreeMap<u16, u64>,
    pub(super) transport_errors: u64,
    pub(super) first_error: Option<String>,
    pub(super) finished: Instant,
}

/// Sends every job once over `concurrency` keep-alive connections, each taking the next job
/// as soon as its previous answer arrived (closed loop).
pub(super) async fn drive(target: &Target, jobs: Vec<Bytes>, concurrency: usize) -> LoadResult {
    let jobs = Arc::new(jobs);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        tasks.spawn(client_loop(
            target.clone(),
            Arc::clone(&jobs),
            Arc::clone(&next),
        ));
    }
    let mut total = LoadResult {
        histogram: new_histogram(),
        statuses: BTreeMap::new(),
        transport_errors: 0,
        first_error: None,
        finished: Instant::now(),
    };
    while let Some(joined) = tasks.join_next().await {
        let part = match joined {
            Ok(part) => part,
            Err(e) => {
                total.transport_errors += 1;
                total.first_error.get_or_insert(format!("task: {e}"));
                continue;
            }
        };
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = total.histogram.add(&part.histogram);
        for (status, count) in part.statuses {
            *total.statuses.entry(status).or_default() += count;
        }
        total.transport_errors += part.transport_errors;
        if total.first_error.is_none() {
            total.first_error = part.first_error;
        }
    }
    total.finished = Instant::now();
    total
}

/// Microseconds, 1 µs to 60 s, three significant digits.
pub(super) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

pub(super) async fn client_loop(
    target: Target,
    jobs: Arc<Vec<Bytes>>,
    next: Arc<AtomicUsize>,
) -> LoadResult {
    let mut result = LoadResult {
        histogram: new_histogram(),
        statuses: BTreeMap::new(),
        transport_errors: 0,
        first_error: None,
        finished: Instant::now(),
    };
    let mut conn: Option<SendRequest<Full<Bytes>>> = None;
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(body) = jobs.get(i) else { break };
        for attempt in 1..=ATTEMPTS {
            let sent = Instant::now();
            match post(&mut conn, &target, body.clone()).await {
                Ok(status) => {
                    let us = sent.elapsed().as_micros().max(1) as u64;
                    result.histogram.saturating_record(us);
                    *result.statuses.entry(status).or_default() += 1;
                    break;
                }
                Err(e) => {
                    conn = None;
                    result.transport_errors += 1;
                    result.first_error.get_or_insert(format!("{e:#}"));
                    if attempt == ATTEMPTS {
                        // Counted as status 0: never answered.
                        *result.statuses.entry(0).or_default() += 1;
                    }
                }
            }
        }
    }
    result.finished = Instant::now();
    result
}

pub(super) async fn post(
    conn: &mut Option<SendRequest<Full<Bytes>>>,
    target: &Target,
    body: Bytes,
) -> anyhow::Result<u16> {
    if conn.is_none() {
        *conn = Some(crate::http::open(&target.authority).await?);
    }
    let Some(sender) = conn.as_mut() else {
        unreachable!("connected above")
    };
    sender.ready().await?;
    let request = Request::post(target.path.as_str())
        .header(HOST, target.authority.as_str())
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(body))?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    response.into_body().collect().await?;
    Ok(status)
}
