//! Gateway tests against real Redis servers (one private `redis-server` per test, from
//! `testkit`). Set `TEST_LOG=debug` to see the gateway's logs.

mod lease;

use std::sync::Once;

pub fn init_tracing() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        if let Ok(filter) = std::env::var("TEST_LOG") {
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .init();
        }
    });
}
