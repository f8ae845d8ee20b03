//! What a reverse proxy changes in the headers it passes on: hop-by-hop headers dropped
//! (RFC 9110 §7.6.1), and the client's address, scheme, host and port added as
//! `X-Forwarded-*` and `X-Real-IP`.

use std::net::SocketAddr;

use http::HeaderMap;
use http::header::{self, HeaderName, HeaderValue};

/// Who sent a request, and on which listener.
#[derive(Clone, Copy, Debug)]
pub struct ClientInfo {
    pub peer: SocketAddr,
    pub tls: bool,
    pub local_port: u16,
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Whether an HTTP/1.1 request asks to switch protocols (`Connection: upgrade` with an
/// `Upgrade` header), e.g. a WebSocket handshake.
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) && connection_has(headers, "upgrade")
}

fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Drops hop-by-hop headers and those `Connection` names. `TE: trailers` stays (gRPC needs
/// it end to end); with `upgrade`, `Upgrade` stays and `Connection` says `upgrade`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for n in named {
        if !(upgrade && n == header::UPGRADE) && n != header::TE {
            headers.remove(&n);
        }
    }
    let te_trailers = headers
        .get(header::TE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    for h in [
        &header::CONNECTION,
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &header::TRAILER,
        &header::TRANSFER_ENCODING,
    ] {
        headers.remove(h);
    }
    if !te_trailers {
        headers.remove(header::TE);
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

/// Sets `X-Forwarded-For`, `X-Real-IP`, `X-Forwarded-Proto`, `-Host` and `-Port`. The
/// client's own `X-Forwarded-For` is replaced, not appended to: this is the edge, and what
/// a client claims is not trusted (nginx ingress' default, `use-forwarded-headers: false`).
pub fn add_forwarded(headers: &mut HeaderMap, client: &ClientInfo, host: Option<&HeaderValue>) {
    let ip = client.peer.ip().to_canonical().to_string();
    if let Ok(v) = HeaderValue::from_str(&ip) {
        headers.insert(X_FORWARDED_FOR.clone(), v.clone());
        headers.insert(X_REAL_IP.clone(), v);
    }
    headers.insert(
        X_FORWARDED_PROTO.clone(),
        HeaderValue::from_static(if client.tls { "https" } else { "http" }),
    );
    if let Some(h) = host {
        headers.insert(X_FORWARDED_HOST.clone(), h.clone());
    }
    headers.insert(
        X_FORWARDED_PORT.clone(),
        HeaderValue::from(client.local_port),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn hop_by_hop_headers_go_te_trailers_and_upgrade_stay_when_wanted() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("x-kept", "1"),
        ]);
        strip_hop_by_hop(&mut h, false);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["te", "x-kept"]);
        let mut u = map(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("te", "gzip"),
        ]);
        assert!(is_upgrade(&u));
        strip_hop_by_hop(&mut u, true);
        assert_eq!(
            u.get("upgrade").map(|v| v.as_bytes()),
            Some(&b"websocket"[..])
        );
        assert_eq!(
            u.get("connection").map(|v| v.as_bytes()),
            Some(&b"upgrade"[..])
        );
        assert!(u.get("te").is_none());
    }

    #[test]
    fn forwarded_headers_name_the_client_not_what_it_claims() {
        let mut h = map(&[("x-forwarded-for", "6.6.6.6")]);
        let client = ClientInfo {
            peer: "[::ffff:10.0.0.7]:5555"
                .parse()
                .unwrap_or_else(|e| panic!("{e}")),
            tls: true,
            local_port: 443,
        };
        add_forwarded(
            &mut h,
            &client,
            Some(&HeaderValue::from_static("a.example.com")),
        );
        let get = |k: &str| h.get(k).and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert_eq!(get("x-forwarded-for"), "10.0.0.7");
        assert_eq!(get("x-real-ip"), "10.0.0.7");
        assert_eq!(get("x-forwarded-proto"), "https");
        assert_eq!(get("x-forwarded-host"), "a.example.com");
        assert_eq!(get("x-forwarded-port"), "443");
    }
}
