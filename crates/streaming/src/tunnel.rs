//! Port-forward tunnelled through WebSocket (upstream's `TunnelingHandler`, kubectl 1.31+):
//! the client speaks SPDY inside WebSocket binary messages (`SPDY/3.1+portforward.k8s.io`);
//! the kubelet is asked for a plain SPDY port-forward upgrade, and from then on bytes are
//! moved unchanged, unwrapped from messages one way and wrapped the other.

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{HeaderValue, Request, Response, header};
use http_body_util::{Empty, Full};
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tracing::debug;

use crate::upgrade::{ProxyError, Upgrade, request_upgrade};
use crate::websocket::{self, PORT_FORWARD_TUNNEL};

/// Each read from the kubelet, sent as one message.
const CHUNK: usize = 64 * 1024;

/// Asks `backend` (host `host`) for a SPDY port-forward at `path`; when it switches, accepts
/// the client's WebSocket and tunnels. A refusal comes back as the kubelet gave it (kubectl
/// then tries plain SPDY, as it does against servers without the tunnel).
pub async fn tunnel<S>(
    mut req: Request<Incoming>,
    backend: S,
    host: &str,
    path: &str,
) -> Result<Response<Full<Bytes>>, ProxyError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let accept = match websocket::accept_response(&req, PORT_FORWARD_TUNNEL) {
        Ok(r) => r,
        Err(e) => {
            let mut resp = Response::new(Full::new(Bytes::from(e)));
            *resp.status_mut() = http::StatusCode::BAD_REQUEST;
            return Ok(resp);
        }
    };
    let spdy = Request::builder()
        .method(req.method().clone())
        .uri(path)
        .header(header::HOST, host)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "SPDY/3.1")
        .header(
            "X-Stream-Protocol-Version",
            HeaderValue::from_static("portforward.k8s.io"),
        )
        .body(Empty::<Bytes>::new())?;
    let io = match request_upgrade(backend, spdy).await? {
        Upgrade::Switched { io, .. } => io,
        Upgrade::Refused(resp) => return Ok(resp.map(Full::new)),
    };
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let ws = match websocket::server_socket(upgrade).await {
            Ok(ws) => ws,
            Err(e) => {
                debug!(error = %e, "port-forward tunnel: the client did not switch");
                return;
            }
        };
        let (mut sink, mut source) = ws.split();
        let (mut rd, mut wr) = tokio::io::split(io);
        let up = async move {
            while let Some(Ok(msg)) = source.next().await {
                match msg {
                    Message::Binary(b) if wr.write_all(&b).await.is_err() => break,
                    Message::Close(_) => break,
                    _ => {}
                }
            }
            let _ = wr.shutdown().await;
        };
        let down = async move {
            let mut buf = vec![0u8; CHUNK];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let msg = Message::Binary(Bytes::copy_from_slice(&buf[..n]));
                        if sink.send(msg).await.is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = sink.close().await;
        };
        // Either side ending ends the tunnel (the SPDY peers close their streams first).
        tokio::select! {
            _ = up => {}
            _ = down => {}
        }
    });
    Ok(accept)
}
