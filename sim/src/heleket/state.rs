//! The Heleket simulator's shared state: invoices, recordings and faults under one lock
//! (never held across an `.await`), plus the clock, the webhook HTTP client and the stop
//! signal every background task watches.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::clock::Clock;
use super::faults::{ApiFault, Faults, Injected};
use super::invoice::{Invoice, Payment};
use super::validate::{CreateRequest, Lookup};
use super::HeleketSimConfig;

/// One call to the Heleket API (`/v1/...`) as the simulator answered it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiCall {
    /// Starts at 1 and only grows, also across [`super::HeleketSim::reset`].
    pub seq: u64,
    pub method: String,
    pub path: String,
    /// The parsed JSON body; the raw text when it was not JSON; `null` when empty.
    pub body: Value,
    pub status: u16,
    /// Milliseconds since the simulator started.
    pub at_ms: u64,
}

/// One attempt to deliver one webhook.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    /// Starts at 1 and only grows, like [`ApiCall::seq`].
    pub seq: u64,
    /// Which webhook this attempt belongs to: retries share it, duplicates each get their own.
    pub delivery: u64,
    /// 1 for the first try, then one more per retry.
    pub attempt: u32,
    pub uuid: String,
    pub order_id: String,
    /// The `status` inside the webhook body.
    pub status: String,
    pub url: String,
    /// The receiver's answer; `None` when no answer came (refused, timed out).
    pub http_status: Option<u16>,
    pub error: Option<String>,
    /// The exact body posted, `sign` included.
    pub body: String,
    pub at_ms: u64,
}

impl DeliveryRecord {
    pub fn succeeded(&self) -> bool {
        self.http_status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// A delivery attempt before it gets its `seq` and time.
pub(crate) struct Attempt {
    pub(crate) delivery: u64,
    pub(crate) attempt: u32,
    pub(crate) invoice: Invoice,
    pub(crate) url: String,
    pub(crate) http_status: Option<u16>,
    pub(crate) error: Option<String>,
    pub(crate) body: String,
}

pub(crate) struct State {
    inner: Mutex<Inner>,
    pub(crate) changed: Notify,
    pub(crate) clock: Clock,
    pub(crate) config: HeleketSimConfig,
    /// `config.public_url`, or the bound address when none was given.
    pub(crate) public_url: String,
    pub(crate) http: reqwest::Client,
    pub(crate) stop: CancellationToken,
    epoch: Instant,
    next_delivery: AtomicU64,
}

#[derive(Default)]
struct Inner {
    invoices: HashMap<String, Invoice>,
    by_order: HashMap<String, String>,
    /// uuids in creation order, so listings are stable.
    created: Vec<String>,
    calls: VecDeque<ApiCall>,
    deliveries: VecDeque<DeliveryRecord>,
    next_call: u64,
    next_delivery_seq: u64,
    faults: Faults,
}

impl State {
    pub(crate) fn new(
        config: HeleketSimConfig,
        public_url: String,
        http: reqwest::Client,
    ) -> State {
        State {
            inner: Mutex::new(Inner {
                next_call: 1,
                next_delivery_seq: 1,
                ..Inner::default()
            }),
            changed: Notify::new(),
            clock: Clock::default(),
            config,
            public_url,
            http,
            stop: CancellationToken::new(),
            epoch: Instant::now(),
            next_delivery: AtomicU64::new(1),
        }
    }

    /// Nothing in here can leave the state half-updated, so a poisoned lock is still usable.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn at_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Creates the invoice, or returns the existing one for a known `order_id` unchanged
    /// (documented Heleket behaviour); the flag tells which.
    pub(crate) fn create_invoice(&self, req: CreateRequest) -> (Invoice, bool) {
        let now = self.clock.now();
        let mut inner = self.lock();
        if let Some(existing) = inner
            .by_order
            .get(&req.order_id)
            .and_then(|uuid| inner.invoices.get(uuid))
        {
            return (existing.view(now), false);
        }
        let uuid = uuid::Uuid::new_v4().to_string();
        let (merchant_amount, commission) =
            Invoice::expected_split(&req.amount, self.config.commission_percent);
        let invoice = Invoice {
            url: format!("{}/pay/{uuid}", self.public_url.trim_end_matches('/')),
            uuid: uuid.clone(),
            order_id: req.order_id,
            amount: req.amount,
            currency: req.currency,
            network: req.network,
            url_callback: req.url_callback,
            url_return: req.url_return,
            url_success: req.url_success,
            additional_data: req.additional_data,
            is_payment_multiple: req.is_payment_multiple,
            lifetime: req.lifetime,
            created_at: now,
            updated_at: now,
            expired_at: now + req.lifetime,
            status: "check".to_owned(),
            is_final: false,
            payment_amount: None,
            payer_currency: None,
            merchant_amount,
            commission,
            txid: None,
            from: None,
        };
        inner
            .by_order
            .insert(invoice.order_id.clone(), uuid.clone());
        inner.created.push(uuid.clone());
        inner.invoices.insert(uuid, invoice.clone());
        (invoice, true)
    }

    pub(crate) fn find(&self, lookup: &Lookup) -> Option<Invoice> {
        let now = self.clock.now();
        let inner = self.lock();
        let uuid = match lookup {
            Lookup::Uuid(uuid) => uuid,
            Lookup::OrderId(id) => inner.by_order.get(id)?,
        };
        inner.invoices.get(uuid).map(|i| i.view(now))
    }

    pub(crate) fn invoices(&self) -> Vec<Invoice> {
        let now = self.clock.now();
        let inner = self.lock();
        inner
            .created
            .iter()
            .filter_map(|uuid| inner.invoices.get(uuid))
            .map(|i| i.view(now))
            .collect()
    }

    /// Moves an invoice to `status` now; returns the updated snapshot.
    pub(crate) fn set_status(
        &self,
        uuid: &str,
        status: &str,
        payment: Option<&Payment>,
    ) -> Option<Invoice> {
        let now = self.clock.now();
        let mut inner = self.lock();
        let invoice = inner.invoices.get_mut(uuid)?;
        invoice.set_status(status, payment, self.config.commission_percent, now);
        Some(invoice.view(now))
    }

    /// Makes the invoice expire now (its `expired_at` moves to the current time).
    pub(crate) fn expire(&self, uuid: &str) -> Option<Invoice> {
        let now = self.clock.now();
        let mut inner = self.lock();
        let invoice = inner.invoices.get_mut(uuid)?;
        invoice.expired_at = invoice.expired_at.min(now);
        Some(invoice.view(now))
    }

    /// Stores the expiry of every open invoice past `expired_at` and returns them, so each
    /// expiry is reported (by webhook) exactly once.
    pub(crate) fn take_expired(&self) -> Vec<Invoice> {
        let now = self.clock.now();
        let mut inner = self.lock();
        let mut expired = Vec::new();
        for invoice in inner.invoices.values_mut() {
            if let Some(status) = invoice.expiry_status(now) {
                invoice.set_status(status, None, self.config.commission_percent, now);
                expired.push(invoice.clone());
            }
        }
        expired.sort_by_key(|i| i.created_at);
        expired
    }

    pub(crate) fn record_call(&self, method: &str, path: &str, body: Value, status: u16) {
        let at_ms = self.at_ms();
        let mut inner = self.lock();
        let seq = inner.next_call;
        inner.next_call += 1;
        inner.calls.push_back(ApiCall {
            seq,
            method: method.to_owned(),
            path: path.to_owned(),
            body,
            status,
            at_ms,
        });
        while inner.calls.len() > self.config.max_recorded {
            inner.calls.pop_front();
        }
        drop(inner);
        self.changed.notify_waiters();
    }

    pub(crate) fn next_delivery_id(&self) -> u64 {
        self.next_delivery.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn record_delivery(&self, a: Attempt) -> DeliveryRecord {
        let at_ms = self.at_ms();
        let mut inner = self.lock();
        let record = DeliveryRecord {
            seq: inner.next_delivery_seq,
            delivery: a.delivery,
            attempt: a.attempt,
            uuid: a.invoice.uuid,
            order_id: a.invoice.order_id,
            status: a.invoice.status,
            url: a.url,
            http_status: a.http_status,
            error: a.error,
            body: a.body,
            at_ms,
        };
        inner.next_delivery_seq += 1;
        inner.deliveries.push_back(record.clone());
        while inner.deliveries.len() > self.config.max_recorded {
            inner.deliveries.pop_front();
        }
        drop(inner);
        self.changed.notify_waiters();
        record
    }

    pub(crate) fn calls_since(&self, since: u64) -> Vec<ApiCall> {
        let inner = self.lock();
        let start = inner.calls.partition_point(|c| c.seq <= since);
        inner.calls.range(start..).cloned().collect()
    }

    pub(crate) fn deliveries_since(&self, since: u64) -> Vec<DeliveryRecord> {
        let inner = self.lock();
        let start = inner.deliveries.partition_point(|d| d.seq <= since);
        inner.deliveries.range(start..).cloned().collect()
    }

    pub(crate) fn apply(&self, fault: ApiFault) {
        tracing::info!(?fault, "Heleket fault injected.");
        self.lock().faults.apply(fault);
    }

    pub(crate) fn take_fault(&self) -> Option<Injected> {
        self.lock().faults.take()
    }

    pub(crate) fn latency(&self) -> Duration {
        self.lock().faults.latency()
    }

    /// Forgets invoices, recordings and faults and puts the clock back; sequence numbers keep
    /// growing so that a poller in another process never misses anything after a reset.
    pub(crate) fn reset(&self) {
        let mut inner = self.lock();
        let (next_call, next_delivery_seq) = (inner.next_call, inner.next_delivery_seq);
        *inner = Inner {
            next_call,
            next_delivery_seq,
            ..Inner::default()
        };
        drop(inner);
        self.clock.reset();
        tracing::info!("Heleket simulator reset.");
    }
}
