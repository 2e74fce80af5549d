//! Offline stand-ins for Telegram: a session whose home DC is a local port.

use grammers_session::storages::SqliteSession;
use grammers_session::types::DcOption;
use grammers_session::Session;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::path::Path;

/// A session file whose home DC (2, the default) lives at 127.0.0.1:`port`.
pub(crate) async fn session_at(path: &Path, port: u16) -> SqliteSession {
    let session = SqliteSession::open(path).await.unwrap();
    session.set_home_dc_id(2).await.unwrap();
    session
        .set_dc_option(&DcOption {
            id: 2,
            ipv4: SocketAddrV4::new(Ipv4Addr::LOCALHOST, port),
            ipv6: SocketAddrV6::new(Ipv6Addr::LOCALHOST, port, 0, 0),
            auth_key: None,
        })
        .await
        .unwrap();
    session
}

/// A port nothing listens on, so connecting is refused at once.
pub(crate) fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    listener.local_addr().unwrap().port()
}
