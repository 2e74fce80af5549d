//! The gateway never touches PostgreSQL, so a chat found blocked while sending is handed to
//! the updates workers as the same member change a user stopping the bot produces.

use redis::aio::ConnectionManager;
use shared::event::{EventKind, InboundEvent, MemberStatus, TelegramUser, UpdateId};
use shared::streams::PAYLOAD_FIELD;
use std::time::{SystemTime, UNIX_EPOCH};

/// Update ids of these events: tag 4 above the 56-bit value, apart from the MTProto update
/// tags (1 to 3). The value is the time, so a later block after an unblock is not taken for
/// a duplicate of the first.
const TAG_BLOCKED_WHILE_SENDING: i64 = 4 << 56;

pub struct StreamBlockedRecorder {
    pub conn: ConnectionManager,
    pub updates_stream: String,
}

impl sender::BlockedRecorder for StreamBlockedRecorder {
    async fn record_blocked(&self, chat_id: i64) -> Result<(), String> {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let event = InboundEvent {
            update_id: UpdateId(TAG_BLOCKED_WHILE_SENDING | (millis & ((1 << 56) - 1))),
            from: TelegramUser {
                id: chat_id,
                username: None,
                first_name: String::new(),
                last_name: None,
                language_code: None,
            },
            kind: EventKind::MemberChange {
                chat_id,
                status: MemberStatus::Blocked,
            },
        };
        let payload = serde_json::to_string(&event).map_err(|e| e.to_string())?;
        let mut conn = self.conn.clone();
        redis::cmd("XADD")
            .arg(&self.updates_stream)
            .arg("*")
            .arg(PAYLOAD_FIELD)
            .arg(payload)
            .query_async::<String>(&mut conn)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}
