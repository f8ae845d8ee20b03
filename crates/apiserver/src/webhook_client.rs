//! The HTTPS client of the API server's webhooks (admission webhooks and CRD conversion
//! webhooks share upstream's `webhook` client): a `clientConfig`'s `url`, or its `service`
//! dialled at the Service's cluster IP and verified as `<svc>.<ns>.svc`, trusting its
//! `caBundle`; one JSON POST within a timeout (sent as `?timeout=`), errors worded as
//! upstream's.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::admission::Lister;

/// The largest response read (upstream's limit for webhook responses).
const MAX_RESPONSE: usize = 3 * 1024 * 1024;

/// Where a webhook is reached: the address dialled, the TLS name checked, the request target.
struct Endpoint {
    connect: (String, u16),
    server_name: String,
    authority: String,
    path: String,
    /// The URL as upstream's errors show it.
    url: String,
}

async fn endpoint(services: &dyn Lister, hook: &Value, timeout: u64) -> Result<Endpoint, String> {
    let cc = hook.get("clientConfig");
    let with_timeout = |path: &str| {
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("{path}{sep}timeout={timeout}s")
    };
    if let Some(url) = cc.and_then(|c| c.get("url")).and_then(Value::as_str) {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("invalid webhook URL {url:?}: {e}"))?;
        if uri.scheme_str() != Some("https") {
            return Err(format!("webhook URL {url:?} is not https"));
        }
        let host = uri
            .host()
            .ok_or_else(|| format!("webhook URL {url:?} has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(443);
        let path = with_timeout(uri.path_and_query().map_or("/", |p| p.as_str()));
        let authority = uri
            .authority()
            .map_or_else(|| host.clone(), |a| a.to_string());
        return Ok(Endpoint {
            url: format!("https://{authority}{path}"),
            connect: (host.clone(), port),
            server_name: host,
            authority,
            path,
        });
    }
    let svc = cc
        .and_then(|c| c.get("service"))
        .ok_or("webhook has no clientConfig url or service")?;
    let s = |k: &str| svc.get(k).and_then(Value::as_str).unwrap_or("");
    let (name, ns) = (s("name"), s("namespace"));
    let port = svc
        .get("port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(443);
    let path = with_timeout(svc.get("path").and_then(Value::as_str).unwrap_or("/"));
    let host = format!("{name}.{ns}.svc");
    // The API server may not use cluster DNS: the Service's cluster IP is dialled, and the
    // certificate checked for the service's DNS name, as upstream's service resolver does.
    let info = crate::resources::by_kind("", "Service").map_err(|e| e.message)?;
    let service = services
        .get(info, Some(ns), name)
        .await
        .map_err(|e| e.message)?
        .ok_or_else(|| crate::error::ApiError::not_found(info, name).message)?;
    let ip = service
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .filter(|ip| !ip.is_empty() && *ip != "None")
        .ok_or_else(|| format!("service {ns}/{name} has no cluster IP"))?;
    let authority = format!("{host}:{port}");
    Ok(Endpoint {
        url: format!("https://{authority}{path}"),
        connect: (ip.to_string(), port),
        server_name: host,
        authority,
        path,
    })
}

fn tls_connector(hook: &Value) -> Result<TlsConnector, String> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(bundle) = hook
        .pointer("/clientConfig/caBundle")
        .and_then(Value::as_str)
    {
        let pem = base64::engine::general_purpose::STANDARD
            .decode(bundle)
            .map_err(|e| format!("invalid caBundle: {e}"))?;
        let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut pem.as_slice())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("invalid caBundle: {e}"))?;
        for c in certs {
            roots
                .add(c)
                .map_err(|e| format!("invalid caBundle certificate: {e}"))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(cfg)))
}

/// POSTs the review to the webhook within its timeout; the response body. Errors read as
/// upstream's (`failed to call webhook: Post "<url>": ...`).
pub(crate) async fn send(
    services: &dyn Lister,
    hook: &Value,
    timeout: u64,
    review: &Value,
    user_agent: &'static str,
) -> Result<Vec<u8>, String> {
    let ep = endpoint(services, hook, timeout).await?;
    let tls = tls_connector(hook)?;
    let body = serde_json::to_vec(review).map_err(|e| format!("encoding the review: {e}"))?;
    let call = post(&ep, tls, body, user_agent);
    match tokio::time::timeout(Duration::from_secs(timeout), call).await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(e)) => Err(format!("failed to call webhook: Post {:?}: {e}", ep.url)),
        Err(_) => Err(format!(
            "failed to call webhook: Post {:?}: context deadline exceeded",
            ep.url
        )),
    }
}

async fn post(
    ep: &Endpoint,
    tls: TlsConnector,
    body: Vec<u8>,
    user_agent: &str,
) -> Result<Vec<u8>, String> {
    let (host, port) = (&ep.connect.0, ep.connect.1);
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::ConnectionRefused => {
                format!("dial tcp {host}:{port}: connect: connection refused")
            }
            _ => format!("dial tcp {host}:{port}: {e}"),
        })?;
    let _ = tcp.set_nodelay(true);
    let name = ServerName::try_from(ep.server_name.clone())
        .map_err(|e| format!("invalid server name {:?}: {e}", ep.server_name))?;
    let tls = tls
        .connect(name, tcp)
        .await
        .map_err(|e| format!("tls: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "webhook connection ended with an error");
        }
    });
    let req = http::Request::post(ep.path.as_str())
        .header(http::header::HOST, ep.authority.as_str())
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json")
        .header(http::header::USER_AGENT, user_agent)
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("building the request: {e}"))?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let body = http_body_util::Limited::new(resp.into_body(), MAX_RESPONSE)
        .collect()
        .await
        .map_err(|e| format!("reading the response: {e}"))?
        .to_bytes();
    if !status.is_success() {
        return Err(format!(
            "the server responded with the status code {} but did not return more information",
            status.as_u16()
        ));
    }
    Ok(body.to_vec())
}
