//! How the API server reaches kubelets (`pods/log`, `exec`, `attach`, `portforward`): the
//! node's address (`status.addresses`, InternalIP first, port from `daemonEndpoints`) and
//! TLS with the API server's kubelet-client certificate. The kubelet's serving certificate is
//! verified against `--kubelet-certificate-authority` when one is given (`rkube server`
//! gives the cluster CA, which signs kubelets' `kubelet-serving` requests), and not at all
//! otherwise (upstream's default).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::error::{ApiError, ApiResult};
use crate::pki::Pki;

/// The kubelet's port when a Node does not advertise one.
const DEFAULT_KUBELET_PORT: i64 = 10250;
/// How long connecting to a kubelet may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(30);
/// Node address types tried in order (k3s' `--kubelet-preferred-address-types`).
const PREFERRED_ADDRESS_TYPES: [&str; 3] = ["InternalIP", "ExternalIP", "Hostname"];

/// How the API server reaches kubelets: TLS with its kubelet-client certificate.
pub struct KubeletClient {
    tls: TlsConnector,
    /// The same without verifying the kubelet (`insecureSkipTLSVerifyBackend` on logs).
    insecure: TlsConnector,
}

impl KubeletClient {
    /// From the kubelet-client certificate and key of `pki`, checking kubelets against the
    /// CA certificates in `serving_ca` if given.
    pub fn new(pki: &Pki, serving_ca: Option<&std::path::Path>) -> anyhow::Result<Self> {
        let read = |p: std::path::PathBuf| {
            std::fs::read(&p).with_context(|| format!("reading {}", p.display()))
        };
        let certs: Vec<CertificateDer<'static>> =
            rustls_pemfile::certs(&mut read(pki.kubelet_client_cert())?.as_slice())
                .collect::<Result<_, _>>()
                .context("parsing the kubelet client certificate")?;
        let key: PrivateKeyDer<'static> =
            rustls_pemfile::private_key(&mut read(pki.kubelet_client_key())?.as_slice())?
                .context("no private key in the kubelet client key file")?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let builder = match serving_ca {
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in rustls_pemfile::certs(&mut read(path.to_path_buf())?.as_slice()) {
                    roots
                        .add(c.context("parsing the kubelet certificate authority")?)
                        .context("the kubelet certificate authority")?;
                }
                builder.with_root_certificates(roots)
            }
            None => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyServerCert(provider.clone()))),
        };
        let cfg = builder
            .with_client_auth_cert(certs.clone(), key.clone_key())
            .context("the kubelet client certificate")?;
        let insecure = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCert(provider)))
            .with_client_auth_cert(certs, key)
            .context("the kubelet client certificate")?;
        Ok(KubeletClient {
            tls: TlsConnector::from(Arc::new(cfg)),
            insecure: TlsConnector::from(Arc::new(insecure)),
        })
    }
}

/// Accepts any serving certificate (kubelets without a kubelet CA; pods and services behind
/// `https:` proxies, as upstream's proxy transport), checking only that the handshake is
/// signed by its key.
#[derive(Debug)]
pub(crate) struct AnyServerCert(pub(crate) Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The host and port of a Node's kubelet.
pub fn endpoint(node: &Value) -> ApiResult<(String, u16)> {
    let addresses: Vec<(&str, &str)> = node
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|a| {
            let s = |k: &str| a.get(k).and_then(Value::as_str).unwrap_or("");
            (s("type"), s("address"))
        })
        .collect();
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_i64);
    pick_endpoint(&addresses, port)
}

/// [`endpoint`] of a typed Node (the metrics server's informer holds them).
pub fn node_endpoint(node: &k8s_openapi::api::core::v1::Node) -> ApiResult<(String, u16)> {
    let status = node.status.as_ref();
    let addresses: Vec<(&str, &str)> = status
        .and_then(|s| s.addresses.as_ref())
        .into_iter()
        .flatten()
        .map(|a| (a.type_.as_str(), a.address.as_str()))
        .collect();
    let port = status
        .and_then(|s| s.daemon_endpoints.as_ref())
        .and_then(|d| d.kubelet_endpoint.as_ref())
        .map(|e| i64::from(e.port));
    pick_endpoint(&addresses, port)
}

/// The first address of the preferred types (upstream's `GetPreferredNodeAddress`) and the
/// kubelet port (10250 when unset).
fn pick_endpoint(addresses: &[(&str, &str)], port: Option<i64>) -> ApiResult<(String, u16)> {
    let host = PREFERRED_ADDRESS_TYPES
        .iter()
        .find_map(|t| addresses.iter().find(|(ty, _)| ty == t).map(|(_, a)| *a))
        .ok_or_else(|| {
            let known: Vec<String> = addresses
                .iter()
                .map(|(t, a)| format!("{{{t} {a}}}"))
                .collect();
            ApiError::new(
                500,
                "",
                format!(
                    "no preferred addresses found; known addresses: [{}]",
                    known.join(" ")
                ),
            )
        })?;
    let port = port.filter(|p| *p > 0).unwrap_or(DEFAULT_KUBELET_PORT);
    let port = u16::try_from(port)
        .map_err(|_| ApiError::new(500, "", format!("node kubelet port {port} is out of range")))?;
    Ok((host.to_owned(), port))
}

impl KubeletClient {
    /// A TLS connection of its own to the kubelet at `host:port`.
    pub async fn dial(&self, host: &str, port: u16) -> anyhow::Result<TlsStream<TcpStream>> {
        self.dial_with(&self.tls, host, port).await
    }

    async fn dial_with(
        &self,
        tls: &TlsConnector,
        host: &str,
        port: u16,
    ) -> anyhow::Result<TlsStream<TcpStream>> {
        let tcp = tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect((host, port)))
            .await
            .context("dial timeout")?
            .context("dial tcp")?;
        let _ = tcp.set_nodelay(true);
        let server_name = ServerName::try_from(host.to_owned()).context("kubelet host name")?;
        tls.connect(server_name, tcp)
            .await
            .context("TLS handshake with the kubelet")
    }

    /// One GET to a kubelet over its own connection (closed with the response body);
    /// `insecure` skips verifying the kubelet's certificate.
    pub async fn get(
        &self,
        host: &str,
        port: u16,
        authority: &str,
        path_and_query: &str,
        insecure: bool,
    ) -> anyhow::Result<Response<hyper::body::Incoming>> {
        let connector = if insecure { &self.insecure } else { &self.tls };
        let tls = self.dial_with(connector, host, port).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .context("HTTP handshake")?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "kubelet connection ended with an error");
            }
        });
        let req = Request::get(path_and_query)
            .header(header::HOST, authority)
            .header(header::USER_AGENT, "kube-apiserver (rkube)")
            .body(Empty::<Bytes>::new())
            .context("building the request")?;
        sender.send_request(req).await.context("request")
    }
}

/// The kubelet of node `node_name` and the client to reach it with: its host and port.
pub async fn for_node<'a>(
    state: &'a crate::handler::ApiState,
    node_name: &str,
) -> ApiResult<(&'a KubeletClient, String, u16)> {
    let nodes = state
        .catalog
        .find("", "v1", "nodes")
        .ok_or_else(ApiError::not_found_path)?;
    let node = state.registry.get(nodes, None, node_name).await?;
    let (host, port) = endpoint(&node)?;
    let client = state
        .kubelet
        .as_ref()
        .ok_or_else(|| ApiError::internal("the API server has no kubelet client certificate"))?;
    Ok((client, host, port))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_nodes_kubelet_is_reached_at_its_preferred_address() {
        let node = serde_json::json!({"status": {
            "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.99.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 12345}}}});
        let typed: k8s_openapi::api::core::v1::Node = serde_json::from_value(node.clone()).unwrap();
        assert_eq!(endpoint(&node).unwrap(), ("10.99.0.1".to_string(), 12345));
        assert_eq!(node_endpoint(&typed).unwrap(), endpoint(&node).unwrap());
        let bare =
            serde_json::json!({"status": {"addresses": [{"type": "Hostname", "address": "n1"}]}});
        assert_eq!(endpoint(&bare).unwrap(), ("n1".to_string(), 10250));
        let none =
            serde_json::json!({"status": {"addresses": [{"type": "ExternalDNS", "address": "x"}]}});
        assert_eq!(
            endpoint(&none).unwrap_err().message,
            "no preferred addresses found; known addresses: [{ExternalDNS x}]"
        );
    }
}
