//! The proxy subresources: `pods/{name}/proxy/…`, `services/{name}/proxy/…` and
//! `nodes/{name}/proxy/…` (upstream's `ProxyREST` with each kind's `ResourceLocation`), plain
//! HTTP reverse proxies for every verb, and upgrades passed through (what `kubectl proxy`
//! users and dashboards use). The name may carry a scheme and a port,
//! `[scheme:]name[:port]`. `https` to pods and services is TLS without a client certificate
//! and without verifying theirs (upstream's proxy transport): the kubelet client certificate
//! is for kubelets only.
//!
//! - pods: the pod's IP and the given port (else the first container port, else 80); only a
//!   global unicast address (400 `address not allowed`).
//! - services: the service port by name or number (the only one when not given), then a
//!   ready address of its Endpoints and that port's target (503 `no endpoints available for
//!   service "x"`).
//! - nodes: the kubelet (its preferred address, `daemonEndpoints` port) over TLS with the
//!   API server's kubelet-client certificate.
//!
//! Pod addresses are dialled from the pods' network namespace when the server is given one
//! (`Config::pod_netns`, the node test lab), else from the server's own (the node's).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::{ApiError, ApiResult};
use crate::handler::{ApiState, Body};
use crate::proxy_links::LinkRewriter;
use crate::resources::ResourceInfo;

/// The most of a request body of unknown length read before it is forwarded.
const MAX_UNSIZED_BODY: usize = 16 * 1024 * 1024;
/// The largest HTML page whose links are rewritten (it is read whole first).
const MAX_HTML_BODY: usize = 32 * 1024 * 1024;

/// `[scheme:]name[:port]` (upstream's `SplitSchemeNamePort`).
fn split_name(id: &str) -> ApiResult<(&str, &str, &str)> {
    let parts: Vec<&str> = id.split(':').collect();
    let (scheme, name, port) = match parts.as_slice() {
        [n] => ("", *n, ""),
        [n, p] => ("", *n, *p),
        [s, n, p] => (*s, *n, *p),
        _ => ("", "", ""),
    };
    if name.is_empty() || !matches!(scheme, "" | "http" | "https") {
        return Err(ApiError::bad_request(format!("invalid request {id:?}")));
    }
    Ok((scheme, name, port))
}

/// Where a proxied request goes.
struct Location {
    addr: SocketAddr,
    /// Through the kubelet client (nodes) rather than plain TCP.
    kubelet: bool,
}

/// Headers that belong to one connection and are never forwarded (RFC 9110 §7.6.1), and
/// this hop's credentials.
pub(crate) fn hop_by_hop(name: &header::HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "authorization"
            | "proxy-authorization"
    ) || name.as_str().starts_with("impersonate-")
}

/// Serves `{kind}/{id}/proxy{rest}` for pods, services and nodes.
pub async fn serve(
    state: &Arc<ApiState>,
    info: &ResourceInfo,
    ns: Option<&str>,
    id: &str,
    rest: &str,
    req: Request<Incoming>,
) -> ApiResult<Response<Body>> {
    let (scheme, name, port) = split_name(id)?;
    let loc = match info.kind {
        "Pod" => pod_location(state, ns, name, port).await?,
        "Service" => service_location(state, ns, name, port).await?,
        "Node" => node_location(state, name, port).await?,
        _ => return Err(ApiError::not_found_path()),
    };
    let path = match req.uri().query() {
        Some(q) => format!("{}?{q}", if rest.is_empty() { "/" } else { rest }),
        None => if rest.is_empty() { "/" } else { rest }.to_string(),
    };
    let host = loc.addr.to_string();
    let request_host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or_default()
        .to_owned();
    let links = LinkRewriter::new(
        req.uri().path(),
        if rest.is_empty() { "/" } else { rest },
        &host,
        &request_host,
    );
    let fail = |e: String| {
        ApiError::new(
            503,
            "ServiceUnavailable",
            format!("error trying to reach service: {e}"),
        )
    };
    if loc.kubelet {
        let client = state.kubelet.as_ref().ok_or_else(|| {
            ApiError::internal("the API server has no kubelet client certificate")
        })?;
        let tls = client
            .dial(&loc.addr.ip().to_string(), loc.addr.port())
            .await
            .map_err(|e| fail(format!("{e:#}")))?;
        forward(req, tls, &host, &path, &links).await.map_err(fail)
    } else {
        let tcp = match &state.pod_dialer {
            Some(d) => d.connect(loc.addr).await,
            None => tokio::net::TcpStream::connect(loc.addr).await,
        }
        .map_err(|e| fail(format!("dial tcp {}: {e}", loc.addr)))?;
        if scheme == "https" {
            let name = rustls::pki_types::ServerName::IpAddress(loc.addr.ip().into());
            let tls = pod_tls()
                .map_err(fail)?
                .connect(name, tcp)
                .await
                .map_err(|e| fail(format!("tls: {e}")))?;
            forward(req, tls, &host, &path, &links).await.map_err(fail)
        } else {
            forward(req, tcp, &host, &path, &links).await.map_err(fail)
        }
    }
}

/// TLS to pods and services: no client certificate, theirs not verified (upstream's proxy
/// transport: pods serve certificates the cluster CA never signed).
fn pod_tls() -> Result<tokio_rustls::TlsConnector, String> {
    static CONNECTOR: std::sync::OnceLock<Result<tokio_rustls::TlsConnector, String>> =
        std::sync::OnceLock::new();
    CONNECTOR
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(crate::kubelet_client::AnyServerCert(
                    provider,
                )))
                .with_no_client_auth();
            Ok(tokio_rustls::TlsConnector::from(Arc::new(cfg)))
        })
        .clone()
}

/// Sends the request (body streamed) to `backend` and the answer back; upgrades are spliced.
async fn forward<S>(
    req: Request<Incoming>,
    backend: S,
    host: &str,
    path: &str,
    links: &LinkRewriter,
) -> Result<Response<Body>, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if streaming::is_upgrade_request(&req) {
        let resp = streaming::proxy(req, backend, host, path)
            .await
            .map_err(|e| e.to_string())?;
        return Ok(resp.map(|b| b.map_err(|never| match never {}).boxed()));
    }
    let (parts, body) = req.into_parts();
    // A body of unknown length (HTTP/2 has no chunked framing to pass on) is read first and
    // sent with its length: servers such as CGI programs do not take chunked bodies.
    let body = match hyper::body::Body::size_hint(&body).exact() {
        Some(_) => body.boxed(),
        None => {
            let bytes = http_body_util::Limited::new(body, MAX_UNSIZED_BODY)
                .collect()
                .await
                .map_err(|e| format!("reading the request body: {e}"))?
                .to_bytes();
            http_body_util::Full::new(bytes)
                .map_err(|never| match never {})
                .boxed()
        }
    };
    let mut out = Request::builder().method(parts.method).uri(path);
    if let Some(headers) = out.headers_mut() {
        for (k, v) in &parts.headers {
            if !hop_by_hop(k) && k != header::HOST {
                headers.append(k.clone(), v.clone());
            }
        }
        if let Ok(h) = HeaderValue::from_str(host) {
            headers.insert(header::HOST, h);
        }
    }
    let out = out.body(body).map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(backend))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "proxy: backend connection ended with an error");
        }
    });
    let resp = sender.send_request(out).await.map_err(|e| e.to_string())?;
    let (mut parts, body) = resp.into_parts();
    let kept: Vec<(header::HeaderName, HeaderValue)> = parts
        .headers
        .iter()
        .filter(|(k, _)| !hop_by_hop(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    parts.headers.clear();
    for (k, v) in kept {
        // The API server's origin is not the backend's to open up (upstream's
        // corsRemovingTransport).
        if !k.as_str().starts_with("access-control-") {
            parts.headers.append(k, v);
        }
    }
    if let Some(to) = parts
        .headers
        .get(header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .map(|l| links.url(l))
        && let Ok(v) = HeaderValue::from_str(&to)
    {
        parts.headers.insert(header::LOCATION, v);
    }
    let html = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|c| c.to_str().ok())
        .and_then(|c| c.split(';').next())
        .is_some_and(|c| c.trim().eq_ignore_ascii_case("text/html"));
    if html {
        let encoding = parts
            .headers
            .get(header::CONTENT_ENCODING)
            .and_then(|c| c.to_str().ok())
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let page = http_body_util::Limited::new(body, MAX_HTML_BODY)
            .collect()
            .await
            .map_err(|e| format!("reading the backend's page: {e}"))?
            .to_bytes();
        let page = match links.encoded_html(&page, &encoding) {
            Some(Ok(rewritten)) => {
                parts.headers.remove(header::CONTENT_LENGTH);
                Bytes::from(rewritten)
            }
            Some(Err(e)) => return Err(format!("rewriting the backend's page: {e}")),
            None => page,
        };
        let body = http_body_util::Full::new(page)
            .map_err(|never| match never {})
            .boxed();
        return Ok(Response::from_parts(parts, body));
    }
    // The body streams through as the backend sends it; a backend error ends it.
    let body = body
        .map_err(|e| {
            tracing::debug!(error = %e, "proxy: backend body ended with an error");
        })
        .boxed();
    let body = http_body_util::StreamBody::new(futures::StreamExt::filter_map(
        http_body_util::BodyStream::new(body),
        |f| futures::future::ready(f.ok().map(Ok::<_, std::convert::Infallible>)),
    ));
    Ok(Response::from_parts(parts, BodyExt::boxed(body)))
}

fn ip_of(s: &str) -> Option<IpAddr> {
    s.parse().ok()
}

/// A pod IP that may be proxied to: global unicast, as upstream's `IsGlobalUnicast`.
fn allowed(ip: IpAddr) -> bool {
    !(ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() || {
        match ip {
            IpAddr::V4(v4) => v4.is_link_local() || v4.is_broadcast(),
            IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
        }
    })
}

async fn get(state: &ApiState, plural: &str, ns: Option<&str>, name: &str) -> ApiResult<Value> {
    let info = state
        .catalog
        .find("", "v1", plural)
        .ok_or_else(ApiError::not_found_path)?;
    state.registry.get(info, ns, name).await
}

fn parse_port(port: &str) -> ApiResult<u16> {
    port.parse()
        .map_err(|_| ApiError::bad_request(format!("invalid port {port:?}")))
}

async fn pod_location(
    state: &ApiState,
    ns: Option<&str>,
    name: &str,
    port: &str,
) -> ApiResult<Location> {
    let pod = get(state, "pods", ns, name).await?;
    let ip = pod
        .pointer("/status/podIP")
        .and_then(Value::as_str)
        .and_then(ip_of)
        .filter(|ip| allowed(*ip))
        .ok_or_else(|| ApiError::bad_request("address not allowed"))?;
    let port = if port.is_empty() {
        pod.pointer("/spec/containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find_map(|c| c.pointer("/ports/0/containerPort").and_then(Value::as_u64))
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(80)
    } else {
        parse_port(port)?
    };
    Ok(Location {
        addr: SocketAddr::new(ip, port),
        kubelet: false,
    })
}

async fn service_location(
    state: &ApiState,
    ns: Option<&str>,
    name: &str,
    port: &str,
) -> ApiResult<Location> {
    let svc = get(state, "services", ns, name).await?;
    let ports = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let chosen = ports.iter().find(|p| {
        port.is_empty() && ports.len() == 1
            || p.get("name").and_then(Value::as_str) == Some(port)
            || p.get("port")
                .and_then(Value::as_u64)
                .map(|n| n.to_string())
                .as_deref()
                == Some(port)
    });
    let Some(chosen) = chosen else {
        return Err(ApiError::new(
            503,
            "ServiceUnavailable",
            format!("no service port {port:?} found for service {name:?}"),
        ));
    };
    let port_name = chosen.get("name").and_then(Value::as_str).unwrap_or("");
    let unavailable = || {
        ApiError::new(
            503,
            "ServiceUnavailable",
            format!("no endpoints available for service {name:?}"),
        )
    };
    let endpoints = get(state, "endpoints", ns, name)
        .await
        .map_err(|_| unavailable())?;
    for subset in endpoints
        .get("subsets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(target) = subset
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|p| p.get("name").and_then(Value::as_str).unwrap_or("") == port_name)
            .and_then(|p| p.get("port").and_then(Value::as_u64))
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        if let Some(ip) = subset
            .get("addresses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|a| a.get("ip").and_then(Value::as_str).and_then(ip_of))
            .find(|ip| allowed(*ip))
        {
            return Ok(Location {
                addr: SocketAddr::new(ip, target),
                kubelet: false,
            });
        }
    }
    Err(unavailable())
}

async fn node_location(state: &ApiState, name: &str, port: &str) -> ApiResult<Location> {
    let node = get(state, "nodes", None, name).await?;
    let (host, kubelet_port) = crate::kubelet_client::endpoint(&node)?;
    let ip = ip_of(&host).ok_or_else(|| {
        ApiError::internal(format!(
            "node {name:?} has no IP address to proxy to ({host})"
        ))
    })?;
    let port = if port.is_empty() {
        kubelet_port
    } else {
        parse_port(port)?
    };
    Ok(Location {
        addr: SocketAddr::new(ip, port),
        kubelet: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_scheme_and_port() {
        assert_eq!(split_name("web").unwrap(), ("", "web", ""));
        assert_eq!(split_name("web:8080").unwrap(), ("", "web", "8080"));
        assert_eq!(
            split_name("https:web:443").unwrap(),
            ("https", "web", "443")
        );
        assert!(split_name("ftp:web:21").is_err());
        assert!(allowed("10.42.0.5".parse().unwrap()));
        assert!(!allowed("127.0.0.1".parse().unwrap()));
        assert!(!allowed("169.254.169.254".parse().unwrap()));
    }
}
