//! Remote APIServices as the request path sees them: which group-versions are proxied,
//! whether each is available, where its extension API server is and how to reach it
//! (TLS trusting the APIService's caBundle, with the front-proxy client certificate), and
//! the resources its discovery document listed. The availability controller
//! ([`super::availability`]) replaces the snapshot; requests only read it.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, RwLock};

use anyhow::Context as _;
use base64::Engine;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;
use tokio_rustls::TlsConnector;

use crate::pki::Pki;

/// One APIService with `spec.service`.
#[derive(Clone, Debug)]
pub struct Remote {
    /// The APIService's name (`v1alpha1.wardle.example.com`).
    pub name: String,
    pub group: &'static str,
    pub version: &'static str,
    pub group_priority: i64,
    pub version_priority: i64,
    /// Where requests go, when the last check passed.
    pub target: Option<Arc<Target>>,
    /// The resources of its `APIResourceList`, as the last check fetched them.
    pub resources: Arc<Vec<Value>>,
    /// Its `APIVersionDiscovery`, when the server serves aggregated discovery.
    pub discovery: Option<Arc<Value>>,
    /// Its OpenAPI v3 document of the group-version, when the server serves one.
    pub openapi: Option<Arc<OpenApiDoc>>,
}

/// An extension's OpenAPI v3 document, served again under `/openapi/v3`.
#[derive(Debug)]
pub struct OpenApiDoc {
    pub bytes: bytes::Bytes,
    /// Upstream's `hash` query value: the document's SHA-512, upper-case hex.
    pub hash: String,
}

impl OpenApiDoc {
    pub fn new(bytes: bytes::Bytes) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA512, &bytes);
        let hash = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
        OpenApiDoc { bytes, hash }
    }
}

impl Remote {
    pub fn available(&self) -> bool {
        self.target.is_some()
    }
}

/// How an extension API server is reached.
pub struct Target {
    /// A ready endpoint of its Service, at the port the Service port maps to.
    pub addr: SocketAddr,
    /// The name its serving certificate is checked for: `<service>.<namespace>.svc`.
    pub server_name: String,
    pub tls: TlsConnector,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("addr", &self.addr)
            .field("server_name", &self.server_name)
            .finish()
    }
}

/// The remote APIServices, shared by the controller and the request path.
#[derive(Clone, Default)]
pub struct Remotes(Arc<RwLock<Arc<Vec<Remote>>>>);

impl std::fmt::Debug for Remotes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.all().iter()).finish()
    }
}

impl Remotes {
    /// The current APIServices, sorted as upstream sorts discovery: by group priority
    /// (highest first), then version priority.
    pub fn all(&self) -> Arc<Vec<Remote>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(super) fn set(&self, mut remotes: Vec<Remote>) {
        remotes.sort_by(|a, b| {
            (b.group_priority, a.group, b.version_priority, a.version).cmp(&(
                a.group_priority,
                b.group,
                a.version_priority,
                b.version,
            ))
        });
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(remotes);
    }

    /// The APIService proxying `group/version`, available or not.
    pub fn find(&self, group: &str, version: &str) -> Option<Remote> {
        self.all()
            .iter()
            .find(|r| r.group == group && r.version == version)
            .cloned()
    }

    /// The group-versions by group, preferred version first, all or only the available
    /// ones: legacy discovery lists every APIService (upstream's `apisHandler`: a client
    /// then learns of an unavailable one from its 503), aggregated discovery the available.
    pub fn groups(&self, available_only: bool) -> Vec<crate::resources::GroupInfo> {
        let mut out: Vec<crate::resources::GroupInfo> = Vec::new();
        for r in self
            .all()
            .iter()
            .filter(|r| r.available() || !available_only)
        {
            match out.iter_mut().find(|g| g.name == r.group) {
                Some(g) => g.versions.push(r.version),
                None => out.push(crate::resources::GroupInfo {
                    name: r.group,
                    versions: vec![r.version],
                }),
            }
        }
        out
    }
}

/// A group or version name as `&'static str`, as discovery's types hold them. Each distinct
/// name is kept once for the life of the process (APIServices are few and long-lived).
pub(crate) fn intern(s: &str) -> &'static str {
    static NAMES: OnceLock<std::sync::Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    match names.get(s) {
        Some(n) => n,
        None => {
            let n: &'static str = Box::leak(s.to_string().into_boxed_str());
            names.insert(n);
            n
        }
    }
}

/// The aggregator's client certificate (`--proxy-client-cert-file`), presented to every
/// extension API server.
#[derive(Clone)]
pub struct ProxyClient {
    certs: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
}

impl ProxyClient {
    pub fn load(pki: &Pki) -> anyhow::Result<Self> {
        let read = |p: std::path::PathBuf| {
            std::fs::read(&p).with_context(|| format!("reading {}", p.display()))
        };
        let certs = rustls_pemfile::certs(&mut read(pki.front_proxy_client_cert())?.as_slice())
            .collect::<Result<_, _>>()
            .context("parsing the front-proxy client certificate")?;
        let key = rustls_pemfile::private_key(&mut read(pki.front_proxy_client_key())?.as_slice())?
            .context("no private key in the front-proxy client key file")?;
        Ok(ProxyClient {
            certs,
            key: Arc::new(key),
        })
    }

    /// TLS to an APIService's server: its certificate checked against `caBundle`, or not at
    /// all with `insecureSkipTLSVerify`.
    pub fn connector(&self, spec: &Value) -> Result<TlsConnector, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS configuration: {e}"))?;
        let insecure = spec
            .get("insecureSkipTLSVerify")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let builder = if insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(crate::kubelet_client::AnyServerCert(
                    provider,
                )))
        } else {
            let mut roots = rustls::RootCertStore::empty();
            let bundle = spec.get("caBundle").and_then(Value::as_str).unwrap_or("");
            let pem = base64::engine::general_purpose::STANDARD
                .decode(bundle)
                .map_err(|e| format!("invalid caBundle: {e}"))?;
            for c in rustls_pemfile::certs(&mut pem.as_slice()) {
                let c = c.map_err(|e| format!("invalid caBundle: {e}"))?;
                roots
                    .add(c)
                    .map_err(|e| format!("invalid caBundle certificate: {e}"))?;
            }
            builder.with_root_certificates(roots)
        };
        let cfg = builder
            .with_client_auth_cert(self.certs.clone(), self.key.clone_key())
            .map_err(|e| format!("the front-proxy client certificate: {e}"))?;
        Ok(TlsConnector::from(Arc::new(cfg)))
    }
}
