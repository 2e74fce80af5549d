use super::{append, read_body, State};
use crate::error::IngressError;
use hyper::body::Incoming;
use hyper::Request;
use shared::config::WebhookSources;
use shared::heleket::webhook;
use shared::secret::SecretString;
use shared::streams::{Keys, SINGLE_PARTITION};
use std::net::{IpAddr, SocketAddr};
use tracing::Span;

/// Heleket's payment webhook: the key that verifies it, who may send it, where it goes.
pub(crate) struct HeleketRoute {
    api_key: SecretString,
    /// Canonical forms (IPv4-mapped IPv6 as IPv4), as the sender is compared in that form.
    allowed: Vec<IpAddr>,
    trusted_proxies: Vec<IpAddr>,
    stream: String,
}

impl HeleketRoute {
    pub(crate) fn new(api_key: SecretString, sources: WebhookSources, keys: &Keys) -> Self {
        let canonical = |ips: Vec<IpAddr>| ips.into_iter().map(|ip| ip.to_canonical()).collect();
        Self {
            api_key,
            allowed: canonical(sources.allowed),
            trusted_proxies: canonical(sources.trusted_proxies),
            stream: keys.payments_stream(SINGLE_PARTITION),
        }
    }
}

/// `Ok` only once Redis has the verified event.
pub(super) async fn webhook(
    state: &State,
    hook: &HeleketRoute,
    peer: SocketAddr,
    forwarded_for: Option<&str>,
    req: Request<Incoming>,
) -> Result<(), IngressError> {
    let body = read_body(req.into_body(), state.max_body_bytes).await?;
    let sender = sender(peer.ip(), forwarded_for, &hook.trusted_proxies);
    if !is_allowed(sender, &hook.allowed) {
        return Err(IngressError::SenderNotAllowed {
            sender: sender.map_or_else(|| "unreadable".to_owned(), |ip| ip.to_string()),
        });
    }
    let event = webhook::verify(&body, &hook.api_key)?;
    Span::current().record("payment_uuid", event.uuid.as_str());
    let entry = webhook::PaymentStreamEntry {
        event,
        source: None,
        // Verified JSON, hence UTF-8; kept verbatim for the audit trail.
        raw: Some(String::from_utf8_lossy(&body).into_owned()),
    };
    let payload = serde_json::to_vec(&entry).map_err(IngressError::Encode)?;
    append(state, &hook.stream, &payload).await
}

/// Who sent the request: the peer, unless the peer is a trusted proxy; then the right-most
/// `X-Forwarded-For` entry that is not a trusted proxy, since every entry left of it was
/// written by that untrusted sender and proves nothing. When every entry is a trusted proxy,
/// the left-most. `None` when the entry that counts is not an address.
fn sender(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpAddr]) -> Option<IpAddr> {
    let mut sender = peer.to_canonical();
    if !trusted.contains(&sender) {
        return Some(sender);
    }
    let Some(list) = forwarded_for else {
        return Some(sender);
    };
    for entry in list.rsplit(',').map(str::trim).filter(|e| !e.is_empty()) {
        sender = parse_forwarded(entry)?;
        if !trusted.contains(&sender) {
            break;
        }
    }
    Some(sender)
}

/// `203.0.113.7`, `2001:db8::1`, and the forms with a port some proxies write
/// (`203.0.113.7:4711`, `[2001:db8::1]:4711`) or brackets alone.
fn parse_forwarded(entry: &str) -> Option<IpAddr> {
    let ip = entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|s| s.ip()))
        .or_else(|_| {
            entry
                .strip_prefix('[')
                .and_then(|e| e.strip_suffix(']'))
                .unwrap_or(entry)
                .parse::<IpAddr>()
        })
        .ok()?;
    Some(ip.to_canonical())
}

/// An empty allow-list admits any sender, even one whose address could not be read.
fn is_allowed(sender: Option<IpAddr>, allowed: &[IpAddr]) -> bool {
    allowed.is_empty() || sender.is_some_and(|ip| allowed.contains(&ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const PROXY: &str = "10.0.0.5";

    #[test]
    fn an_untrusted_peer_is_the_sender_whatever_it_forwards() {
        let trusted = [ip(PROXY)];
        for header in [None, Some("31.133.220.8"), Some("garbage")] {
            assert_eq!(
                sender(ip("198.51.100.9"), header, &trusted),
                Some(ip("198.51.100.9"))
            );
        }
        assert_eq!(
            sender(ip("127.0.0.1"), Some("31.133.220.8"), &[]),
            Some(ip("127.0.0.1"))
        );
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_entry_counts() {
        let trusted = [ip(PROXY), ip("10.0.0.6")];
        let from_proxy = |header: Option<&str>| sender(ip(PROXY), header, &trusted);
        assert_eq!(from_proxy(Some("31.133.220.8")), Some(ip("31.133.220.8")));
        // The left entry is whatever the sender claimed; the proxy appended the real one.
        assert_eq!(
            from_proxy(Some("31.133.220.8, 198.51.100.9")),
            Some(ip("198.51.100.9"))
        );
        assert_eq!(
            from_proxy(Some("198.51.100.9, 31.133.220.8, 10.0.0.6")),
            Some(ip("31.133.220.8"))
        );
        // No header: the proxy itself sent it. Only proxies listed: the left-most of them.
        assert_eq!(from_proxy(None), Some(ip(PROXY)));
        assert_eq!(from_proxy(Some("10.0.0.6, 10.0.0.5")), Some(ip("10.0.0.6")));
        // Garbage where the sender should be is no sender; garbage further left is ignored.
        assert_eq!(from_proxy(Some("31.133.220.8, nonsense")), None);
        assert_eq!(
            from_proxy(Some("nonsense, 31.133.220.8")),
            Some(ip("31.133.220.8"))
        );
        assert_eq!(from_proxy(Some("31.133.220.8, ")), Some(ip("31.133.220.8")));
    }

    #[test]
    fn addresses_are_compared_in_canonical_form() {
        let trusted = [ip(PROXY)];
        assert_eq!(
            sender(
                ip("::ffff:10.0.0.5"),
                Some("[::ffff:31.133.220.8]:4711"),
                &trusted
            ),
            Some(ip("31.133.220.8"))
        );
        assert_eq!(parse_forwarded("31.133.220.8:80"), Some(ip("31.133.220.8")));
        assert_eq!(parse_forwarded("[2001:db8::1]"), Some(ip("2001:db8::1")));
        assert_eq!(parse_forwarded("2001:db8::1"), Some(ip("2001:db8::1")));
        assert_eq!(parse_forwarded("unknown"), None);
    }

    #[test]
    fn allow_list() {
        let allowed = [ip("31.133.220.8")];
        assert!(is_allowed(Some(ip("31.133.220.8")), &allowed));
        assert!(!is_allowed(Some(ip("127.0.0.1")), &allowed));
        assert!(!is_allowed(None, &allowed));
        assert!(is_allowed(None, &[]));
        assert!(is_allowed(Some(ip("127.0.0.1")), &[]));
    }
}
