//! The operator plays a Telegram user: lines typed become updates posted to the ingress (as
//! Telegram would post them), and what the bot sends reaches the simulator and is shown here.
//! Typing the number of a button presses it.

use serde_json::Value;
use sim::SimUser;
use std::io::Write;
use std::time::Duration;

pub struct Chat {
    pub http: reqwest::Client,
    pub ingress_url: String,
    pub sim_url: String,
    pub heleket_url: String,
    pub secret: String,
    pub user: SimUser,
    next_update_id: i64,
    seen_seq: u64,
    /// Buttons of the last message with a keyboard: (label, callback data, message id).
    buttons: Vec<(String, Option<String>, i64)>,
    /// The last invoice page the bot linked to.
    last_invoice_url: Option<String>,
}

impl Chat {
    pub fn new(
        http: reqwest::Client,
        ingress_url: String,
        sim_url: String,
        heleket_url: String,
        secret: String,
        user: SimUser,
    ) -> Self {
        Self {
            http,
            ingress_url,
            sim_url,
            heleket_url,
            secret,
            user,
            // Update ids must never repeat (the bot ignores an id it has answered), also
            // across sandbox runs against the same Redis: start from the clock.
            next_update_id: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(1),
            seen_seq: 0,
            buttons: Vec::new(),
            last_invoice_url: None,
        }
    }

    /// Pays the last invoice at the Heleket simulator, as a payer on its page would; the
    /// simulator then posts the signed webhook to the ingress.
    async fn pay(&mut self) -> anyhow::Result<()> {
        let Some(uuid) = self
            .last_invoice_url
            .as_deref()
            .and_then(|u| u.rsplit('/').next())
            .map(str::to_owned)
        else {
            println!("  (no invoice to pay yet: ask for one with /topup 10)");
            return Ok(());
        };
        println!("  (you pay the invoice on the Heleket page)");
        let response = self
            .http
            .post(format!("{}/_sim/pay", self.heleket_url))
            .json(&serde_json::json!({"uuid": uuid, "status": "paid"}))
            .send()
            .await?;
        if !response.status().is_success() {
            println!("  (heleket-sim answered {})", response.status());
        }
        self.show_replies(Duration::from_secs(5)).await
    }

    /// Sends one line as the user: a button number presses that button.
    pub async fn send(&mut self, line: &str) -> anyhow::Result<()> {
        if line.trim() == "/pay" {
            return self.pay().await;
        }
        let update_id = self.next_update_id;
        self.next_update_id += 1;
        let pressed = line
            .trim()
            .parse::<usize>()
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| self.buttons.get(i).cloned());
        let update = match pressed {
            Some((label, Some(data), message_id)) => {
                println!("  (you press “{label}”)");
                sim::updates::callback_query(update_id, &self.user, message_id, &data)
            }
            Some((label, None, _)) => {
                println!("  (“{label}” opens the invoice page; type /pay to pay it)");
                return Ok(());
            }
            None => sim::updates::message_text(update_id, &self.user, line.trim()),
        };
        let response = self
            .http
            .post(format!("{}/telegram/webhook", self.ingress_url))
            .header("X-Telegram-Bot-Api-Secret-Token", &self.secret)
            .json(&update)
            .send()
            .await?;
        if !response.status().is_success() {
            println!("  (ingress answered {})", response.status());
            return Ok(());
        }
        self.show_replies(Duration::from_secs(6)).await
    }

    /// Prints what the bot sent, waiting until it has been quiet for a moment.
    pub async fn show_replies(&mut self, max_wait: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + max_wait;
        let mut quiet_since: Option<tokio::time::Instant> = None;
        while tokio::time::Instant::now() < deadline {
            let calls: Vec<Value> = self
                .http
                .get(format!(
                    "{}/_sim/calls?since={}",
                    self.sim_url, self.seen_seq
                ))
                .send()
                .await?
                .json()
                .await?;
            if calls.is_empty() {
                match quiet_since {
                    // The bot sends about one message a second per chat (Telegram's limit).
                    Some(t) if t.elapsed() > Duration::from_millis(1200) => break,
                    None => quiet_since = Some(tokio::time::Instant::now()),
                    _ => {}
                }
            } else {
                quiet_since = None;
            }
            for call in calls {
                self.seen_seq = call["seq"].as_u64().unwrap_or(self.seen_seq);
                self.print_call(&call);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        std::io::stdout().flush()?;
        Ok(())
    }

    fn print_call(&mut self, call: &Value) {
        let params = &call["params"];
        match call["method"].as_str().unwrap_or_default() {
            "sendMessage" | "editMessageText" => {
                println!(
                    "bot: {}",
                    params["text"]
                        .as_str()
                        .unwrap_or_default()
                        .replace('\n', "\n     ")
                );
                if let Some(rows) = params["reply_markup"]["inline_keyboard"].as_array() {
                    // The bot does not act on the message id of a pressed button yet.
                    let message_id = params["message_id"].as_i64().unwrap_or(1);
                    self.buttons.clear();
                    for row in rows {
                        let mut line = String::from("    ");
                        for b in row.as_array().into_iter().flatten() {
                            let label = b["text"].as_str().unwrap_or("?").to_owned();
                            if let Some(url) = b["url"].as_str() {
                                self.last_invoice_url = Some(url.to_owned());
                            }
                            let data = b["callback_data"].as_str().map(str::to_owned);
                            self.buttons.push((label.clone(), data, message_id));
                            line.push_str(&format!("[{}] {label}   ", self.buttons.len()));
                        }
                        println!("{}", line.trim_end());
                    }
                }
            }
            "answerCallbackQuery" => {
                if let Some(text) = params["text"].as_str() {
                    println!("bot (toast): {text}");
                }
            }
            other => println!("bot called {other}"),
        }
    }
}
