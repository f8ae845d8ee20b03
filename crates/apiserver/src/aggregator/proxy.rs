//! The aggregator's proxy (upstream's `proxyHandler`): a request below an available remote
//! group-version, already authenticated and authorized here, goes to the extension API
//! server over TLS with the front-proxy client certificate. Who asked travels in the
//! request-header scheme (`X-Remote-User`, one `X-Remote-Group` per group,
//! `X-Remote-Extra-<key>`); the client's own credentials and any `X-Remote-*` it sent do
//! not. The path, query and body go as sent; the answer (a watch too) streams back, and an
//! upgrade (exec-style) is switched through.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderName, HeaderValue, Request, Response, header};
use http_body_util::{BodyExt, BodyStream, Empty, StreamBody};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::remote::{Remote, Target};
use crate::authn::requestheader::{
    EXTRA_HEADER_PREFIXES, GROUP_HEADERS, USERNAME_HEADERS, escape_extra_key,
};
use crate::error::{ApiError, ApiResult};
use crate::handler::Body;
use crate::user::UserInfo;

/// How long connecting (TCP and TLS) to an extension server may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(30);

/// Headers not forwarded: the proxy subresources' (this hop's, the client's credentials
/// and impersonation, already acted on here), the upgrade and host, and request-header
/// identities only this proxy may assert.
fn dropped(name: &HeaderName) -> bool {
    crate::proxy::hop_by_hop(name)
        || matches!(name.as_str(), "upgrade" | "host")
        || name.as_str().starts_with("x-remote-")
}

/// Forwards `req` as `user` to the APIService's server; 503 `service unavailable` when it
/// is not available, as upstream.
pub async fn serve(
    remote: &Remote,
    user: &UserInfo,
    req: Request<Incoming>,
) -> ApiResult<Response<Body>> {
    let Some(target) = &remote.target else {
        return Err(ApiError::new(
            503,
            "ServiceUnavailable",
            "service unavailable",
        ));
    };
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let unreachable = |e: String| {
        tracing::warn!(apiservice = remote.name, error = %e, "proxying to the extension API server");
        ApiError::new(
            503,
            "ServiceUnavailable",
            format!("error trying to reach service: {e}"),
        )
    };
    if streaming::is_upgrade_request(&req) {
        // exec-style streams: the connection is switched and spliced (the upgrade proxy
        // drops the client's credentials and impersonation).
        let mut req = req;
        let claimed: Vec<HeaderName> = req
            .headers()
            .keys()
            .filter(|k| k.as_str().starts_with("x-remote-"))
            .cloned()
            .collect();
        for k in claimed {
            req.headers_mut().remove(k);
        }
        set_user(req.headers_mut(), user);
        let tls = dial(target).await.map_err(unreachable)?;
        let resp = streaming::proxy(req, tls, &host(target), &path)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        return Ok(resp.map(|b| BodyExt::boxed(b.map_err(|never| match never {}))));
    }
    let (parts, body) = req.into_parts();
    let mut out = Request::builder().method(parts.method).uri(path.as_str());
    if let Some(headers) = out.headers_mut() {
        for (k, v) in &parts.headers {
            if !dropped(k) {
                headers.append(k.clone(), v.clone());
            }
        }
        set_user(headers, user);
    }
    let out = out
        .body(body)
        .map_err(|e| ApiError::internal(format!("building the proxied request: {e}")))?;
    let resp = send(target, out).await.map_err(unreachable)?;
    let (mut parts, body) = resp.into_parts();
    let kept: Vec<_> = parts
        .headers
        .iter()
        .filter(|(k, _)| !dropped(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    parts.headers.clear();
    parts.headers.extend(kept);
    // Frames as they come (a watch never ends); a backend error ends the body.
    let frames = BodyStream::new(body)
        .scan((), |_, frame| {
            futures::future::ready(
                frame
                    .map_err(|e| tracing::debug!(error = %e, "extension API server body ended"))
                    .ok(),
            )
        })
        .map(Ok::<_, Infallible>);
    Ok(Response::from_parts(
        parts,
        BodyExt::boxed(StreamBody::new(frames)),
    ))
}

/// The request-header identity of `user`.
fn set_user(headers: &mut http::HeaderMap, user: &UserInfo) {
    let mut add = |name: String, value: &str| {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(k, v);
        }
    };
    add(USERNAME_HEADERS[0].to_string(), &user.name);
    for g in &user.groups {
        add(GROUP_HEADERS[0].to_string(), g);
    }
    for (key, values) in &user.extra {
        for v in values {
            add(
                format!("{}{}", EXTRA_HEADER_PREFIXES[0], escape_extra_key(key)),
                v,
            );
        }
    }
}

/// A GET of `path` as the aggregator itself (upstream's discovery check identity,
/// `system:kube-aggregator` in `system:masters`), accepting `accept`: the status, content
/// type and body.
pub(super) async fn get(
    target: &Target,
    path: &str,
    accept: &str,
    apiservice: &str,
) -> Result<(u16, String, Bytes), String> {
    let mut req = Request::get(path)
        .header(header::ACCEPT, accept)
        .header(header::USER_AGENT, "kube-aggregator")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("building the request: {e}"))?;
    let aggregator = UserInfo::new(
        "system:kube-aggregator",
        vec![crate::user::MASTERS.to_string()],
    );
    set_user(req.headers_mut(), &aggregator);
    let resp = send(target, req).await?;
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    // A discovery document is small; a larger answer is not one.
    let body = http_body_util::Limited::new(resp.into_body(), 16 * 1024 * 1024)
        .collect()
        .await
        .map_err(|e| format!("reading the response of {apiservice}: {e}"))?
        .to_bytes();
    Ok((status, content_type, body))
}

/// The Host the extension is asked as.
fn host(target: &Target) -> String {
    format!("{}:{}", target.server_name, target.addr.port())
}

/// A TLS connection to the target, its certificate checked for the Service's name.
async fn dial(target: &Target) -> Result<TlsStream<TcpStream>, String> {
    let addr = target.addr;
    let dial = async {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("dial tcp {addr}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from(target.server_name.clone())
            .map_err(|e| format!("invalid server name {:?}: {e}", target.server_name))?;
        target
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| format!("tls: {e}"))
    };
    tokio::time::timeout(DIAL_TIMEOUT, dial)
        .await
        .map_err(|_| format!("dial tcp {addr}: i/o timeout"))?
}

/// Dials the target and sends one HTTP/1.1 request on a new connection.
async fn send<B>(target: &Target, mut req: Request<B>) -> Result<Response<Incoming>, String>
where
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tls = dial(target).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "extension API server connection ended with an error");
        }
    });
    if let Ok(host) = HeaderValue::from_str(&host(target)) {
        req.headers_mut().insert(header::HOST, host);
    }
    sender.send_request(req).await.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_are_sent_and_the_clients_dropped() {
        for h in [
            "x-remote-user",
            "X-Remote-Group",
            "authorization",
            "impersonate-user",
            "connection",
        ] {
            assert!(
                dropped(&HeaderName::from_bytes(h.as_bytes()).unwrap()),
                "{h}"
            );
        }
        assert!(!dropped(&header::ACCEPT));
        let mut user = UserInfo::new("alice", vec!["a".into(), "b".into()]);
        user.extra
            .insert("scopes.example.com/x".into(), vec!["1".into()]);
        let mut h = http::HeaderMap::new();
        set_user(&mut h, &user);
        assert_eq!(h["x-remote-user"], "alice");
        assert_eq!(h.get_all("x-remote-group").iter().count(), 2);
        assert_eq!(h["x-remote-extra-scopes.example.com%2Fx"], "1");
        // What this proxy sends, the request-header authenticator reads back.
        let back = crate::authn::requestheader::user_from_headers(&h).unwrap();
        assert_eq!(back, user);
    }
}
