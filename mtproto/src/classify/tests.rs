use super::*;
use std::io;

fn rpc(code: i32, name: &str, value: Option<u32>) -> InvocationError {
    InvocationError::Rpc(RpcError {
        code,
        name: name.into(),
        value,
        caused_by: None,
    })
}

#[test]
fn flood_waits_become_retry_after_of_at_least_one_second() {
    assert_eq!(
        classify(&rpc(420, "FLOOD_WAIT", Some(31))),
        DeliveryOutcome::RetryAfter(Duration::from_secs(31))
    );
    assert_eq!(
        classify(&rpc(420, "SLOWMODE_WAIT", Some(5))),
        DeliveryOutcome::RetryAfter(Duration::from_secs(5))
    );
    assert_eq!(
        classify(&rpc(420, "FLOOD_WAIT", Some(0))),
        DeliveryOutcome::RetryAfter(Duration::from_secs(1))
    );
    assert!(matches!(
        classify(&rpc(420, "FLOOD_WAIT", None)),
        DeliveryOutcome::Unavailable(_)
    ));
}

#[test]
fn unreachable_users_are_forbidden() {
    for name in [
        "USER_IS_BLOCKED",
        "INPUT_USER_DEACTIVATED",
        "USER_DEACTIVATED",
        "USER_DEACTIVATED_BAN",
        "PEER_ID_INVALID",
    ] {
        assert!(
            matches!(classify(&rpc(400, name, None)), DeliveryOutcome::Forbidden(ref r) if r.contains(name)),
            "{name}"
        );
    }
    assert!(matches!(
        classify(&rpc(403, "CHAT_WRITE_FORBIDDEN", None)),
        DeliveryOutcome::Forbidden(_)
    ));
    assert!(matches!(
        classify(&rpc(403, "SOMETHING_NEW_FORBIDDEN", None)),
        DeliveryOutcome::Forbidden(_)
    ));
}

#[test]
fn not_modified_is_delivered() {
    assert_eq!(
        classify(&rpc(400, "MESSAGE_NOT_MODIFIED", None)),
        DeliveryOutcome::Delivered
    );
    assert_eq!(
        classify(&rpc(400, "RANDOM_ID_DUPLICATE", None)),
        DeliveryOutcome::Delivered
    );
}

#[test]
fn other_bad_requests_are_rejected() {
    for name in [
        "QUERY_ID_INVALID",
        "MESSAGE_ID_INVALID",
        "BUTTON_DATA_INVALID",
    ] {
        assert!(
            matches!(classify(&rpc(400, name, None)), DeliveryOutcome::Rejected(ref r) if r.contains(name)),
            "{name}"
        );
    }
}

#[test]
fn server_and_connection_trouble_is_unavailable() {
    for error in [
        rpc(500, "INTERNAL", None),
        rpc(-503, "Timeout", None),
        rpc(401, "AUTH_KEY_UNREGISTERED", None),
        InvocationError::Io(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "read 0 bytes",
        )),
        InvocationError::Transport(grammers_mtproto::transport::Error::BadStatus { status: 429 }),
        InvocationError::Dropped("SenderPoolRunner was dropped at send"),
        InvocationError::InvalidDc,
    ] {
        assert!(
            matches!(classify(&error), DeliveryOutcome::Unavailable(_)),
            "{error}"
        );
    }
}
