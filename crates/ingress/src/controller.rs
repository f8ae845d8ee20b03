//! The controller: informers on IngressClasses, Ingresses, Services, EndpointSlices and TLS
//! Secrets (and the Gateway API kinds once they are served); on every change a new snapshot
//! is built and swapped in, new problems become Warning events, and the statuses follow the
//! served set. Also starts the listeners.

use std::collections::{BTreeSet, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use client_go::events::Recorder;
use client_go::informer::{Informer, StopOnDrop, key_of};
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::api::ListParams;
use kube::runtime::watcher;
use kube::{Api, Client};
use rustls::sign::CertifiedKey;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::backend::HealthRegistry;
use crate::build::{self, Inputs, Problem};
use crate::certs::CertCache;
use crate::class::{self, Classes};
use crate::config::IngressConfig;
use crate::gateway::{self, table::GatewayTable};
use crate::proxy::Proxy;
use crate::table::{Current, RouteTable, Snapshot};
use crate::{server, status, tls};

/// Builds are at least this far apart: a burst of changes (a rollout) makes one.
const MIN_SYNC_INTERVAL: Duration = Duration::from_millis(30);

/// A running controller: its listeners' addresses (port 0 resolved) and its tasks, which
/// stop when this is dropped.
pub struct Running {
    pub http_addr: Option<SocketAddr>,
    pub https_addr: Option<SocketAddr>,
    tasks: JoinSet<anyhow::Result<()>>,
}

impl Running {
    /// Resolves when a task stops (only on an error).
    pub async fn wait(mut self) -> anyhow::Result<()> {
        match self.tasks.join_next().await {
            Some(Ok(r)) => r,
            Some(Err(e)) => Err(anyhow::anyhow!("ingress task failed: {e}")),
            None => Ok(()),
        }
    }
}

/// Runs the controller until the future is dropped.
pub async fn run(client: Client, cfg: IngressConfig) -> anyhow::Result<()> {
    start(client, cfg).await?.wait().await
}

/// Binds the listeners (failing if they cannot be bound), then serves in the background.
pub async fn start(client: Client, cfg: IngressConfig) -> anyhow::Result<Running> {
    let default_cert = Arc::new(tls::default_certificate().context("the default certificate")?);
    let current = Arc::new(Current::new(Snapshot {
        routes: RouteTable::default(),
        certs: tls::CertTable::new(Some(default_cert.clone())),
        gateway: GatewayTable::default(),
    }));
    let health = Arc::new(HealthRegistry::new(cfg.eject_after, cfg.eject_for));
    let proxy = Arc::new(Proxy::new(current.clone(), health.clone(), cfg.clone()));
    let mut tasks = JoinSet::new();
    let acceptor = TlsAcceptor::from(tls::server_config(current.clone())?);
    let http = bind(cfg.http_addr, None).await?;
    let https = bind(cfg.https_addr, Some(acceptor)).await?;
    let (http_addr, https_addr) = (http.as_ref().map(|h| h.1), https.as_ref().map(|h| h.1));
    for (listener, addr, tls) in [http, https].into_iter().flatten() {
        tracing::info!(%addr, tls = tls.is_some(), "ingress listening");
        let proxy = proxy.clone();
        tasks.spawn(async move {
            server::serve(listener, tls, proxy).await;
            Ok(())
        });
    }
    // Gateway listeners must name the ports actually bound (port 0 picks one).
    let ports = Ports {
        http: http_addr.map(|a| a.port()),
        https: https_addr.map(|a| a.port()),
    };
    tasks.spawn(sync_loop(client, cfg, ports, current, health, default_cert));
    Ok(Running {
        http_addr,
        https_addr,
        tasks,
    })
}

type Bound = Option<(TcpListener, SocketAddr, Option<TlsAcceptor>)>;

/// The proxy's bound ports.
#[derive(Clone, Copy, Debug)]
struct Ports {
    http: Option<u16>,
    https: Option<u16>,
}

/// The Gateway API status writer, started once the Gateway informers are.
struct GatewayStatusWriter {
    desired: watch::Sender<Arc<gateway::status::Desired>>,
    _task: AbortOnDrop,
}

async fn bind(addr: Option<SocketAddr>, tls: Option<TlsAcceptor>) -> anyhow::Result<Bound> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    let l = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the ingress listener {addr}"))?;
    let local = l.local_addr()?;
    Ok(Some((l, local, tls)))
}

/// Wakes the loop on every change of an informer.
fn notify_on_change<K>(informer: &Informer<K>, changed: &Arc<Notify>)
where
    K: kube::Resource + Send + Sync + 'static,
{
    let changed = changed.clone();
    informer.on_change(move |_| changed.notify_one());
}

async fn sync_loop(
    client: Client,
    cfg: IngressConfig,
    ports: Ports,
    current: Arc<Current>,
    health: Arc<HealthRegistry>,
    default_cert: Arc<CertifiedKey>,
) -> anyhow::Result<()> {
    if cfg.manage_class
        && let Err(e) = class::ensure_class(&client, &cfg).await
    {
        tracing::warn!(error = %format!("{e:#}"), class = %cfg.class_name, "could not create the IngressClass");
    }
    check_access(&client).await;
    let changed = Arc::new(Notify::new());
    // The Gateway API may not be installed: its informers start in the background once it
    // is served, and Ingresses are served meanwhile.
    let (gw_tx, gw_rx) = watch::channel::<Option<Arc<gateway::watch::Informers>>>(None);
    let gw_start = {
        let (client, changed) = (client.clone(), changed.clone());
        tokio::spawn(async move {
            let informers = gateway::watch::start_when_served(client, changed.clone()).await;
            gw_tx.send_replace(Some(Arc::new(informers)));
            changed.notify_one();
        })
    };
    let _gw_start = AbortOnDrop(gw_start);
    let mut gw_status: Option<GatewayStatusWriter> = None;
    let classes = Informer::<IngressClass>::start(Api::all(client.clone()));
    let ingresses = Informer::<Ingress>::start(Api::all(client.clone()));
    let services = Informer::<Service>::start(Api::all(client.clone()));
    let slices = Informer::<EndpointSlice>::start(Api::all(client.clone()));
    let secrets = Informer::<Secret>::start_with(
        Api::all(client.clone()),
        watcher::Config::default().fields("type=kubernetes.io/tls"),
    );
    let _stop = StopOnDrop(vec![
        classes.stopper(),
        ingresses.stopper(),
        services.stopper(),
        slices.stopper(),
        secrets.stopper(),
    ]);
    notify_on_change(&classes, &changed);
    notify_on_change(&ingresses, &changed);
    notify_on_change(&services, &changed);
    notify_on_change(&slices, &changed);
    notify_on_change(&secrets, &changed);
    classes.wait_synced().await;
    ingresses.wait_synced().await;
    services.wait_synced().await;
    slices.wait_synced().await;
    secrets.wait_synced().await;
    tracing::info!("ingress: informers synced");

    let (served_tx, served_rx) = watch::channel(Arc::new(BTreeSet::new()));
    let status_task = tokio::spawn(status::run(
        client.clone(),
        ingresses.clone(),
        cfg.addresses.clone(),
        served_rx,
    ));
    let _status = AbortOnDrop(status_task);
    let recorder = Recorder::new(client.clone(), "rkube-ingress").with_host(cfg.node_name.clone());
    let mut reported: HashSet<(String, &'static str, String)> = HashSet::new();
    let mut certs = CertCache::default();
    let mut last: Option<Instant> = None;
    loop {
        if let Some(t) = last {
            tokio::time::sleep_until((t + MIN_SYNC_INTERVAL).into()).await;
        }
        let start = Instant::now();
        last = Some(start);
        let cs = Classes::new(&classes.list(), &cfg);
        let served: Vec<Arc<Ingress>> = ingresses
            .list()
            .into_iter()
            .filter(|i| cs.serves(i))
            .collect();
        let served_keys: BTreeSet<String> = served.iter().map(|i| key_of(i.as_ref())).collect();
        let (svc_list, slice_list, secret_list) = (services.list(), slices.list(), secrets.list());
        let gw = gw_rx.borrow().clone();
        let gw_lists = gw.as_ref().map(|g| {
            (
                g.sources.classes.list(),
                g.sources.gateways.list(),
                g.sources.routes.list(),
                g.grants.list(),
                g.namespaces.list(),
            )
        });
        let gw_inputs = gw_lists
            .as_ref()
            .map(|(c, g, r, grants, ns)| gateway::build::Inputs {
                classes: c,
                gateways: g,
                routes: r,
                grants,
                namespaces: ns,
                controller: &cfg.gateway_controller,
                http_port: ports.http,
                https_port: ports.https,
                has_addresses: !cfg.addresses.is_empty(),
            });
        let built = build::build_with_gateway(
            Inputs {
                ingresses: served,
                services: &svc_list,
                slices: &slice_list,
                secrets: &secret_list,
                default_cert: Some(default_cert.clone()),
            },
            gw_inputs,
            &health,
            &mut certs,
        );
        let (paths, hosts_with_certs) = (built.routes.len(), built.certs.len());
        let gateway_matches = built.gateway.len();
        current.store(Snapshot {
            routes: built.routes,
            certs: built.certs,
            gateway: built.gateway,
        });
        if let (Some(g), Some(desired)) = (&gw, built.gateway_status) {
            let writer = gw_status.get_or_insert_with(|| {
                let (tx, rx) = watch::channel(Arc::new(gateway::status::Desired::default()));
                let task = tokio::spawn(gateway::status::run(
                    client.clone(),
                    g.sources.clone(),
                    cfg.gateway_controller.clone(),
                    cfg.addresses.clone(),
                    rx,
                ));
                GatewayStatusWriter {
                    desired: tx,
                    _task: AbortOnDrop(task),
                }
            });
            writer.desired.send_replace(Arc::new(desired));
        }
        health.prune();
        reported = report(&recorder, built.problems, reported);
        served_tx.send_replace(Arc::new(served_keys));
        tracing::debug!(
            paths,
            gateway_matches,
            hosts_with_certs,
            build_ms = start.elapsed().as_secs_f64() * 1000.0,
            "ingress routes swapped"
        );
        changed.notified().await;
    }
}

/// Says plainly when this identity may not list what the controller watches: its
/// informers would otherwise retry quietly forever and every request would get 404.
async fn check_access(client: &Client) {
    let lp = ListParams::default().limit(1);
    let forbidden = |r: Result<(), kube::Error>| matches!(r, Err(kube::Error::Api(ref e)) if e.code == 401 || e.code == 403);
    let checks = [
        (
            "ingresses",
            forbidden(
                Api::<Ingress>::all(client.clone())
                    .list_metadata(&lp)
                    .await
                    .map(drop),
            ),
        ),
        (
            "ingressclasses",
            forbidden(
                Api::<IngressClass>::all(client.clone())
                    .list_metadata(&lp)
                    .await
                    .map(drop),
            ),
        ),
        (
            "secrets",
            forbidden(
                Api::<Secret>::all(client.clone())
                    .list_metadata(&lp.clone().fields("type=kubernetes.io/tls"))
                    .await
                    .map(drop),
            ),
        ),
    ];
    for (what, denied) in checks {
        if denied {
            tracing::warn!(
                resource = what,
                "the ingress controller may not list {what} cluster-wide; it serves nothing until allowed"
            );
        }
    }
}

/// Records a Warning event for each problem not already reported while it persists, and
/// returns the problems now present (a problem fixed and back is reported again).
fn report(
    recorder: &Recorder,
    problems: Vec<Problem>,
    before: HashSet<(String, &'static str, String)>,
) -> HashSet<(String, &'static str, String)> {
    let mut now = HashSet::new();
    for p in problems {
        let uid = p.ingress.metadata.uid.clone().unwrap_or_default();
        let k = (uid, p.reason, p.message.clone());
        if !before.contains(&k) && !now.contains(&k) {
            tracing::info!(ingress = %key_of(p.ingress.as_ref()), reason = p.reason, message = %p.message, "ingress problem");
            recorder.record(p.ingress.as_ref(), true, p.reason, p.message);
        }
        now.insert(k);
    }
    now
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
