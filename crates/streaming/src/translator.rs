//! Remotecommand over WebSocket v5, terminated in the API server (upstream's
//! `StreamTranslatorHandler`): the client speaks `v5.channel.k8s.io`; the runtime's stream
//! server does not, so the API server opens SPDY streams to the kubelet and moves data
//! between the two, channel by channel.
//!
//! WebSocket messages are binary, the first byte the channel: 0 stdin, 1 stdout, 2 stderr,
//! 3 error (a `Status`), 4 resize (terminal size JSON), 255 close (its second byte names the
//! stream the client has finished with).

use bytes::{BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use http::{HeaderValue, Request, Response, header};
use http_body_util::{Empty, Full};
use hyper::body::Incoming;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tracing::debug;

use crate::remotecommand::{RemoteCommand, SPDY_PROTOCOLS, StreamOptions};
use crate::spdy::{Connection, StreamReader};
use crate::upgrade::{Upgrade, request_upgrade};
use crate::websocket::{self, REMOTE_COMMAND_V5, ServerSocket};

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

/// Accepts `req` (a WebSocket request offering v5) and, once switched, runs the command's
/// streams against `backend` (a connection to the kubelet, host `host`) at `path`. The `101`
/// is returned at once; failures after it reach the client as a `Status` on the error
/// channel, as upstream reports them.
pub fn translate<S>(
    mut req: Request<Incoming>,
    backend: S,
    host: &str,
    path: &str,
    opts: StreamOptions,
) -> Result<Response<Full<Bytes>>, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let resp = websocket::accept_response(&req, REMOTE_COMMAND_V5)?;
    let spdy = spdy_request(host, path).map_err(|e| e.to_string())?;
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let ws = match websocket::server_socket(upgrade).await {
            Ok(ws) => ws,
            Err(e) => {
                debug!(error = %e, "remotecommand: the client did not switch");
                return;
            }
        };
        run(ws, backend, spdy, opts.normalized()).await;
    });
    Ok(resp)
}

/// The SPDY upgrade client-go's executor sends: POST, every version it speaks, newest first.
fn spdy_request(host: &str, path: &str) -> Result<Request<Empty<Bytes>>, http::Error> {
    let mut b = Request::post(path)
        .header(header::HOST, host)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "SPDY/3.1");
    for p in SPDY_PROTOCOLS {
        b = b.header("X-Stream-Protocol-Version", HeaderValue::from_static(p));
    }
    b.body(Empty::new())
}

async fn run<S>(ws: ServerSocket, backend: S, spdy: Request<Empty<Bytes>>, opts: StreamOptions)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, source) = ws.split();
    let (head, io) = match request_upgrade(backend, spdy).await {
        Ok(Upgrade::Switched { head, io }) => (head, io),
        Ok(Upgrade::Refused(resp)) => {
            let body = String::from_utf8_lossy(resp.body()).trim().to_owned();
            let msg = format!("unable to upgrade connection: {body}");
            finish(&mut sink, internal_error(&msg)).await;
            return;
        }
        Err(e) => {
            finish(
                &mut sink,
                internal_error(&format!("error dialing backend: {e}")),
            )
            .await;
            return;
        }
    };
    let v4 = head
        .headers
        .get("X-Stream-Protocol-Version")
        .is_some_and(|v| v == SPDY_PROTOCOLS[0]);
    let cmd = match Connection::new(io) {
        Ok(conn) => RemoteCommand::open(conn, opts).await,
        Err(e) => Err(e),
    };
    let cmd = match cmd {
        Ok(c) => c,
        Err(e) => {
            finish(&mut sink, internal_error(&e.to_string())).await;
            return;
        }
    };
    // Upstream's first message: an empty one on the lowest channel the client reads, so it
    // knows the streams are up.
    let first = if opts.stdout {
        STDOUT
    } else if opts.stderr {
        STDERR
    } else {
        ERROR
    };
    if sink
        .send(Message::Binary(Bytes::from(vec![first])))
        .await
        .is_err()
    {
        return;
    }
    let RemoteCommand {
        conn: _conn,
        error,
        stdin,
        stdout,
        stderr,
        resize,
    } = cmd;
    let input = tokio::spawn(client_to_backend(source, stdin, resize));
    let status = backend_to_client(&mut sink, stdout, stderr, error).await;
    input.abort();
    let status = match status {
        Some(s) if v4 => s,
        Some(s) if s.is_empty() => success(),
        Some(s) => internal_error(&String::from_utf8_lossy(&s)),
        None => return,
    };
    finish(&mut sink, status).await;
}

/// Client messages to the command: stdin data, stdin closed, terminal sizes.
async fn client_to_backend(
    mut source: futures::stream::SplitStream<ServerSocket>,
    stdin: Option<crate::spdy::StreamWriter>,
    resize: Option<crate::spdy::StreamWriter>,
) {
    while let Some(msg) = source.next().await {
        let data = match msg {
            Ok(Message::Binary(b)) => b,
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => continue,
        };
        let Some(&channel) = data.first() else {
            continue;
        };
        let payload = data.slice(1..);
        let sent = match (channel, &stdin, &resize) {
            (STDIN, Some(w), _) => w.write(payload).await,
            (RESIZE, _, Some(w)) => w.write(payload).await,
            (CLOSE, Some(w), _) if payload.first() == Some(&STDIN) => w.close().await,
            _ => Ok(()),
        };
        if sent.is_err() {
            break;
        }
    }
    // The client is gone or done: the command reads end of input.
    if let Some(w) = stdin {
        let _ = w.close().await;
    }
}

/// Command output to the client until every stream has ended; returns what the error stream
/// said, or `None` if the client went away.
async fn backend_to_client(
    sink: &mut futures::stream::SplitSink<ServerSocket, Message>,
    mut stdout: Option<StreamReader>,
    mut stderr: Option<StreamReader>,
    mut error: StreamReader,
) -> Option<Vec<u8>> {
    let mut status = Vec::new();
    let mut error_open = true;
    loop {
        let (channel, data) = tokio::select! {
            Some(d) = next(&mut stdout) => (STDOUT, d),
            Some(d) = next(&mut stderr) => (STDERR, d),
            d = error.read(), if error_open => match d {
                Some(d) => {
                    status.extend_from_slice(&d);
                    continue;
                }
                None => {
                    error_open = false;
                    continue;
                }
            },
            else => break,
        };
        let mut m = BytesMut::with_capacity(data.len() + 1);
        m.put_u8(channel);
        m.put_slice(&data);
        if sink.send(Message::Binary(m.freeze())).await.is_err() {
            return None;
        }
    }
    Some(status)
}

/// The next chunk of an optional stream; a finished stream becomes `None`.
async fn next(r: &mut Option<StreamReader>) -> Option<Bytes> {
    let got = r.as_mut()?.read().await;
    if got.is_none() {
        *r = None;
    }
    got
}

/// Writes the final `Status` on the error channel and closes the WebSocket normally.
async fn finish(sink: &mut futures::stream::SplitSink<ServerSocket, Message>, status: Vec<u8>) {
    let mut m = Vec::with_capacity(status.len() + 1);
    m.push(ERROR);
    m.extend_from_slice(&status);
    let _ = sink.send(Message::Binary(Bytes::from(m))).await;
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        })))
        .await;
    let _ = sink.close().await;
}

fn success() -> Vec<u8> {
    br#"{"metadata":{},"status":"Success"}"#.to_vec()
}

/// `apierrors.NewInternalError(err)` as JSON.
fn internal_error(msg: &str) -> Vec<u8> {
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("Internal error occurred: {msg}"),
        "reason": "InternalError",
        "details": {"causes": [{"message": msg}]},
        "code": 500,
    })
    .to_string()
    .into_bytes()
}
