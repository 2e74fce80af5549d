//! Helpers both simulators' HTTP tests use.

use serde_json::Value;
use sim::heleket::HeleketSim;
use sim::TelegramSim;

/// A simulator with a `/_sim/` control API.
pub trait Controlled {
    fn api_url(&self) -> String;
}

impl Controlled for TelegramSim {
    fn api_url(&self) -> String {
        TelegramSim::api_url(self)
    }
}

impl Controlled for HeleketSim {
    fn api_url(&self) -> String {
        HeleketSim::api_url(self)
    }
}

/// Calls `/_sim/{path}`, with `body` as JSON if given; the answer must be JSON.
pub async fn control(
    sim: &impl Controlled,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request =
        reqwest::Client::new().request(method, format!("{}/_sim/{path}", sim.api_url()));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}
