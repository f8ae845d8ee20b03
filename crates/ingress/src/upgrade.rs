//! `Connection: upgrade` requests (WebSocket and the like): sent on a fresh connection of
//! their own (it leaves HTTP once switched, so it is not pooled); a `101` from the endpoint
//! is passed back, then bytes are copied both ways between the client's and the endpoint's
//! upgraded connections until either side closes.

use bytes::Bytes;
use http::header;
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::backend::Backend;
use crate::forward::{self, ClientInfo};
use crate::proxy::{Proxy, ProxyBody, plain};

/// Connects to an endpoint of `backend`, retrying others on failure as ordinary requests do.
async fn connect(p: &Proxy, backend: &Backend) -> Option<TcpStream> {
    let attempts = p.cfg.max_attempts.clamp(1, backend.endpoints.len());
    let mut tried = Vec::with_capacity(attempts);
    while tried.len() < attempts {
        let idx = backend.pick(&p.health, &tried)?;
        tried.push(idx);
        let ep = &backend.endpoints[idx];
        match tokio::time::timeout(p.cfg.connect_timeout, TcpStream::connect(ep.addr)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                p.health.succeeded(&ep.health);
                return Some(s);
            }
            Ok(Err(e)) => {
                tracing::debug!(backend = %backend.name, endpoint = %ep.addr, error = %e, "upgrade: connect failed");
                p.health.failed(&ep.health);
            }
            Err(_) => {
                tracing::debug!(backend = %backend.name, endpoint = %ep.addr, "upgrade: connect timed out");
                p.health.failed(&ep.health);
            }
        }
    }
    None
}

pub async fn proxy(
    p: &Proxy,
    backend: &Backend,
    mut req: Request<Incoming>,
    client: ClientInfo,
) -> Response<ProxyBody> {
    let Some(stream) = connect(p, backend).await else {
        return plain(
            StatusCode::BAD_GATEWAY,
            "502 Bad Gateway: no endpoint reachable\n",
        );
    };
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    {
        Ok(x) => x,
        Err(e) => {
            tracing::debug!(backend = %backend.name, error = %e, "upgrade: handshake failed");
            return plain(StatusCode::BAD_GATEWAY, "502 Bad Gateway\n");
        }
    };
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "upgrade: backend connection ended");
        }
    });
    let client_upgrade = hyper::upgrade::on(&mut req);
    let mut headers = req.headers().clone();
    forward::strip_hop_by_hop(&mut headers, true);
    let host = headers.get(header::HOST).cloned();
    forward::add_forwarded(&mut headers, &client, host.as_ref());
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_string();
    let mut out = Request::new(Empty::<Bytes>::new());
    *out.method_mut() = req.method().clone();
    *out.headers_mut() = headers;
    match path.parse() {
        Ok(u) => *out.uri_mut() = u,
        Err(_) => return plain(StatusCode::BAD_REQUEST, "400 Bad Request\n"),
    }
    let mut resp =
        match tokio::time::timeout(p.cfg.response_timeout, sender.send_request(out)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::debug!(backend = %backend.name, error = %e, "upgrade: request failed");
                return plain(StatusCode::BAD_GATEWAY, "502 Bad Gateway\n");
            }
            Err(_) => return plain(StatusCode::GATEWAY_TIMEOUT, "504 Gateway Timeout\n"),
        };
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        // Refused: an ordinary response, passed back as such.
        let (mut parts, body) = resp.into_parts();
        forward::strip_hop_by_hop(&mut parts.headers, false);
        return Response::from_parts(parts, Either::Left(body));
    }
    let backend_upgrade = hyper::upgrade::on(&mut resp);
    let name = backend.name.clone();
    tokio::spawn(async move {
        match tokio::try_join!(client_upgrade, backend_upgrade) {
            Ok((c, b)) => {
                let (mut c, mut b) = (TokioIo::new(c), TokioIo::new(b));
                if let Err(e) = tokio::io::copy_bidirectional(&mut c, &mut b).await {
                    tracing::debug!(backend = %name, error = %e, "upgraded connection ended");
                }
            }
            Err(e) => tracing::debug!(backend = %name, error = %e, "upgrade did not complete"),
        }
    });
    let (mut parts, _) = resp.into_parts();
    forward::strip_hop_by_hop(&mut parts.headers, true);
    Response::from_parts(
        parts,
        Either::Right(http_body_util::Full::new(Bytes::new())),
    )
}
