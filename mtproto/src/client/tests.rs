use super::*;
use crate::test_support::{closed_port, session_at};
use std::time::Instant;

const TOKEN: &str = "123456:AAE-secret-token";
const HASH: &str = "0123456789abcdef-secret-hash";

fn settings(session_path: PathBuf) -> MtprotoSettings {
    MtprotoSettings {
        api_id: 12345,
        api_hash: SecretString::new(HASH),
        bot_token: SecretString::new(TOKEN),
        session_path,
    }
}

async fn connect_error(settings: &MtprotoSettings, limit: Duration) -> MtprotoError {
    connect_within(settings, limit).await.unwrap_err()
}

fn assert_no_secrets(error: &MtprotoError) {
    let mut text = format!("{error} {error:?}");
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        text.push_str(&format!(" {s}"));
        source = s.source();
    }
    assert!(!text.contains(TOKEN) && !text.contains(HASH), "{text}");
}

#[tokio::test]
async fn connect_fails_fast_when_telegram_refuses_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bot.session");
    drop(session_at(&path, closed_port()).await);
    let settings = settings(path);

    let started = Instant::now();
    let error = connect_error(&settings, Duration::from_secs(20)).await;

    // One connection attempt, grammers' single I/O retry after 1 s, then the error.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(
            error,
            MtprotoError::Telegram {
                step: "checking the authorization",
                ..
            }
        ),
        "{error:?}"
    );
    assert_no_secrets(&error);
}

#[tokio::test]
async fn connect_times_out_when_telegram_never_answers() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts and holds every connection without a byte of answer: a black hole.
    let black_hole = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bot.session");
    drop(session_at(&path, port).await);
    let settings = settings(path);

    let started = Instant::now();
    let error = connect_error(&settings, Duration::from_millis(500)).await;

    // The limit, then at most the grace for the stuck pool before it is aborted.
    assert!(
        started.elapsed() < Duration::from_millis(500) + QUIT_GRACE + Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(
            error,
            MtprotoError::Timeout {
                step: "signing in",
                ..
            }
        ),
        "{error:?}"
    );
    assert_no_secrets(&error);
    black_hole.abort();
}

#[tokio::test]
async fn unopenable_session_file_is_a_session_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("bot.session");
    let error = connect_error(&settings(path.clone()), Duration::from_secs(1)).await;
    assert!(
        matches!(error, MtprotoError::Session { path: ref p, .. } if *p == path),
        "{error:?}"
    );
    assert!(error.to_string().contains("bot.session"));
}

#[test]
fn settings_debug_redacts_secrets() {
    let text = format!("{:?}", settings(PathBuf::from("bot.session")));
    assert!(!text.contains(TOKEN) && !text.contains(HASH), "{text}");
}
