//! The retry policy handed to grammers' sender pool.
//!
//! Our sender owns flood control: on `FLOOD_WAIT` it stores a shared "flood until" in Redis
//! so every sender pauses, then retries. grammers' default `AutoSleep` would instead sleep
//! inside the call for up to a minute, holding the sender's slot and hiding the flood from
//! the others, so this policy never retries an RPC error. It retries an I/O error once:
//! Telegram drops idle connections, grammers reconnects on the next request, and the retry
//! re-sends the same serialized request (same `random_id`), which Telegram deduplicates.

use grammers_mtsender::{InvocationError, RetryContext, RetryPolicy};
use std::ops::ControlFlow;
use std::time::Duration;

pub(crate) struct IoRetryOnce {
    pub(crate) delay: Duration,
}

impl Default for IoRetryOnce {
    fn default() -> Self {
        Self {
            delay: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy for IoRetryOnce {
    fn should_retry(&self, ctx: &RetryContext) -> ControlFlow<(), Duration> {
        match ctx.error {
            InvocationError::Io(_) if ctx.fail_count.get() == 1 => {
                ControlFlow::Continue(self.delay)
            }
            _ => ControlFlow::Break(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use grammers_mtsender::RpcError;
    use std::num::NonZeroU32;

    fn ctx(fail_count: u32, error: InvocationError) -> RetryContext {
        RetryContext {
            fail_count: NonZeroU32::new(fail_count).unwrap(),
            slept_so_far: Duration::ZERO,
            error,
        }
    }

    fn io() -> InvocationError {
        InvocationError::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "read 0 bytes",
        ))
    }

    #[test]
    fn never_sleeps_on_flood_wait() {
        let policy = IoRetryOnce::default();
        for seconds in [0, 1, 30] {
            let flood = InvocationError::Rpc(RpcError {
                code: 420,
                name: "FLOOD_WAIT".into(),
                value: Some(seconds),
                caused_by: None,
            });
            assert_eq!(policy.should_retry(&ctx(1, flood)), ControlFlow::Break(()));
        }
    }

    #[test]
    fn retries_io_once() {
        let policy = IoRetryOnce::default();
        assert_eq!(
            policy.should_retry(&ctx(1, io())),
            ControlFlow::Continue(Duration::from_secs(1))
        );
        assert_eq!(policy.should_retry(&ctx(2, io())), ControlFlow::Break(()));
    }
}
