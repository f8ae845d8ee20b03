//! The upgrade-aware proxy (apimachinery's `UpgradeAwareHandler` with `UpgradeRequired`): the
//! client's request goes to the backend over a connection of its own; when the backend
//! switches protocols (101), both connections are spliced and bytes flow both ways until
//! either side closes. Any other answer is handed back as it came.
//!
//! Headers pass through unchanged and in order, repeated lines included (SPDY clients offer
//! `X-Stream-Protocol-Version` once per version), so the protocol is negotiated end to end
//! between the client and whatever speaks it at the far end (the runtime's stream server).

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::debug;

/// Each direction's buffer when splicing an upgraded connection.
const SPLICE_BUFFER: usize = 64 * 1024;

/// The most of a refusal's body passed back (upstream reads at most this much).
const MAX_ERROR_BODY: usize = 50_000;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("{0}")]
    Http(#[from] hyper::Error),
    #[error("{0}")]
    Request(#[from] http::Error),
}

/// Whether `req` asks to switch protocols: `Connection: Upgrade` and an `Upgrade` header.
pub fn is_upgrade_request<B>(req: &Request<B>) -> bool {
    let connection_upgrade = req
        .headers()
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    connection_upgrade && req.headers().contains_key(header::UPGRADE)
}

/// Credentials for this hop only: never sent on.
fn hop_credential(name: &HeaderName) -> bool {
    let n = name.as_str();
    n == "authorization" || n == "proxy-authorization" || n.starts_with("impersonate-")
}

/// What a backend answered to an upgrade request.
pub enum Upgrade {
    /// `101 Switching Protocols`: the response head and the switched connection.
    Switched {
        head: http::response::Parts,
        io: TokioIo<Upgraded>,
    },
    /// Any other answer, with (at most 50 kB of) its body.
    Refused(Response<Bytes>),
}

/// Sends the upgrade request `req` to `backend` over a connection of its own.
pub async fn request_upgrade<S>(
    backend: S,
    req: Request<Empty<Bytes>>,
) -> Result<Upgrade, ProxyError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(backend)).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            debug!(error = %e, "upgrade: backend connection ended with an error");
        }
    });
    let mut resp = sender.send_request(req).await?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let (parts, body) = resp.into_parts();
        let body = Limited::new(body, MAX_ERROR_BODY)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return Ok(Upgrade::Refused(Response::from_parts(parts, body)));
    }
    let io = hyper::upgrade::on(&mut resp).await?;
    let (head, _) = resp.into_parts();
    Ok(Upgrade::Switched {
        head,
        io: TokioIo::new(io),
    })
}

/// Sends `req` (method and headers; upgrade requests carry no body) to `backend` as
/// `path_and_query` on host `host`. On a 101 the returned response switches the client's
/// connection too, and a task splices the two until both ends are done; any other answer
/// comes back with its status, headers and (at most 50 kB of) body.
pub async fn proxy<S>(
    mut req: Request<Incoming>,
    backend: S,
    host: &str,
    path_and_query: &str,
) -> Result<Response<Full<Bytes>>, ProxyError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let client_upgrade = hyper::upgrade::on(&mut req);
    let mut out = Request::builder()
        .method(req.method().clone())
        .uri(path_and_query);
    if let Some(headers) = out.headers_mut() {
        for (name, value) in req.headers() {
            if name != header::HOST && !hop_credential(name) {
                headers.append(name.clone(), value.clone());
            }
        }
        if let Ok(h) = HeaderValue::from_str(host) {
            headers.insert(header::HOST, h);
        }
    }
    let out = out.body(Empty::<Bytes>::new())?;
    let (parts, backend) = match request_upgrade(backend, out).await? {
        Upgrade::Switched { head, io } => (head, io),
        Upgrade::Refused(resp) => return Ok(resp.map(Full::new)),
    };
    tokio::spawn(async move {
        let client = match client_upgrade.await {
            Ok(c) => c,
            Err(e) => {
                debug!(error = %e, "upgrade proxy: the client did not switch");
                return;
            }
        };
        let (mut client, mut backend) = (TokioIo::new(client), backend);
        // Large buffers: a port-forward moves bulk data through two TLS hops, and 8 KiB reads
        // (the default) mean as many small TLS records and wakeups.
        match tokio::io::copy_bidirectional_with_sizes(
            &mut client,
            &mut backend,
            SPLICE_BUFFER,
            SPLICE_BUFFER,
        )
        .await
        {
            Ok((up, down)) => debug!(up, down, "upgrade proxy: stream closed"),
            Err(e) => debug!(error = %e, "upgrade proxy: stream ended with an error"),
        }
    });
    Ok(Response::from_parts(parts, Full::new(Bytes::new())))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// A backend that switches any request to a raw echo, after checking what it was sent.
    async fn echo_backend() -> (std::net::SocketAddr, tokio::task::JoinHandle<String>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                let mut b = [0u8; 1];
                s.read_exact(&mut b).await.unwrap();
                head.push(b[0]);
            }
            s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n")
                .await
                .unwrap();
            let mut buf = [0u8; 1024];
            loop {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                s.write_all(&buf[..n]).await.unwrap();
            }
            String::from_utf8(head).unwrap()
        });
        (addr, task)
    }

    #[tokio::test]
    async fn an_upgraded_stream_is_spliced_and_headers_pass_unchanged() {
        let (backend, seen) = echo_backend().await;
        let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let front_addr = front.local_addr().unwrap();
        tokio::spawn(async move {
            let (s, _) = front.accept().await.unwrap();
            let svc = hyper::service::service_fn(move |req| async move {
                let b = TcpStream::connect(backend).await.unwrap();
                proxy(req, b, "backend", "/exec/token").await
            });
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(s), svc)
                .with_upgrades()
                .await
                .unwrap();
        });
        let mut c = TcpStream::connect(front_addr).await.unwrap();
        c.write_all(b"POST /api/v1/namespaces/default/pods/p/exec?command=sh HTTP/1.1\r\nHost: front\r\nAuthorization: Bearer secret\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\nX-Stream-Protocol-Version: v3.channel.k8s.io\r\n\r\n")
            .await
            .unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut b = [0u8; 1];
            c.read_exact(&mut b).await.unwrap();
            head.push(b[0]);
        }
        let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 101"), "{head}");
        assert!(
            head.contains("x-stream-protocol-version: v4.channel.k8s.io"),
            "{head}"
        );
        c.write_all(b"hello through").await.unwrap();
        let mut back = [0u8; 13];
        c.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"hello through");
        drop(c);
        let sent = seen.await.unwrap().to_ascii_lowercase();
        assert!(sent.starts_with("post /exec/token http/1.1\r\n"), "{sent}");
        assert!(sent.contains("host: backend\r\n"), "{sent}");
        assert!(
            !sent.contains("authorization"),
            "credentials stay on their hop: {sent}"
        );
        assert!(
            sent.contains("x-stream-protocol-version: v4.channel.k8s.io\r\nx-stream-protocol-version: v3.channel.k8s.io\r\n"),
            "repeated lines kept in order: {sent}"
        );
    }

    #[tokio::test]
    async fn a_refusal_comes_back_as_it_came() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await.unwrap();
            s.write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 28\r\n\r\ncontainer not found (\"c\")\n\n\n")
                .await
                .unwrap();
        });
        let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let front_addr = front.local_addr().unwrap();
        tokio::spawn(async move {
            let (s, _) = front.accept().await.unwrap();
            let svc = hyper::service::service_fn(move |req| async move {
                let b = TcpStream::connect(addr).await.unwrap();
                proxy(req, b, "backend", "/exec/x").await
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(s), svc)
                .with_upgrades()
                .await;
        });
        let mut c = TcpStream::connect(front_addr).await.unwrap();
        c.write_all(
            b"GET /x HTTP/1.1\r\nHost: f\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        )
        .await
        .unwrap();
        let mut got = vec![0u8; 4096];
        let n = c.read(&mut got).await.unwrap();
        let got = String::from_utf8_lossy(&got[..n]).to_string();
        assert!(got.starts_with("HTTP/1.1 500"), "{got}");
        assert!(got.contains("container not found (\"c\")"), "{got}");
    }
}
