//! Names of every Redis stream and key the system owns.
//!
//! Each stream name carries its partition in a hash tag (`ps:updates:{0}`), so that the later
//! split by chat can spread partitions over Redis Cluster slots while a partition's stream, its
//! dead letters and its per-partition keys stay in one slot. Today there is one partition.

/// Consumer group of the `updates` role on the updates stream.
pub const UPDATES_GROUP: &str = "updates";
/// Consumer group of the `sender` role on the outbound stream.
pub const SENDER_GROUP: &str = "sender";
/// Consumer group of the `payments` role on the payments stream.
pub const PAYMENTS_GROUP: &str = "payments";

/// Field of a stream entry holding its JSON payload.
pub const PAYLOAD_FIELD: &str = "d";

/// The partition every chat maps to until partitioning is built.
pub const SINGLE_PARTITION: u16 = 0;

#[derive(Debug, Clone)]
pub struct Keys {
    namespace: String,
}

impl Keys {
    pub fn new(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
        }
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Normalized Telegram updates, appended by the ingress.
    pub fn updates_stream(&self, partition: u16) -> String {
        format!("{}:updates:{{{partition}}}", self.namespace)
    }

    /// Messages for the bot to send, appended by the workers.
    pub fn outbound_stream(&self, partition: u16) -> String {
        format!("{}:outbound:{{{partition}}}", self.namespace)
    }

    /// Verified Heleket webhook events (and reconciler findings), appended by the ingress.
    pub fn payments_stream(&self, partition: u16) -> String {
        format!("{}:payments:{{{partition}}}", self.namespace)
    }

    /// Entries that failed too often, with the reason; shares its source's hash tag.
    pub fn dead_letter_stream(&self, source_stream: &str) -> String {
        format!("{source_stream}:dead")
    }

    /// Set while a chat has blocked the bot; senders check it before writing to the chat.
    pub fn blocked_chat(&self, chat_id: i64) -> String {
        self.key(format_args!("blocked:{chat_id}"))
    }

    /// Any other key: rate limits, caches, dedupe markers.
    pub fn key(&self, parts: std::fmt::Arguments<'_>) -> String {
        format!("{}:{}", self.namespace, parts)
    }
}

/// The partition a chat's entries go to. One partition for now; the function exists so every
/// producer already asks it.
pub fn partition_for_chat(_chat_id: i64) -> u16 {
    SINGLE_PARTITION
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_carry_the_partition_as_a_hash_tag() {
        let k = Keys::new("ps");
        assert_eq!(k.updates_stream(0), "ps:updates:{0}");
        assert_eq!(k.outbound_stream(3), "ps:outbound:{3}");
        assert_eq!(
            k.dead_letter_stream(&k.updates_stream(0)),
            "ps:updates:{0}:dead"
        );
        assert_eq!(k.key(format_args!("rl:{}", 42)), "ps:rl:42");
    }
}
