//! The HTTPS listener: TLS with optional client certificates (the admin's, signed by the
//! cluster CA), HTTP/1.1 and HTTP/2, one task per connection.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::handler::{self, ApiState};
use crate::pki::Pki;
use crate::registry::Registry;

/// What `rkube server` configures.
#[derive(Clone, Debug)]
pub struct Config {
    pub data_dir: PathBuf,
    pub bind: SocketAddr,
    pub datastore: store::DatastoreConfig,
    /// Where to write the admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// How long Events are kept (`--event-ttl`).
    pub event_ttl: Duration,
    /// The address the `kubernetes` Service's endpoints point at (`--advertise-address`);
    /// default: the bind address, if it names one.
    pub advertise_address: Option<std::net::IpAddr>,
    /// Who may do what (`--authorization-mode`).
    pub authorization_mode: AuthorizationMode,
    /// Static bearer tokens (`--token-auth-file`).
    pub token_auth_file: Option<PathBuf>,
    /// An `EncryptionConfiguration` file (`--encryption-provider-config`).
    pub encryption_config: Option<PathBuf>,
    /// An audit `Policy` file (`--audit-policy-file`); no policy: no auditing.
    pub audit_policy: Option<PathBuf>,
    /// Where audit events go (`--audit-log-path`; `-` is stdout).
    pub audit_log: Option<PathBuf>,
    /// Admission plugins to turn off (`--disable-admission-plugins`), by upstream's names.
    pub disable_admission_plugins: Vec<String>,
    /// The network namespace pods live in, when not the server's own (the node test lab):
    /// the proxy subresources dial pods from it.
    pub pod_netns: Option<PathBuf>,
    /// The CA kubelets' serving certificates must chain to (`--kubelet-certificate-authority`);
    /// none: they are not verified (upstream's default).
    pub kubelet_certificate_authority: Option<PathBuf>,
    /// Groups other components of this process serve (the metrics server's), as APIServices.
    pub local_services: crate::aggregator::LocalServices,
}

/// `--authorization-mode`: `Node,RBAC` (the default), or `AlwaysAllow` (any authenticated
/// user may do anything; for measuring what authorization costs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AuthorizationMode {
    #[default]
    NodeRbac,
    AlwaysAllow,
}

/// A running API server.
pub struct Server {
    pub addr: SocketAddr,
    pub kubeconfig: PathBuf,
    store: Arc<dyn store::Store>,
    task: JoinHandle<()>,
    /// The CRD controller (a follower of the watch cache).
    crds: JoinHandle<()>,
    /// The APIService controllers.
    aggregator: JoinHandle<()>,
    authorizer: Option<Arc<crate::authz::Authorizer>>,
}

impl Server {
    pub async fn start(config: Config) -> Result<Server> {
        let store = store::open(&config.datastore)
            .await
            .context("opening the datastore")?;
        Self::start_on(config, store).await
    }

    /// [`Server::start`] on an open store (a restart within one process: SQLite's lock is
    /// held for as long as the store lives).
    pub async fn start_on(config: Config, store: Arc<dyn store::Store>) -> Result<Server> {
        // Before anything is written: a bad config must stop the server.
        let encryption = config
            .encryption_config
            .as_deref()
            .map(crate::encryption::EncryptionConfig::load)
            .transpose()?
            .map(Arc::new);
        let pki = Pki::new(&config.data_dir);
        let mut sans: Vec<String> = [
            "localhost",
            "127.0.0.1",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            "10.43.0.1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
            sans.push(host.trim().to_string());
        }
        if !config.bind.ip().is_unspecified() && !config.bind.ip().is_loopback() {
            sans.push(config.bind.ip().to_string());
        }
        // Agents on other nodes (and pods, through the kubernetes Service) reach it there.
        if let Some(ip) = config.advertise_address {
            sans.push(ip.to_string());
        }
        sans.sort();
        sans.dedup();
        pki.ensure(&sans)?;
        let tls = tls_config(&pki)?;
        let listener = TcpListener::bind(config.bind)
            .await
            .with_context(|| format!("listening on {}", config.bind))?;
        let addr = listener.local_addr()?;
        let host = if addr.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            addr.ip().to_string()
        };
        let server_url = format!("https://{host}:{}", addr.port());
        pki.write_admin_kubeconfig(&config.kubeconfig, &server_url)?;
        for p in &config.disable_admission_plugins {
            anyhow::ensure!(
                crate::admission::PLUGINS.contains(&p.as_str()),
                "unknown admission plugin {p:?}; the plugins are {}",
                crate::admission::PLUGINS.join(", ")
            );
        }
        let mut registry = Registry::new(store.clone(), config.event_ttl);
        registry.encryption = encryption;
        let mut state = ApiState::new(
            registry,
            format!("{host}:{}", addr.port()),
            config.disable_admission_plugins.iter().cloned().collect(),
        );
        // As upstream, events are written only with both a policy and a log path.
        if let (Some(policy), Some(log)) = (&config.audit_policy, &config.audit_log) {
            let policy = crate::audit::Policy::load(policy)?;
            state.audit = Some(crate::audit::Auditor::start(policy, log)?);
        }
        if let Some(ns) = &config.pod_netns {
            state.pod_dialer = Some(Arc::new(streaming::NetnsDialer::new(ns).with_context(
                || format!("entering the pods' network namespace {}", ns.display()),
            )?));
        }
        state.kubelet = Some(
            crate::kubelet_client::KubeletClient::new(
                &pki,
                config.kubelet_certificate_authority.as_deref(),
            )
            .context("the kubelet client")?,
        );
        for service in config.local_services.iter() {
            state.catalog.add_local(service.as_ref());
        }
        state.services = config.local_services.clone();
        state.authenticator = crate::authn::Authenticator {
            service_accounts: Some(
                crate::authn::serviceaccount::TokenSigner::load_or_create(
                    &pki.dir.join("service.key"),
                )
                .context("the service account signing key")?,
            ),
            static_tokens: match &config.token_auth_file {
                Some(p) => crate::authn::read_token_file(p)?,
                None => Default::default(),
            },
            audiences: vec![crate::authn::serviceaccount::ISSUER.to_string()],
            request_header: Some(
                crate::authn::requestheader::RequestHeader::new(
                    &std::fs::read(pki.front_proxy_ca_cert())?,
                    vec![crate::pki::FRONT_PROXY_CLIENT.to_string()],
                )
                .context("the request-header authenticator")?,
            ),
        };
        crate::bootstrap::bootstrap(&state)
            .await
            .context("creating the system namespaces and the default RBAC policy")?;
        if config.authorization_mode == AuthorizationMode::NodeRbac {
            let authz = crate::authz::Authorizer::start(state.registry.clone()).await;
            // Escalation checks run in admission, which reaches the authorizer this way.
            state.admission.set_authorizer(authz.clone());
            state.authorizer = Some(authz);
        }
        let state = Arc::new(state);
        // Custom kinds already defined are served from the first request on.
        let crds = crate::customresource::controller::start(state.clone())
            .await
            .context("serving the CustomResourceDefinitions")?;
        let advertise = config
            .advertise_address
            .or_else(|| (!addr.ip().is_unspecified()).then(|| addr.ip()));
        if let Some(ip) = advertise {
            crate::bootstrap::reconcile_kubernetes_endpoints(
                &state,
                SocketAddr::new(ip, addr.port()),
            )
            .await
            .context("writing the kubernetes service's endpoints")?;
        }
        let authorizer = state.authorizer.clone();
        let public_url = match advertise {
            Some(ip) => format!("https://{}", SocketAddr::new(ip, addr.port())),
            None => server_url.clone(),
        };
        crate::bootstrap::publish_cluster_info(
            &state,
            &public_url,
            &std::fs::read_to_string(pki.ca_cert()).context("reading the CA")?,
        )
        .await
        .context("publishing cluster-info")?;
        // What extension API servers read to trust the aggregator's proxied requests.
        crate::authn::requestheader::publish(
            &state,
            &std::fs::read_to_string(pki.ca_cert()).context("reading the CA")?,
            &std::fs::read_to_string(pki.front_proxy_ca_cert())
                .context("reading the front-proxy CA")?,
        )
        .await
        .context("publishing extension-apiserver-authentication")?;
        let aggregator = crate::aggregator::start(
            state.clone(),
            crate::aggregator::remote::ProxyClient::load(&pki)
                .context("the front-proxy client certificate")?,
        );
        let acceptor = TlsAcceptor::from(Arc::new(tls));
        let task = tokio::spawn(accept_loop(listener, acceptor, state));
        tracing::info!(%addr, kubeconfig = %config.kubeconfig.display(), "API server listening");
        Ok(Server {
            addr,
            kubeconfig: config.kubeconfig,
            store,
            task,
            crds,
            aggregator,
            authorizer,
        })
    }

    /// Serves until the listener fails.
    pub async fn wait(mut self) -> Result<()> {
        (&mut self.task).await.context("API server task")
    }

    /// The store the server uses (e.g. for the compactor).
    pub fn store(&self) -> Arc<dyn store::Store> {
        self.store.clone()
    }

    pub fn stop(&self) {
        self.task.abort();
        self.crds.abort();
        self.aggregator.abort();
        if let Some(a) = &self.authorizer {
            a.stop();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn read_certs(path: &PathBuf) -> Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing {}", path.display()))
}

fn tls_config(pki: &Pki) -> Result<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    // The front proxy's CA too: its certificates authenticate by request headers (see
    // `authn::requestheader`), never as users of their own.
    for c in read_certs(&pki.ca_cert())?
        .into_iter()
        .chain(read_certs(&pki.front_proxy_ca_cert())?)
    {
        roots.add(c)?;
    }
    // Certificates are optional at the TLS layer: a request without one gets a 401 Status,
    // as Kubernetes answers it, instead of a handshake failure.
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()?;
    let key_pem = std::fs::read(pki.serving_key())?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_slice())?
        .context("no private key in the serving key file")?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(read_certs(&pki.serving_cert())?, key)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor, state: Arc<ApiState>) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(t)) => t,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
            let cert = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| state.authenticator.cert_identity(c));
            let service = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                // The audit log's sourceIPs.
                req.extensions_mut().insert(crate::audit::PeerAddr(peer));
                // Per request: a front proxy's user is in each request's headers.
                let user = cert.as_ref().and_then(|c| c.user(req.headers()));
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(handler::handle(state, user, req).await) }
            });
            if let Err(e) = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}
