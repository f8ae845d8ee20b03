//! The server side of a WebSocket upgrade, for the protocols the API server terminates itself
//! (remotecommand v5, the port-forward tunnel, logs as messages): which subprotocol a client
//! offers, the `101` answer, and the WebSocket over the switched connection
//! (tokio-tungstenite).

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// remotecommand v5: v4 plus a message that closes one stream (channel 255).
pub const REMOTE_COMMAND_V5: &str = "v5.channel.k8s.io";
/// Port-forward's SPDY byte stream carried in WebSocket binary messages (kubectl 1.31+).
pub const PORT_FORWARD_TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";

/// A byte stream in binary messages, and the same as base64 in text messages.
pub const BINARY: &str = "binary.k8s.io";
pub const BASE64_BINARY: &str = "base64.binary.k8s.io";

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

/// The subprotocols a request offers, in its order.
fn offered<B>(req: &Request<B>) -> Vec<String> {
    req.headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

/// Whether a WebSocket request offers `protocol` (`Sec-WebSocket-Protocol`, comma-separated,
/// possibly over several lines).
pub fn offers<B>(req: &Request<B>, protocol: &str) -> bool {
    is_websocket_request(req) && offered(req).iter().any(|p| p == protocol)
}

/// The `101` that accepts `req` with subprotocol `protocol` (none when empty), or why the
/// handshake is bad.
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
    if !protocol.is_empty() {
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_str(protocol).map_err(|e| e.to_string())?,
        );
    }
    Ok(resp)
}

/// A response body sent as WebSocket messages (upstream's `wsstream.Reader`, how `pods/log`
/// answers a WebSocket client): binary messages for `binary.k8s.io` or no subprotocol, text
/// messages of base64 for `base64.binary.k8s.io`; a normal close at the end of the body.
pub fn body_as_messages<B>(
    mut req: Request<hyper::body::Incoming>,
    body: B,
) -> Result<Response<Full<Bytes>>, String>
where
    B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Send,
{
    let offers = offered(&req);
    let protocol = if offers.is_empty() {
        ""
    } else {
        offers
            .iter()
            .map(String::as_str)
            .find(|p| *p == BINARY || *p == BASE64_BINARY)
            .ok_or("requested protocol(s) are not supported")?
    };
    let base64 = protocol == BASE64_BINARY;
    let resp = accept_response(&req, protocol)?;
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(ws) = server_socket(upgrade).await else {
            return;
        };
        let (mut sink, mut source) = ws.split();
        let send = async move {
            let mut frames = http_body_util::BodyStream::new(body);
            while let Some(Ok(frame)) = frames.next().await {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                let msg = if base64 {
                    use base64::Engine as _;
                    Message::Text(
                        base64::engine::general_purpose::STANDARD
                            .encode(&data)
                            .into(),
                    )
                } else {
                    Message::Binary(data)
                };
                if sink.send(msg).await.is_err() {
                    return;
                }
            }
            let _ = sink
                .send(Message::Close(Some(CloseFrame {
                    code: CloseCode::Normal,
                    reason: "".into(),
                })))
                .await;
        };
        // Reading answers pings and notices a client that leaves.
        let receive = async move { while let Some(Ok(_)) = source.next().await {} };
        tokio::select! {
            _ = send => {}
            _ = receive => {}
        }
    });
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
