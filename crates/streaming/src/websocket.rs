//! The server side of a WebSocket upgrade, for the protocols the API server terminates itself
//! (remotecommand v5 and the port-forward tunnel): which subprotocol a client offers, the
//! `101` answer, and the WebSocket over the switched connection (tokio-tungstenite).

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

/// remotecommand v5: v4 plus a message that closes one stream (channel 255).
pub const REMOTE_COMMAND_V5: &str = "v5.channel.k8s.io";
/// Port-forward's SPDY byte stream carried in WebSocket binary messages (kubectl 1.31+).
pub const PORT_FORWARD_TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";

pub type ServerSocket = WebSocketStream<TokioIo<Upgraded>>;

/// Whether `req` asks to switch to WebSocket.
pub fn is_websocket_request<B>(req: &Request<B>) -> bool {
    crate::is_upgrade_request(req)
        && req
            .headers()
            .get_all(header::UPGRADE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.trim().eq_ignore_ascii_case("websocket"))
}

/// Whether a WebSocket request offers `protocol` (`Sec-WebSocket-Protocol`, comma-separated,
/// possibly over several lines).
pub fn offers<B>(req: &Request<B>, protocol: &str) -> bool {
    is_websocket_request(req)
        && req
            .headers()
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim() == protocol)
}

/// The `101` that accepts `req` with subprotocol `protocol`, or why the handshake is bad.
pub fn accept_response<B>(
    req: &Request<B>,
    protocol: &str,
) -> Result<Response<Full<Bytes>>, String> {
    let key = req
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or("missing Sec-WebSocket-Key")?;
    if req
        .headers()
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v != "13")
    {
        return Err("unsupported Sec-WebSocket-Version (want 13)".into());
    }
    let accept = derive_accept_key(key.as_bytes());
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).map_err(|e| e.to_string())?,
    );
    h.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_str(protocol).map_err(|e| e.to_string())?,
    );
    Ok(resp)
}

/// The WebSocket once the client's connection has switched.
pub async fn server_socket(upgrade: OnUpgrade) -> Result<ServerSocket, hyper::Error> {
    let io = upgrade.await?;
    Ok(WebSocketStream::from_raw_socket(TokioIo::new(io), Role::Server, None).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws(protocols: &[&str]) -> Request<()> {
        let mut b = Request::get("/x")
            .header("Connection", "Upgrade")
            .header("Upgrade", "websocket")
            .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("Sec-WebSocket-Version", "13");
        for p in protocols {
            b = b.header("Sec-WebSocket-Protocol", *p);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn offered_protocols_over_lines_and_commas() {
        assert!(offers(&ws(&["v5.channel.k8s.io"]), REMOTE_COMMAND_V5));
        assert!(offers(
            &ws(&["v5.channel.k8s.io, v4.channel.k8s.io"]),
            "v4.channel.k8s.io"
        ));
        assert!(offers(
            &ws(&["base64.channel.k8s.io", PORT_FORWARD_TUNNEL]),
            PORT_FORWARD_TUNNEL
        ));
        assert!(!offers(&ws(&["v4.channel.k8s.io"]), REMOTE_COMMAND_V5));
    }

    #[test]
    fn the_rfc_6455_accept_key() {
        let resp = accept_response(&ws(&[]), REMOTE_COMMAND_V5).unwrap();
        assert_eq!(resp.status(), 101);
        assert_eq!(
            resp.headers()["sec-websocket-accept"],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(resp.headers()["sec-websocket-protocol"], REMOTE_COMMAND_V5);
        let mut no_key = ws(&[]);
        no_key.headers_mut().remove("sec-websocket-key");
        assert!(accept_response(&no_key, REMOTE_COMMAND_V5).is_err());
    }
}
