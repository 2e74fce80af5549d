//! The operators' HTTP API on the metrics port, behind `ADMIN_TOKEN` (off without it):
//!
//! - `GET  /admin/users/{id}`: the user, their balance and their latest ledger lines;
//! - `GET  /admin/invoices/{order_id}`: the invoice and every event received for it;
//! - `POST /admin/invoices/{order_id}/reconcile`: ask Heleket now, feed any news in;
//! - `GET  /admin/dead-letters/{updates|payments|outbound}`: what failed, with the reason;
//! - `POST /admin/dead-letters/{stream}/{entry id}/replay`: put it back on its stream.

use crate::db::{Db, PgPool};
use crate::repo;
use hyper::StatusCode;
use redis::aio::ConnectionManager;
use serde_json::{json, Value};
use shared::heleket::client::HeleketClient;
use shared::heleket::types::InvoiceRef;
use shared::secret::SecretString;
use shared::streams::{Keys, PAYLOAD_FIELD, SINGLE_PARTITION};
use subtle::ConstantTimeEq;

const LEDGER_LINES: i64 = 50;
const DEAD_LETTERS: usize = 100;

#[derive(Clone)]
pub struct Admin {
    pub token: SecretString,
    pub pool: PgPool,
    pub conn: ConnectionManager,
    pub keys: Keys,
    pub heleket: Option<HeleketClient>,
}

type Answer = (StatusCode, Value);

fn error(status: StatusCode, reason: &str) -> Answer {
    (status, json!({ "error": reason }))
}

impl Admin {
    /// `Authorization: Bearer <token>`, compared in constant time.
    pub fn authorised(&self, header: Option<&str>) -> bool {
        let given = header
            .and_then(|h| h.strip_prefix("Bearer "))
            .unwrap_or_default();
        bool::from(
            given
                .as_bytes()
                .ct_eq(self.token.expose_secret().as_bytes()),
        )
    }

    pub async fn handle(&self, method: &hyper::Method, path: &str) -> Answer {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let result = match (method.as_str(), parts.as_slice()) {
            ("GET", ["admin", "users", id]) => match id.parse() {
                Ok(id) => self.user(id).await,
                Err(_) => Ok(error(StatusCode::BAD_REQUEST, "user id must be a number")),
            },
            ("GET", ["admin", "invoices", order]) => self.invoice(order).await,
            ("POST", ["admin", "invoices", order, "reconcile"]) => self.reconcile(order).await,
            ("GET", ["admin", "dead-letters", stream]) => self.dead_letters(stream).await,
            ("POST", ["admin", "dead-letters", stream, id, "replay"]) => {
                self.replay(stream, id).await
            }
            _ => Ok(error(StatusCode::NOT_FOUND, "no such admin route")),
        };
        result.unwrap_or_else(|e| {
            tracing::warn!(error.message = %e, %path, "Admin request failed.");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "a dependency failed; see the log",
            )
        })
    }

    async fn user(&self, id: i64) -> anyhow::Result<Answer> {
        let db = self.pool.get().await?;
        let Some(row) = db
            .query_opt(
                "SELECT json_build_object('id', id, 'username', username, 'first_name', first_name,
                        'language_code', language_code, 'blocked_at', blocked_at,
                        'created_at', created_at)
                 FROM users WHERE id = $1",
                &[&id],
            )
            .await?
        else {
            return Ok(error(StatusCode::NOT_FOUND, "no such user"));
        };
        let user: Value = row.get(0);
        let balance = repo::users::balance(&*db, id).await?;
        let ledger: Vec<Value> = repo::users::history(&*db, id, LEDGER_LINES)
            .await?
            .into_iter()
            .map(|l| json!({"kind": l.kind, "amount": l.amount.to_string(), "description": l.description, "when": l.when}))
            .collect();
        Ok((
            StatusCode::OK,
            json!({"user": user, "balance": balance.to_string(), "ledger": ledger}),
        ))
    }

    async fn invoice(&self, order_id: &str) -> anyhow::Result<Answer> {
        let db = self.pool.get().await?;
        let Some((p, events)) = repo::payments::with_events(&*db, order_id).await? else {
            return Ok(error(StatusCode::NOT_FOUND, "no such invoice"));
        };
        Ok((
            StatusCode::OK,
            json!({
                "order_id": p.order_id, "user_id": p.user_id,
                "invoice_uuid": p.invoice_uuid.map(|u| u.to_string()),
                "amount": p.amount.to_string(), "currency": p.currency, "status": p.status,
                "url": p.url, "events": events,
            }),
        ))
    }

    async fn reconcile(&self, order_id: &str) -> anyhow::Result<Answer> {
        let Some(client) = &self.heleket else {
            return Ok(error(StatusCode::CONFLICT, "Heleket is not configured"));
        };
        let db = self.pool.get().await?;
        if repo::payments::with_events(&*db, order_id).await?.is_none() {
            return Ok(error(StatusCode::NOT_FOUND, "no such invoice"));
        }
        let invoice = match client
            .payment_info(InvoiceRef::OrderId(order_id.to_owned()))
            .await
        {
            Ok(invoice) => invoice,
            Err(e) => return Ok(error(StatusCode::BAD_GATEWAY, &e.to_string())),
        };
        crate::payments::feed_invoice(&self.conn, &self.keys, &invoice).await?;
        Ok((
            StatusCode::OK,
            json!({"fed": true, "heleket_status": invoice.status()
                .map(|s| s.as_str().to_owned())}),
        ))
    }

    fn stream(&self, name: &str) -> Option<String> {
        let p = SINGLE_PARTITION;
        match name {
            "updates" => Some(self.keys.updates_stream(p)),
            "payments" => Some(self.keys.payments_stream(p)),
            "outbound" => Some(self.keys.outbound_stream(p)),
            _ => None,
        }
    }

    async fn dead_letters(&self, name: &str) -> anyhow::Result<Answer> {
        let Some(stream) = self.stream(name) else {
            return Ok(error(StatusCode::NOT_FOUND, "no such stream"));
        };
        let mut conn = self.conn.clone();
        let reply: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(self.keys.dead_letter_stream(&stream))
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(DEAD_LETTERS)
            .query_async(&mut conn)
            .await?;
        let entries: Vec<Value> = reply
            .ids
            .iter()
            .map(|id| {
                let fields: serde_json::Map<String, Value> = id
                    .map
                    .iter()
                    .filter_map(|(k, v)| {
                        redis::from_redis_value_ref::<String>(v)
                            .ok()
                            .map(|v| (k.clone(), Value::String(v)))
                    })
                    .collect();
                json!({"id": id.id, "fields": fields})
            })
            .collect();
        Ok((StatusCode::OK, json!({ "entries": entries })))
    }

    /// Appends the original payload to its stream again and removes the dead letter, in one
    /// MULTI, so it is either replayed once or still there.
    async fn replay(&self, name: &str, id: &str) -> anyhow::Result<Answer> {
        let Some(stream) = self.stream(name) else {
            return Ok(error(StatusCode::NOT_FOUND, "no such stream"));
        };
        let dead = self.keys.dead_letter_stream(&stream);
        let mut conn = self.conn.clone();
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(&dead)
            .arg(id)
            .arg(id)
            .query_async(&mut conn)
            .await?;
        let payload = reply
            .ids
            .first()
            .and_then(|e| e.map.get(PAYLOAD_FIELD))
            .and_then(|v| redis::from_redis_value_ref::<String>(v).ok());
        let Some(payload) = payload else {
            return Ok(error(
                StatusCode::NOT_FOUND,
                "no such dead letter with a payload",
            ));
        };
        let (new_id,): (String,) = redis::pipe()
            .atomic()
            .cmd("XADD")
            .arg(&stream)
            .arg("*")
            .arg(PAYLOAD_FIELD)
            .arg(payload)
            .cmd("XDEL")
            .arg(&dead)
            .arg(id)
            .ignore()
            .query_async(&mut conn)
            .await?;
        tracing::info!(%stream, dead_letter = %id, %new_id, "Dead letter replayed.");
        Ok((StatusCode::OK, json!({ "replayed_as": new_id })))
    }
}
