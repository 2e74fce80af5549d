//! `ingress mtproto` as a process: what an operator sees when the settings are wrong.

use std::process::Command;

fn gateway(env: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ingress"))
        .arg("mtproto")
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("ingress runs")
}

const COMPLETE: [(&str, &str); 4] = [
    ("TELEGRAM_TRANSPORT", "mtproto"),
    ("TELEGRAM_BOT_TOKEN", "123:abc"),
    ("TELEGRAM_API_ID", "12345"),
    ("TELEGRAM_API_HASH", "0123456789abcdef0123456789abcdef"),
];

#[test]
fn missing_credentials_stop_the_gateway_with_one_line_and_exit_code_2() {
    for missing in ["TELEGRAM_API_ID", "TELEGRAM_API_HASH", "TELEGRAM_BOT_TOKEN"] {
        let env: Vec<_> = COMPLETE
            .into_iter()
            .filter(|(k, _)| *k != missing)
            .collect();
        let out = gateway(&env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{missing}: {stderr}");
        assert_eq!(
            stderr.trim(),
            format!("ingress mtproto: missing setting {missing}"),
        );
        assert!(
            !stderr.contains("0123456789abcdef"),
            "secret in the message"
        );
    }
}

#[test]
fn the_gateway_refuses_to_run_for_the_botapi_transport() {
    let env: Vec<_> = COMPLETE
        .into_iter()
        .filter(|(k, _)| *k != "TELEGRAM_TRANSPORT")
        .collect();
    let out = gateway(&env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("TELEGRAM_TRANSPORT=mtproto"), "{stderr}");
}
