//! What each action sends and which replies it waits for (the bot's texts are in
//! `workers/src/texts.rs`; users speak English here).

use std::time::Instant;

use bytes::Bytes;
use hyper::header::HeaderValue;
use serde_json::{json, Value};
use sim::heleket::PayOptions;

use crate::mix::Action;
use crate::sims::{query_id, Button};
use crate::stats::C;
use crate::user::{cents_after, money, Ctx, Posted, User, Want};

const WELCOME: &[&str] = &["Hi, "];
const BALANCE: &[&str] = &["Balance: "];
const INVOICE: &[&str] = &["Invoice for "];
const PAID: &[&str] = &["Payment received: +"];
const PURCHASE: &[&str] = &["You bought ", "Not enough balance", "No such product"];
const HELP: &[&str] = &["What I can do"];
const ANY: &[&str] = &[];

/// The products of `sandbox/seed.sql` that have no stock limit: (id, price in cents).
const PRODUCTS: [(i64, i64); 2] = [(3, 150), (2, 900)];

fn body(update: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(update).unwrap_or_default())
}

impl User {
    pub async fn act(&mut self, ctx: &Ctx, action: Action, scheduled: Instant) {
        let action = match action {
            // Buttons need a menu; a user without one (its welcome went missing) asks again.
            Action::Callback if self.menu.is_empty() => Action::Start,
            other => other,
        };
        match action {
            Action::Start => self.start(ctx, scheduled).await,
            Action::Balance => self.balance(ctx, scheduled).await,
            Action::TopUp => {
                if self.invoice(ctx, scheduled).await {
                    self.pay(ctx).await;
                }
            }
            Action::Invoice => {
                self.invoice(ctx, scheduled).await;
            }
            Action::PayInvoice => self.pay(ctx).await,
            Action::Buy => self.buy(ctx, scheduled).await,
            Action::Callback => self.press(ctx, scheduled).await,
            Action::Junk => self.junk(ctx, scheduled).await,
        }
    }

    /// Sends a text message; `Some(replies)` when every wanted reply came.
    async fn say(
        &mut self,
        ctx: &Ctx,
        text: &str,
        segment: &'static str,
        wants: &[Want],
        scheduled: Instant,
    ) -> Option<Vec<crate::sims::Reply>> {
        let update = sim::updates::message_text(ctx.update_id(), &self.sim, text);
        match self
            .post_update(ctx, body(&update), None, 200, scheduled)
            .await
        {
            Posted::Accepted(at) => self.expect(ctx, segment, at, wants).await,
            Posted::Failed => None,
        }
    }

    async fn start(&mut self, ctx: &Ctx, scheduled: Instant) {
        let wants = [Want::Message(WELCOME)];
        let Some(replies) = self.say(ctx, "/start", "start", &wants, scheduled).await else {
            return;
        };
        let menu: Vec<String> = replies[0]
            .buttons
            .iter()
            .filter_map(|b| match b {
                Button::Callback { data, .. } => Some(data.clone()),
                Button::Url { .. } => None,
            })
            .collect();
        if menu.len() != 5 {
            self.wrong(ctx, "start: five menu buttons", &replies[0].text);
        }
        self.menu = menu;
    }

    async fn balance(&mut self, ctx: &Ctx, scheduled: Instant) {
        let wants = [Want::Message(BALANCE)];
        if let Some(replies) = self
            .say(ctx, "/balance", "balance", &wants, scheduled)
            .await
        {
            self.check_balance(ctx, &replies[0].text, "Balance: ");
        }
    }

    fn check_balance(&mut self, ctx: &Ctx, text: &str, marker: &str) {
        if self.model.uncertain {
            return;
        }
        if cents_after(text, marker) != Some(self.model.balance()) {
            self.wrong(ctx, "balance", text);
        }
    }

    /// `/topup AMOUNT` with an amount this user never asked for before (so no cached invoice
    /// is reused); keeps the invoice in `self.invoice`. True when it came.
    async fn invoice(&mut self, ctx: &Ctx, scheduled: Instant) -> bool {
        self.topups += 1;
        let cents = 1000 + self.topups;
        let wants = [Want::Message(INVOICE)];
        let text = format!("/topup {}", money(cents));
        let Some(replies) = self.say(ctx, &text, "topup", &wants, scheduled).await else {
            return false;
        };
        let reply = &replies[0];
        let url = reply.buttons.iter().find_map(|b| match b {
            Button::Url { url, .. } => Some(url.clone()),
            Button::Callback { .. } => None,
        });
        let uuid = url.as_deref().and_then(|u| u.rsplit('/').next());
        match uuid {
            Some(uuid) if reply.text.contains(&format!("{} USD", money(cents))) => {
                self.invoice = Some((uuid.to_owned(), cents));
                true
            }
            _ => {
                self.wrong(ctx, "invoice with a link", &reply.text);
                false
            }
        }
    }

    /// Pays the kept invoice at the Heleket simulator, which posts the signed webhook (and
    /// its duplicates) to the ingress; then waits for the credit notification.
    async fn pay(&mut self, ctx: &Ctx) {
        let Some((uuid, cents)) = self.invoice.take() else {
            return;
        };
        let options = PayOptions {
            duplicates: ctx.payment_duplicates,
            ..PayOptions::default()
        };
        let started = Instant::now();
        ctx.stats().add(C::Payments, 1);
        let deliveries = match ctx.heleket.pay(&uuid, options).await {
            Ok(d) => d,
            Err(e) => {
                eprintln!("loadtest: paying {uuid}: {e:#}");
                Vec::new()
            }
        };
        for d in &deliveries {
            let label = d
                .http_status
                .map_or_else(|| "no answer".to_owned(), |s| s.to_string());
            ctx.stats().heleket_status(&label);
        }
        if !deliveries.iter().any(|d| d.succeeded()) {
            ctx.stats().fail(C::WebhooksFailed, 1, self.epoch);
            self.model.uncertain = true;
            return;
        }
        let wants = [Want::Message(PAID)];
        let Some(replies) = self.expect(ctx, "payment", started, &wants).await else {
            self.model.uncertain = true;
            return;
        };
        self.model.credited += cents;
        self.model.invoices_paid += 1;
        let text = &replies[0].text;
        if cents_after(text, "received: ") != Some(cents) {
            self.wrong(ctx, "credited amount", text);
        }
        self.check_balance(ctx, text, "Balance: ");
    }

    async fn buy(&mut self, ctx: &Ctx, scheduled: Instant) {
        let (product, price) = PRODUCTS[usize::from(self.rng.below(4) == 0)];
        let wants = [Want::Message(PURCHASE)];
        let text = format!("/buy {product}");
        let Some(replies) = self.say(ctx, &text, "buy", &wants, scheduled).await else {
            self.model.uncertain = true;
            return;
        };
        let text = &replies[0].text;
        let affordable = self.model.balance() >= price;
        if text.starts_with("You bought ") {
            self.model.spent += price;
            self.model.purchases += 1;
            if !self.model.uncertain && !affordable {
                self.wrong(ctx, "bought without the money", text);
            }
            self.check_balance(ctx, text, "Balance: ");
        } else if text.starts_with("Not enough balance") {
            if !self.model.uncertain && affordable {
                self.wrong(ctx, "refused with the money", text);
            }
        } else {
            self.wrong(ctx, "purchase", text);
        }
    }

    async fn press(&mut self, ctx: &Ctx, scheduled: Instant) {
        let data = self.menu[self.rng.below(self.menu.len() as u64) as usize].clone();
        self.presses += 1;
        let wants = [Want::CallbackAnswer, Want::Message(ANY)];
        let Some(replies) = self.click(ctx, &data, "callback", &wants, scheduled).await else {
            return;
        };
        let text = replies[1].text.clone();
        if text.starts_with("Balance: ") {
            self.check_balance(ctx, &text, "Balance: ");
        }
    }

    async fn click(
        &mut self,
        ctx: &Ctx,
        data: &str,
        segment: &'static str,
        wants: &[Want],
        scheduled: Instant,
    ) -> Option<Vec<crate::sims::Reply>> {
        let mut update = sim::updates::callback_query(ctx.update_id(), &self.sim, 1, data);
        update["callback_query"]["id"] = json!(query_id(self.id, self.presses));
        match self
            .post_update(ctx, body(&update), None, 200, scheduled)
            .await
        {
            Posted::Accepted(at) => self.expect(ctx, segment, at, wants).await,
            Posted::Failed => None,
        }
    }

    /// What a real bot also gets: broken bodies, forged requests, updates it does not handle,
    /// stale or forged buttons, chatter.
    async fn junk(&mut self, ctx: &Ctx, scheduled: Instant) {
        let update_id = ctx.update_id();
        match self.rng.below(5) {
            0 => {
                let broken = Bytes::from(format!("{{\"update_id\": {update_id}, \"message\": "));
                self.post_update(ctx, broken, None, 400, scheduled).await;
            }
            1 => {
                let update = sim::updates::message_text(update_id, &self.sim, "/balance");
                let forged = HeaderValue::from_static("not-the-secret");
                self.post_update(ctx, body(&update), Some(forged), 401, scheduled)
                    .await;
            }
            2 => {
                let mut update = sim::updates::message_text(update_id, &self.sim, "edited");
                let message = update["message"].take();
                let edited = json!({"update_id": update_id, "edited_message": message});
                self.post_update(ctx, body(&edited), None, 200, scheduled)
                    .await;
            }
            3 if !self.menu.is_empty() => {
                // The payload changed under its tag: the bot must refuse the button.
                let mut data = self.menu[0].clone();
                let first = if data.starts_with('m') { "n" } else { "m" };
                data.replace_range(..1, first);
                self.presses += 1;
                let wants = [Want::CallbackAnswer];
                if let Some(replies) = self.click(ctx, &data, "junk", &wants, scheduled).await {
                    if !replies[0].text.contains("no longer valid") {
                        self.wrong(ctx, "tampered button", &replies[0].text);
                    }
                }
            }
            _ => {
                let wants = [Want::Message(HELP)];
                self.say(ctx, "hello, what is this?", "junk", &wants, scheduled)
                    .await;
            }
        }
    }
}
