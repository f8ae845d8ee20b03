//! The kubelet itself: registers the node, configures the pod network for its pod CIDR, and
//! runs the pods bound to it — the API watch feeds the pod workers, the relist wakes them, the
//! status manager writes what they report, and the node status and Lease keep the node alive.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::watcher;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use client_go::informer::{Informer, StopOnDrop, uid_of};

use crate::config::KubeletConfig;
use crate::cri::RuntimeClient;
use crate::eviction::admit::PodAdmission;
use crate::image_gc::ImageGc;
use crate::image_manager::ImageManager;
use crate::node::{self, NodeFacts};
use crate::pod_workers::{Context, PodWorkers};
use crate::prober::Prober;
use crate::server::authn::Authenticator;
use crate::server::authz::Authorizer;
use crate::server::{Server, ServerState};
use crate::static_pods::StaticPods;
use crate::stats::{StatsConfig, StatsProvider};
use crate::status::StatusManager;
use crate::volumes::{VolumeHost, VolumeManager};
use crate::{machine, pleg};
use net::cni::BridgeNetwork;
use streaming::NetnsDialer;

/// How long to wait for the runtime to load the CNI config before running pods anyway.
const NETWORK_READY_WAIT: Duration = Duration::from_secs(15);

pub struct Kubelet {
    cfg: KubeletConfig,
    client: kube::Client,
    cri: RuntimeClient,
}

/// A client for the kubelet from a cluster configuration (it names itself `kubelet/…`).
pub fn client(mut config: kube::Config) -> anyhow::Result<kube::Client> {
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(crate::config::USER_AGENT),
    ));
    Ok(kube::Client::try_from(config)?)
}

impl Kubelet {
    pub fn new(cfg: KubeletConfig, client: kube::Client, cri: RuntimeClient) -> Self {
        Kubelet { cfg, client, cri }
    }

    /// Registers the node and runs its pods until this future is dropped (which stops the
    /// kubelet's tasks; pods keep running). Fails only if the node cannot be set up.
    pub async fn run(self) -> anyhow::Result<()> {
        let Kubelet {
            mut cfg,
            client,
            cri,
        } = self;
        let version = cri
            .wait_ready(Duration::from_secs(30))
            .await
            .context("the container runtime does not answer")?;
        let facts = NodeFacts::gather(&cfg, &version.runtime_name, &version.runtime_version);
        // The kubelet's directories exist from the start (upstream's setupDataDirs): the stats
        // summary, and so the eviction manager, reads the root dir's filesystem before any
        // pod has made it.
        let dirs = cfg.dirs();
        for dir in [&dirs.kubelet_pods, &dirs.pod_logs] {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut tasks = JoinSet::new();
        let status = StatusManager::new(client.clone());
        tasks.spawn(status.clone().run());
        let dialer = match &cfg.pod_netns {
            Some(ns) => Some(Arc::new(NetnsDialer::new(ns).with_context(|| {
                format!("entering the pod network namespace {}", ns.display())
            })?)),
            None => None,
        };
        // Every Service, for the containers' Service variables, as upstream's kubelet lists
        // them (a node may list and watch Services); stopped with the kubelet.
        let services = Informer::start(Api::all(client.clone()));
        let _stop_services = StopOnDrop(vec![services.stopper()]);
        let ctx = Arc::new(Context {
            images: ImageManager::new(
                cri.clone(),
                cfg.backoff_initial,
                cfg.backoff_max,
                cfg.remote_image_pulls,
            ),
            prober: Prober::new(cri.clone(), dialer.clone()),
            events: client_go::events::Recorder::new(client.clone(), "kubelet")
                .with_host(cfg.node_name.clone()),
            volumes: VolumeManager::new(VolumeHost {
                client: client.clone(),
                dirs: cfg.dirs(),
                node_memory: i64::try_from(facts.memory).unwrap_or(i64::MAX),
                node_milli_cpu: i64::try_from(machine::cpus()).unwrap_or(1) * 1000,
                tokens: Default::default(),
                node_name: cfg.node_name.clone(),
                events: client_go::events::Recorder::new(client.clone(), "kubelet")
                    .with_host(cfg.node_name.clone()),
            }),
            runtime_name: version.runtime_name.clone(),
            host_ip: facts.host_ip.clone(),
            memory_capacity: facts.memory,
            milli_cpu: i64::try_from(machine::cpus()).unwrap_or(1) * 1000,
            services: services.clone(),
            status: status.clone(),
            client: client.clone(),
            cri: cri.clone(),
            cfg: cfg.clone(),
        });
        let workers = Arc::new(PodWorkers::new(ctx));
        // Static pods start before the API server is asked anything (it may not run yet); the
        // first read is done before the relist may take their containers for orphans.
        let static_pods = StaticPods::new(
            cfg.pod_manifest_path.clone(),
            cfg.node_name.clone(),
            cfg.file_check_frequency,
            client.clone(),
            workers.clone(),
            status.clone(),
        );
        static_pods.load();
        tasks.spawn(static_pods.clone().run());
        // The API server may not answer yet (an agent started before its server): retry, as
        // upstream's kubelet does.
        let mut retry = Duration::from_millis(200);
        let node = loop {
            match node::register(&client, &cfg).await {
                Ok(n) => break n,
                Err(e) => {
                    warn!(node = %cfg.node_name, error = %format!("{e:#}"), "registering the node; retrying");
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(Duration::from_secs(7));
                }
            }
        };
        net::service_route::ensure_sink(&cfg.service_cidr, cfg.pod_netns.as_deref())?;
        let pod_cidr = node::pod_cidr(&node)
            .ok_or_else(|| anyhow!("node {} has no pod CIDR", cfg.node_name))?
            .to_owned();
        configure_network(&cfg, &cri, &pod_cidr).await?;
        // Bound before the node status is written, which advertises the port actually bound.
        let server = if cfg.client_ca.is_empty() {
            warn!("no cluster CA to check callers against: the kubelet server (logs) is off");
            None
        } else {
            let ip: std::net::IpAddr = facts
                .host_ip
                .parse()
                .with_context(|| format!("node IP {:?}", facts.host_ip))?;
            let server = Server::bind(&cfg, ip)
                .await
                .context("starting the kubelet server")?;
            cfg.kubelet_port = i32::from(server.addr().port());
            Some(server)
        };
        info!(node = %cfg.node_name, %pod_cidr, host_ip = %facts.host_ip,
            runtime = %facts.runtime_version, "kubelet running");

        if cfg.server_tls_bootstrap
            && let Some(server) = &server
        {
            tasks.spawn(crate::server::serving_cert::bootstrap(
                client.clone(),
                server.identity.clone(),
                cfg.client_ca.clone(),
                server.serving.clone(),
                server.ca_signed,
            ));
        }
        tasks.spawn(node::run_lease(client.clone(), cfg.clone()));
        tasks.spawn(node::run_status(
            client.clone(),
            cfg.clone(),
            cri.clone(),
            facts.clone(),
        ));
        tasks.spawn(crate::volumes::local_storage::run(
            client.clone(),
            cfg.local_storage_dir.clone(),
            cfg.local_storage_sweep_period,
        ));
        // cAdvisor's housekeeping runs whether or not anyone asks, as upstream's.
        let stats = StatsProvider::new(StatsConfig::from_kubelet(&cfg), cri.clone());
        let pods = workers.clone();
        stats.set_claims_of(move |uid| crate::stats::claims_of(&pods.pods(), uid));
        tasks.spawn(stats.clone().run_housekeeping());
        // Node pressure: conditions (read by the node status through `facts.pressure`) and
        // evictions.
        tasks.spawn(
            crate::eviction::EvictionManager {
                cfg: cfg.eviction.clone(),
                stats: stats.clone(),
                cri: cri.clone(),
                workers: workers.clone(),
                status: status.clone(),
                events: client_go::events::Recorder::new(client.clone(), "kubelet")
                    .with_host(cfg.node_name.clone()),
                pressure: facts.pressure.clone(),
                host_ip: facts.host_ip.clone(),
                runtime_name: version.runtime_name.clone(),
            }
            .run(),
        );
        // Unused images go when the image filesystem fills, on their own schedule.
        if cfg.image_gc.enabled() {
            tasks.spawn(
                ImageGc::new(
                    cri.clone(),
                    cfg.image_gc.clone(),
                    client_go::events::Recorder::new(client.clone(), "kubelet")
                        .with_host(cfg.node_name.clone()),
                    &cfg.node_name,
                )
                .run(),
            );
        }
        if let Some(server) = server {
            tasks.spawn(server.serve(ServerState {
                workers: workers.clone(),
                status: status.clone(),
                cri: cri.clone(),
                dialer: dialer.clone(),
                // Callers are checked by the API server, asked with the kubelet's own
                // identity (a node may create token and access reviews).
                authenticator: Arc::new(Authenticator::new(
                    client.clone(),
                    cfg.authentication_cache_ttl,
                )),
                authorizer: Arc::new(Authorizer::new(
                    client.clone(),
                    &cfg.node_name,
                    cfg.authorized_cache_ttl,
                    cfg.unauthorized_cache_ttl,
                )),
                stats,
            }));
        }
        let (synced_tx, synced_rx) = watch::channel(false);
        // Dead containers and sandboxes nobody needs go every minute, whatever the disk.
        let known = workers.clone();
        tasks.spawn(
            crate::container_gc::ContainerGc {
                cri: cri.clone(),
                policy: cfg.container_gc.clone(),
                known: Arc::new(move |uid: &str| known.has(uid)),
                synced: synced_rx.clone(),
            }
            .run(),
        );
        // New pods are refused while the node is under pressure (the eviction manager's
        // conditions), before any worker runs them.
        let admission = Arc::new(PodAdmission::new(
            facts.pressure.clone(),
            status.clone(),
            client_go::events::Recorder::new(client.clone(), "kubelet")
                .with_host(cfg.node_name.clone()),
        ));
        tasks.spawn(watch_pods(
            client.clone(),
            cfg.node_name.clone(),
            workers.clone(),
            admission,
            static_pods,
            synced_tx,
        ));
        tasks.spawn(pleg::run(cri, cfg.relist_period, workers, synced_rx));

        // Every task loops forever; one ending is a bug to surface.
        match tasks.join_next().await {
            Some(Err(e)) => bail!("a kubelet task failed: {e}"),
            _ => bail!("a kubelet task ended"),
        }
    }
}

/// Writes the CNI config for the node's pod CIDR and waits (a while) until the runtime has
/// loaded it.
async fn configure_network(
    cfg: &KubeletConfig,
    cri: &RuntimeClient,
    pod_cidr: &str,
) -> anyhow::Result<()> {
    let dirs = cfg.dirs();
    let mut net = BridgeNetwork::new(&cfg.cni_network, pod_cidr, &dirs.cni_ipam);
    net.bridge = cfg.cni_bridge.clone();
    let path = net.write(&dirs.cni_conf)?;
    debug!(path = %path.display(), "CNI config written");
    match cri.update_runtime_config(pod_cidr).await {
        Err(e) if !e.is_unimplemented() => {
            warn!(error = %e, "telling the runtime the pod CIDR")
        }
        _ => {}
    }
    let start = Instant::now();
    loop {
        let st = cri.status(false).await?;
        let ready = st
            .status
            .map(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.r#type == "NetworkReady" && c.status)
            })
            .unwrap_or(false);
        if ready {
            debug!(waited = ?start.elapsed(), "pod network ready");
            return Ok(());
        }
        if start.elapsed() > NETWORK_READY_WAIT {
            warn!("the container runtime has not loaded the CNI config yet; pods will wait");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Watches the pods bound to this node (field selector `spec.nodeName`, client-go's informer)
/// and hands every change to the pod workers, deletions included (those missed while the
/// watch was down come from the informer's relist). `synced` turns true once the workers have
/// the first complete list. Runs until aborted, which stops the informer.
async fn watch_pods(
    client: kube::Client,
    node_name: String,
    workers: Arc<PodWorkers>,
    admission: Arc<PodAdmission>,
    static_pods: Arc<StaticPods>,
    synced: watch::Sender<bool>,
) {
    let config = watcher::Config::default().fields(&format!("spec.nodeName={node_name}"));
    let pods = Informer::<Pod>::start_with(Api::all(client), config);
    let _stop = StopOnDrop(vec![pods.stopper()]);
    pods.wait_synced().await;
    // on_change hands over the whole cache before it returns.
    let mirrors = static_pods.clone();
    pods.on_change(move |change| match (&change.old, &change.new) {
        // Mirror pods are the API's copies of static pods: never run, only kept.
        (old, new)
            if old.iter().chain(new).any(|p| crate::static_pods::is_mirror(p)) =>
        {
            mirrors.mirror_changed(old.as_ref(), new.as_ref());
        }
        (old, Some(pod)) => {
            // Deleted and made again under the same name while the watch was down: the
            // informer sees one change, the workers two pods.
            if let Some(old) = old.as_ref().filter(|o| uid_of(o.as_ref()) != uid_of(pod.as_ref())) {
                admission.forget(&uid_of(old.as_ref()));
                workers.remove(&uid_of(old.as_ref()));
            }
            tracing::trace!(pod = ?pod.metadata.name, deleting = pod.metadata.deletion_timestamp.is_some(), rv = ?pod.metadata.resource_version, "pod event");
            if admission.let_in(pod, !workers.has(&uid_of(pod.as_ref()))) {
                workers.update(pod.clone());
            }
        }
        (Some(pod), None) => {
            tracing::trace!(pod = ?pod.metadata.name, "pod deleted event");
            admission.forget(&uid_of(pod.as_ref()));
            workers.remove(&uid_of(pod.as_ref()));
        }
        (None, None) => {}
    });
    synced.send_replace(true);
    static_pods.mirrors_synced();
    std::future::pending::<()>().await;
}
