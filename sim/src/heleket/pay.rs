//! Simulated payments: what the payer does on Heleket's page, seen from the merchant's side
//! as a status change (visible to `/v1/payment/info` at once) and the webhooks that report it,
//! including the awkward deliveries real gateways produce: duplicates, intermediate statuses,
//! and intermediate statuses arriving after the final one.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use super::invoice::{parse_amount, Invoice, Payment, STATUSES};
use super::state::{DeliveryRecord, State};
use super::validate::Lookup;
use super::webhook;

/// How a simulated payment goes. `POST /_sim/pay` takes the same fields as JSON (with
/// `delay_ms` for `delay`), next to the invoice's `uuid` or `order_id`; all are optional.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PayOptions {
    /// The final status (any of [`STATUSES`]): `paid`, `paid_over`, `wrong_amount`, `cancel`…
    pub status: String,
    /// What the payer sent, as a decimal string. Defaults: the invoice amount; +10 % for
    /// `paid_over`; half for `wrong_amount`/`wrong_amount_waiting`.
    pub paid_amount: Option<String>,
    /// Extra identical deliveries of the final webhook, sent concurrently with the first.
    pub duplicates: usize,
    /// Wait this long first; [`super::HeleketSim::pay`] then returns at once and the payment
    /// happens in the background.
    #[serde(rename = "delay_ms", with = "millis")]
    pub delay: Duration,
    /// False: the status changes but no webhook is ever sent (a lost webhook).
    pub deliver: bool,
    /// Statuses reported before the final one, e.g. `["process", "confirm_check"]`.
    pub also_send_before: Vec<String>,
    /// Send `also_send_before` after the final webhook, as stale news. The invoice itself
    /// stays at the final status.
    pub out_of_order: bool,
}

impl Default for PayOptions {
    fn default() -> Self {
        PayOptions {
            status: "paid".to_owned(),
            paid_amount: None,
            duplicates: 0,
            delay: Duration::ZERO,
            deliver: true,
            also_send_before: Vec::new(),
            out_of_order: false,
        }
    }
}

impl PayOptions {
    /// Defaults with another final status.
    pub fn status(status: &str) -> PayOptions {
        PayOptions {
            status: status.to_owned(),
            ..PayOptions::default()
        }
    }
}

/// Updates the invoice and delivers its webhooks; returns every delivery attempt, or nothing
/// when `delay` sent the work to the background.
pub(crate) async fn pay(
    state: &Arc<State>,
    uuid: &str,
    options: PayOptions,
) -> anyhow::Result<Vec<DeliveryRecord>> {
    for status in std::iter::once(&options.status).chain(&options.also_send_before) {
        if !STATUSES.contains(&status.as_str()) {
            bail!(
                "unknown payment status {status:?} (known: {})",
                STATUSES.join(", ")
            );
        }
    }
    let invoice = state
        .find(&Lookup::Uuid(uuid.to_owned()))
        .with_context(|| format!("no invoice with uuid {uuid:?}"))?;
    let payment = payment(&invoice, &options)?;
    if options.delay.is_zero() {
        return Ok(run(state, &invoice, &options, &payment).await);
    }
    let state = state.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = state.stop.cancelled() => {}
            () = tokio::time::sleep(options.delay) => {
                run(&state, &invoice, &options, &payment).await;
            }
        }
    });
    Ok(Vec::new())
}

async fn run(
    state: &Arc<State>,
    invoice: &Invoice,
    options: &PayOptions,
    payment: &Payment,
) -> Vec<DeliveryRecord> {
    let url = invoice.url_callback.clone().filter(|_| options.deliver);
    let set = |status: &str| state.set_status(&invoice.uuid, status, Some(payment));
    let mut records = Vec::new();
    if options.out_of_order {
        let Some(final_state) = set(&options.status) else {
            return records;
        };
        let Some(url) = url else { return records };
        records.extend(
            webhook::deliver_copies(state, &url, &final_state, 1 + options.duplicates).await,
        );
        // The stale reports are built from the final state without storing them.
        let now = state.clock.now();
        for status in &options.also_send_before {
            let mut stale = final_state.clone();
            stale.set_status(status, Some(payment), state.config.commission_percent, now);
            records.extend(webhook::deliver(state.clone(), url.clone(), stale).await);
        }
    } else {
        for status in &options.also_send_before {
            let Some(step) = set(status) else {
                return records;
            };
            if let Some(url) = &url {
                records.extend(webhook::deliver(state.clone(), url.clone(), step).await);
            }
        }
        let Some(final_state) = set(&options.status) else {
            return records;
        };
        if let Some(url) = &url {
            records.extend(
                webhook::deliver_copies(state, url, &final_state, 1 + options.duplicates).await,
            );
        }
    }
    tracing::info!(uuid = %invoice.uuid, status = %options.status, "Simulated payment done.");
    records
}

fn payment(invoice: &Invoice, options: &PayOptions) -> anyhow::Result<Payment> {
    let amount = parse_amount(&invoice.amount).unwrap_or_default();
    let (paid, paid_text) = match &options.paid_amount {
        Some(text) => {
            let paid = parse_amount(text)
                .with_context(|| format!("paid_amount {text:?} is not a decimal number"))?;
            (paid, text.clone())
        }
        None => {
            let paid = match options.status.as_str() {
                "paid_over" => amount * Decimal::new(11, 1),
                "wrong_amount" | "wrong_amount_waiting" => amount / Decimal::TWO,
                _ => amount,
            };
            // The invoice's decimals, at least cents, so half of `1` is still money.
            let paid = paid.round_dp_with_strategy(
                amount.scale().max(2),
                RoundingStrategy::MidpointNearestEven,
            );
            (paid, paid.to_string())
        }
    };
    // Random but shaped like the real thing: a 64-hex txid, a 34-char Tron-style address.
    let hex = || uuid::Uuid::new_v4().simple().to_string();
    let txid = format!("{}{}", hex(), hex());
    Ok(Payment {
        paid,
        paid_text,
        payer_currency: "USDT".to_owned(),
        network: invoice.network.clone().unwrap_or_else(|| "tron".to_owned()),
        from: format!("T{}{}", hex(), hex()).chars().take(34).collect(),
        txid,
    })
}

/// `Duration` as integer milliseconds in JSON.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_from_json_use_defaults() {
        let o: PayOptions =
            serde_json::from_str(r#"{"status":"paid_over","delay_ms":250,"duplicates":2}"#)
                .unwrap();
        assert_eq!(o.status, "paid_over");
        assert_eq!(o.delay, Duration::from_millis(250));
        assert_eq!(o.duplicates, 2);
        assert!(o.deliver);
        let o: PayOptions = serde_json::from_str("{}").unwrap();
        assert_eq!(o, PayOptions::default());
    }
}
