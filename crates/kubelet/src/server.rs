//! The kubelet's HTTPS server on the node IP (port 10250 by default; upstream's
//! `pkg/kubelet/server`): `GET /containerLogs/{namespace}/{pod}/{container}`, `/healthz`,
//! `GET /pods` and `POST /run/{namespace}/{pod}[/{uid}]/{container}?cmd=…` ([`pods`]),
//! `GET|POST /stats/summary`, `/metrics`, `/metrics/resource` and `/metrics/cadvisor` ([`stats`], from
//! [`crate::stats`]), and through [`crate::streaming`] `/exec`, `/attach` and `/portForward`.
//!
//! TLS with a serving certificate for the node's name and IP ([`serving_cert`]: self-signed,
//! or with `server_tls_bootstrap` one the cluster CA signed through a `kubelet-serving`
//! CertificateSigningRequest). Every request is authenticated
//! ([`authn`]: a client certificate signed by the cluster CA, else a bearer token checked by
//! a TokenReview; neither → 401 `Unauthorized`) and then authorized ([`authz`]: a
//! SubjectAccessReview on this Node's `nodes/<subresource>`; a denial → 403), both asked of
//! the API server through the kubelet's own client, both answers cached, as upstream's
//! kubelet delegates them.

pub mod authn;
pub mod authz;
pub mod pods;
mod review;
pub mod serving_cert;
pub mod stats;
mod ttl_cache;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use common::params::query_bool;

use crate::config::KubeletConfig;
use crate::container_logs::{LogOptions, read_logs};
use crate::cri::RuntimeClient;
use crate::pod_workers::PodWorkers;
use crate::stats::StatsProvider;
use crate::status::StatusManager;
use crate::streaming::{self, Target};
use ::streaming::NetnsDialer;
use authn::{Authenticator, UserInfo};
use authz::{Authorizer, Verdict};

pub(crate) type Body = BoxBody<Bytes, Infallible>;

/// What the handlers read: the pods this kubelet runs, their statuses and the runtime; and
/// who decides which callers get in.
#[derive(Clone)]
pub struct ServerState {
    pub workers: Arc<PodWorkers>,
    pub status: StatusManager,
    pub cri: RuntimeClient,
    /// Dials the runtime's stream server from the pods' network namespace, if not the node's.
    pub dialer: Option<Arc<NetnsDialer>>,
    pub authenticator: Arc<Authenticator>,
    pub authorizer: Arc<Authorizer>,
    /// Resource stats of the node and its pods (`/stats`, `/metrics/resource|cadvisor`).
    pub stats: Arc<StatsProvider>,
}

/// A bound, not yet serving, kubelet server (bound first so the port is known before the
/// node status advertises it).
pub struct Server {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    addr: SocketAddr,
    /// What the server presents, for whom, and whether the cluster CA signed it.
    pub serving: Arc<serving_cert::ServingCert>,
    pub identity: serving_cert::Identity,
    pub ca_signed: bool,
}

impl Server {
    /// Binds `ip:cfg.kubelet_port` (0 = any free port) with TLS that requires callers to be
    /// signed by `cfg.client_ca`; serves the kept certificate if it names this node, else a
    /// new self-signed one ([`serving_cert`]).
    pub async fn bind(cfg: &KubeletConfig, ip: IpAddr) -> anyhow::Result<Server> {
        if cfg.client_ca.is_empty() {
            bail!("no client CA: the kubelet would serve nobody");
        }
        let port = u16::try_from(cfg.kubelet_port)
            .with_context(|| format!("kubelet port {}", cfg.kubelet_port))?;
        let dirs = cfg.dirs();
        let identity = serving_cert::Identity::new(
            &cfg.node_name,
            &cfg.hostname,
            ip,
            &dirs.serving_cert,
            &dirs.serving_key,
        );
        let (serving, ca_signed) = serving_cert::load(&identity, &cfg.client_ca)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for der in &cfg.client_ca {
            roots
                .add(CertificateDer::from(der.clone()))
                .context("the client CA certificate")?;
        }
        // A caller without a certificate may still bring a bearer token (else it gets a 401,
        // as upstream's authentication filter answers); one with a certificate of another CA
        // fails the handshake.
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()
                .context("client certificate verifier")?;
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(serving.clone());
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let bind = SocketAddr::new(ip, port);
        let listener = TcpListener::bind(bind)
            .await
            .with_context(|| format!("listening on {bind}"))?;
        let addr = listener.local_addr()?;
        Ok(Server {
            listener,
            acceptor: TlsAcceptor::from(Arc::new(tls)),
            addr,
            serving,
            identity,
            ca_signed,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until dropped.
    pub async fn serve(self, state: ServerState) {
        info!(addr = %self.addr, "kubelet server listening");
        let state = Arc::new(state);
        loop {
            let (tcp, peer) = match self.listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    warn!(error = %e, "kubelet server: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = self.acceptor.clone();
            let state = state.clone();
            tokio::spawn(async move {
                let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp))
                    .await
                {
                    Ok(Ok(t)) => t,
                    Ok(Err(e)) => {
                        debug!(%peer, error = %e, "kubelet server: TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
                let caller = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .and_then(UserInfo::from_cert);
                let service = service_fn(move |req| {
                    let (state, caller) = (state.clone(), caller.clone());
                    async move { Ok::<_, Infallible>(handle(&state, caller, req).await) }
                });
                if let Err(e) = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(tls), service)
                    .await
                {
                    debug!(%peer, error = %e, "kubelet server: connection ended with an error");
                }
            });
        }
    }
}

pub(crate) fn text(code: StatusCode, msg: impl Into<String>) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(msg.into())).boxed());
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

async fn handle(
    state: &ServerState,
    caller: Option<UserInfo>,
    mut req: Request<Incoming>,
) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let Some(user) = state
        .authenticator
        .authenticate(caller, req.headers_mut())
        .await
    else {
        return text(StatusCode::UNAUTHORIZED, "Unauthorized");
    };
    match state.authorizer.authorize(&user, req.method(), &path).await {
        Verdict::Allowed => {}
        Verdict::Forbidden(msg) => return text(StatusCode::FORBIDDEN, msg),
        Verdict::Failed(msg) => return text(StatusCode::INTERNAL_SERVER_ERROR, msg),
    }
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (req.method(), parts.as_slice()) {
        (&Method::GET, ["healthz"]) => text(StatusCode::OK, "ok"),
        (&Method::GET, ["pods"] | ["pods", ""]) => pods::pods(state),
        // `/run/{ns}/{pod}/{container}`, or with the pod's uid before the container.
        (&Method::POST, ["run", ns, pod, .., container]) if matches!(parts.len(), 4 | 5) => {
            let uid = (parts.len() == 5).then_some(parts[3]);
            let query = common::query::Query::parse(req.uri().query()).first_values();
            let cmd = query.get("cmd").map_or("", String::as_str);
            pods::run(state, ns, pod, uid, container, cmd).await
        }
        (&Method::GET | &Method::POST, ["stats", "summary"]) => {
            stats::summary(state, req.uri().query()).await
        }
        (_, ["stats", "summary"]) => {
            text(StatusCode::METHOD_NOT_ALLOWED, "405: Method Not Allowed")
        }
        // promhttp answers every method.
        (_, ["metrics", "resource"]) => stats::resource_metrics(state).await,
        (_, ["metrics", "cadvisor"]) => stats::cadvisor_metrics(state).await,
        (_, ["metrics"]) => {
            let mut resp = text(StatusCode::OK, state.stats.kubelet_metrics().await);
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(crate::stats::prometheus::CONTENT_TYPE),
            );
            resp
        }
        (_, ["pods"] | ["pods", ""]) => {
            text(StatusCode::METHOD_NOT_ALLOWED, "405: Method Not Allowed")
        }
        (_, ["run", _, _, _] | ["run", _, _, _, _]) => {
            text(StatusCode::METHOD_NOT_ALLOWED, "405: Method Not Allowed")
        }
        (&Method::GET, ["containerLogs", ns, pod, container]) => {
            let query = common::query::Query::parse(req.uri().query()).first_values();
            container_logs(state, ns, pod, container, &query).await
        }
        // `/exec/{ns}/{pod}/{container}`, or with the pod's uid before the container.
        (&Method::GET | &Method::POST, [verb @ ("exec" | "attach"), ns, pod, .., container])
            if matches!(parts.len(), 4 | 5) =>
        {
            let uid = (parts.len() == 5).then(|| parts[3].to_string());
            let container = container.to_string();
            let target = if *verb == "exec" {
                Target::Exec {
                    container: &container,
                }
            } else {
                Target::Attach {
                    container: &container,
                }
            };
            let (ns, pod) = (ns.to_string(), pod.to_string());
            streaming::serve(state, &ns, &pod, uid.as_deref(), target, req).await
        }
        (&Method::GET | &Method::POST, ["portForward", ns, pod, rest @ ..]) if rest.len() <= 1 => {
            let uid = rest.first().map(|u| u.to_string());
            let (ns, pod) = (ns.to_string(), pod.to_string());
            streaming::serve(state, &ns, &pod, uid.as_deref(), Target::PortForward, req).await
        }
        (_, ["containerLogs", ..]) if req.method() != Method::GET => {
            text(StatusCode::METHOD_NOT_ALLOWED, "405: Method Not Allowed")
        }
        (_, ["containerLogs", ..]) => text(
            StatusCode::BAD_REQUEST,
            r#"{"message": "Missing container name."}"#,
        ),
        _ => text(StatusCode::NOT_FOUND, "404 page not found\n"),
    }
}

/// `PodLogOptions` from a query, decoded as Kubernetes' parameter codec does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodLogOptions {
    pub container: Option<String>,
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub since_seconds: Option<i64>,
    pub since_time: Option<Timestamp>,
    pub tail_lines: Option<i64>,
    pub limit_bytes: Option<i64>,
}

impl PodLogOptions {
    /// Decodes the query; the error is the parameter codec's message.
    pub fn from_query(q: &HashMap<String, String>) -> Result<Self, String> {
        let int = |k: &str| -> Result<Option<i64>, String> {
            match q.get(k).map(String::as_str) {
                None | Some("") => Ok(None),
                Some(v) => v
                    .parse::<i64>()
                    .map(Some)
                    .map_err(|_| format!("strconv.ParseInt: parsing {v:?}: invalid syntax")),
            }
        };
        let since_time = match q.get("sinceTime").map(String::as_str) {
            None | Some("") => None,
            Some(v) => Some(v.parse::<Timestamp>().map_err(|_| {
                format!(
                    "parsing time {v:?} as \"2006-01-02T15:04:05Z07:00\": cannot parse {v:?} as \"2006\""
                )
            })?),
        };
        Ok(PodLogOptions {
            container: q.get("container").filter(|c| !c.is_empty()).cloned(),
            follow: query_bool(q.get("follow").map(String::as_str)),
            previous: query_bool(q.get("previous").map(String::as_str)),
            timestamps: query_bool(q.get("timestamps").map(String::as_str)),
            since_seconds: int("sinceSeconds")?,
            since_time,
            tail_lines: int("tailLines")?,
            limit_bytes: int("limitBytes")?,
        })
    }

    /// Upstream's `ValidatePodLogOptions`: (field, value, detail) of each problem.
    pub fn validate(&self) -> Vec<(String, Option<String>, String)> {
        let mut errs = Vec::new();
        if let Some(t) = self.tail_lines.filter(|t| *t < 0) {
            errs.push((
                "tailLines".into(),
                Some(t.to_string()),
                "must be greater than or equal to 0".into(),
            ));
        }
        if let Some(b) = self.limit_bytes.filter(|b| *b < 1) {
            errs.push((
                "limitBytes".into(),
                Some(b.to_string()),
                "must be greater than 0".into(),
            ));
        }
        match (self.since_seconds, self.since_time) {
            (Some(_), Some(_)) => errs.push((
                String::new(),
                None,
                "at most one of `sinceTime` or `sinceSeconds` may be specified".into(),
            )),
            (Some(s), None) if s < 1 => errs.push((
                "sinceSeconds".into(),
                Some(s.to_string()),
                "must be greater than 0".into(),
            )),
            _ => {}
        }
        errs
    }

    /// What the log reader applies, `now` being the request's time.
    pub fn log_options(&self, now: Timestamp) -> LogOptions {
        let mut since = self
            .since_seconds
            .and_then(|s| now.checked_sub(SignedDuration::from_secs(s)).ok());
        if let Some(t) = self.since_time
            && since.is_none_or(|s| t > s)
        {
            since = Some(t);
        }
        LogOptions {
            tail: self.tail_lines.and_then(|t| u64::try_from(t).ok()),
            limit_bytes: self.limit_bytes.and_then(|b| u64::try_from(b).ok()),
            since,
            follow: self.follow,
            timestamps: self.timestamps,
        }
    }
}

/// Whether the pod's spec has a container (init, regular or ephemeral) named `name`.
fn has_container(pod: &Pod, name: &str) -> bool {
    pod.spec.as_ref().is_some_and(|s| {
        s.containers.iter().any(|c| c.name == name)
            || s.init_containers.iter().flatten().any(|c| c.name == name)
            || s.ephemeral_containers
                .iter()
                .flatten()
                .any(|c| c.name == name)
    })
}

/// The container ID whose log to read (upstream's `validateContainerLogStatus`).
pub fn container_log_id(
    pod_name: &str,
    status: &PodStatus,
    container: &str,
    previous: bool,
) -> Result<String, String> {
    let cs = [
        &status.container_statuses,
        &status.init_container_statuses,
        &status.ephemeral_container_statuses,
    ]
    .into_iter()
    .flatten()
    .flatten()
    .find(|c| c.name == container)
    .ok_or_else(|| format!("container {container:?} in pod {pod_name:?} is not available"))?;
    let last = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref());
    let last_id = last
        .and_then(|t| t.container_id.clone())
        .filter(|id| !id.is_empty());
    let state = cs.state.clone().unwrap_or_default();
    let id = if previous {
        last_id.ok_or_else(|| {
            format!("previous terminated container {container:?} in pod {pod_name:?} not found")
        })?
    } else if state.running.is_some() {
        cs.container_id.clone().unwrap_or_default()
    } else if let Some(t) = &state.terminated {
        match t.container_id.clone().filter(|id| !id.is_empty()) {
            Some(id) => id,
            // The next instance did not start: the last one's log.
            None => last_id.ok_or_else(|| {
                format!("container {container:?} in pod {pod_name:?} is terminated")
            })?,
        }
    } else if last.is_some() {
        last_id
            .ok_or_else(|| format!("container {container:?} in pod {pod_name:?} is terminated"))?
    } else if let Some(w) = &state.waiting {
        let reason = w.reason.clone().unwrap_or_default();
        return Err(match reason.as_str() {
            "ErrImagePull" => format!(
                "container {container:?} in pod {pod_name:?} is waiting to start: image can't be pulled"
            ),
            "ImagePullBackOff" => format!(
                "container {container:?} in pod {pod_name:?} is waiting to start: trying and failing to pull image"
            ),
            _ => {
                format!("container {container:?} in pod {pod_name:?} is waiting to start: {reason}")
            }
        });
    } else {
        return Err(format!(
            "container {container:?} in pod {pod_name:?} is waiting to start - no logs yet"
        ));
    };
    Ok(id)
}

async fn container_logs(
    state: &ServerState,
    namespace: &str,
    pod_name: &str,
    container: &str,
    query: &HashMap<String, String>,
) -> Response<Body> {
    if pod_name.is_empty() {
        return text(StatusCode::BAD_REQUEST, r#"{"message": "Missing podID."}"#);
    }
    if container.is_empty() {
        return text(
            StatusCode::BAD_REQUEST,
            r#"{"message": "Missing container name."}"#,
        );
    }
    if namespace.is_empty() {
        return text(
            StatusCode::BAD_REQUEST,
            r#"{"message": "Missing podNamespace."}"#,
        );
    }
    // The old "tail" parameter ("all" = no tail).
    let mut query = query.clone();
    if let Some(tail) = query.get("tail").cloned().filter(|t| !t.is_empty()) {
        if tail == "all" {
            query.remove("tailLines");
        } else {
            query.insert("tailLines".into(), tail);
        }
    }
    let Ok(opts) = PodLogOptions::from_query(&query) else {
        return text(
            StatusCode::BAD_REQUEST,
            r#"{"message": "Unable to decode query."}"#,
        );
    };
    if !opts.validate().is_empty() {
        return text(
            StatusCode::UNPROCESSABLE_ENTITY,
            r#"{"message": "Invalid request."}"#,
        );
    }
    let Some(pod) = state.workers.pod(namespace, pod_name) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("pod {pod_name:?} does not exist"),
        );
    };
    if !has_container(&pod, container) {
        return text(
            StatusCode::NOT_FOUND,
            format!("container {container:?} not found in pod {pod_name:?}"),
        );
    }
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    // The status this kubelet generated is newer than the API's copy; right after a restart
    // there is none yet and the API's copy is used.
    let status = state
        .status
        .get(&uid)
        .or_else(|| pod.status.clone())
        .unwrap_or_default();
    let id = match container_log_id(pod_name, &status, container, opts.previous) {
        Ok(id) => id,
        Err(msg) => return text(StatusCode::BAD_REQUEST, msg),
    };
    let raw_id = id
        .split_once("://")
        .map_or(id.as_str(), |(_, i)| i)
        .to_owned();
    let log_path = match state.cri.container_status(&raw_id, false).await {
        Ok(s) if !s.log_path.is_empty() => s.log_path,
        Ok(_) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("container {id} has no log path"),
            );
        }
        Err(e) => {
            debug!(container = %id, error = %e, "container status for its logs");
            return text(
                StatusCode::BAD_REQUEST,
                format!("unable to retrieve container logs for {id}"),
            );
        }
    };
    let log_opts = opts.log_options(Timestamp::now());
    // Open first: a missing file is an error answer, not an empty 200.
    if let Err(e) = std::fs::metadata(&log_path) {
        return text(
            StatusCode::BAD_REQUEST,
            format!("failed to open log file {log_path:?}: {e}"),
        );
    }
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let cri = state.cri.clone();
    tokio::spawn(async move {
        let path = std::path::PathBuf::from(&log_path);
        if let Err(e) = read_logs(&path, &raw_id, &log_opts, &cri, tx.clone()).await {
            warn!(error = %e, "reading container logs");
            let _ = tx.send(Bytes::from(e.to_string())).await;
        }
        debug!(container = %raw_id, "container log stream ended");
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    let mut resp = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
        ContainerStatus,
    };

    fn status(cs: ContainerStatus) -> PodStatus {
        PodStatus {
            container_statuses: Some(vec![cs]),
            ..Default::default()
        }
    }

    #[test]
    fn picks_the_container_like_upstream() {
        let waiting = status(ContainerStatus {
            name: "c".into(),
            state: Some(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some("ContainerCreating".into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert_eq!(
            container_log_id("p", &waiting, "c", false),
            Err(r#"container "c" in pod "p" is waiting to start: ContainerCreating"#.into())
        );
        assert_eq!(
            container_log_id("p", &waiting, "c", true),
            Err(r#"previous terminated container "c" in pod "p" not found"#.into())
        );
        assert_eq!(
            container_log_id("p", &waiting, "x", false),
            Err(r#"container "x" in pod "p" is not available"#.into())
        );
        let restarted = status(ContainerStatus {
            name: "c".into(),
            container_id: Some("containerd://new".into()),
            state: Some(ContainerState {
                running: Some(ContainerStateRunning::default()),
                ..Default::default()
            }),
            last_state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    container_id: Some("containerd://old".into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert_eq!(
            container_log_id("p", &restarted, "c", false).as_deref(),
            Ok("containerd://new")
        );
        assert_eq!(
            container_log_id("p", &restarted, "c", true).as_deref(),
            Ok("containerd://old")
        );
    }

    #[test]
    fn options_decode_and_validate() {
        let q = |s: &str| common::query::Query::parse(Some(s)).first_values();
        let o =
            PodLogOptions::from_query(&q("follow=true&tailLines=2&timestamps=1&previous=false"))
                .unwrap_or_default();
        assert!(o.follow && o.timestamps && !o.previous);
        assert_eq!(o.tail_lines, Some(2));
        assert!(PodLogOptions::from_query(&q("tailLines=x")).is_err());
        let bad = PodLogOptions::from_query(&q("tailLines=-1&limitBytes=0&sinceSeconds=0"))
            .unwrap_or_default();
        let fields: Vec<String> = bad.validate().into_iter().map(|e| e.0).collect();
        assert_eq!(fields, ["tailLines", "limitBytes", "sinceSeconds"]);
        let both = PodLogOptions::from_query(&q("sinceSeconds=5&sinceTime=2024-01-01T00:00:00Z"))
            .unwrap_or_default();
        assert_eq!(both.validate().len(), 1);
        let now: Timestamp = "2024-01-01T00:01:00Z".parse().unwrap_or_default();
        let since = PodLogOptions::from_query(&q("sinceSeconds=30"))
            .unwrap_or_default()
            .log_options(now)
            .since;
        assert_eq!(since, "2024-01-01T00:00:30Z".parse().ok());
    }
}
