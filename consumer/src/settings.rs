use shared::config::{ConfigError, Env};
use std::time::Duration;

/// How a consumer reads its stream.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// Entries read per `XREADGROUP`.
    pub batch_size: usize,
    /// How long one `XREADGROUP` blocks when the stream is empty.
    pub block: Duration,
    /// An entry pending this long with a consumer is taken over by another (`XAUTOCLAIM`).
    pub claim_idle: Duration,
    /// How often each consumer looks for such entries.
    pub claim_interval: Duration,
    /// After this many deliveries an entry goes to the dead-letter stream.
    pub max_deliveries: u64,
    /// How often acknowledged entries are trimmed from the streams.
    pub trim_interval: Duration,
    /// Dead-letter streams keep about this many entries.
    pub dead_letter_max_len: usize,
}

impl ConsumerSettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let s = Self {
            batch_size: env.parsed_or("STREAM_BATCH_SIZE", 64)?,
            block: env.millis_or("STREAM_BLOCK_MS", 2_000)?,
            claim_idle: env.millis_or("STREAM_CLAIM_IDLE_MS", 30_000)?,
            claim_interval: env.millis_or("STREAM_CLAIM_INTERVAL_MS", 5_000)?,
            max_deliveries: env.parsed_or("STREAM_MAX_DELIVERIES", 5)?,
            trim_interval: env.millis_or("STREAM_TRIM_INTERVAL_MS", 10_000)?,
            dead_letter_max_len: env.parsed_or("STREAM_DEAD_LETTER_MAX_LEN", 100_000)?,
        };
        if s.batch_size == 0 || s.max_deliveries == 0 {
            return Err(ConfigError::Invalid {
                var: "STREAM_BATCH_SIZE",
                reason: "batch size and max deliveries must be positive".into(),
            });
        }
        Ok(s)
    }
}
