//! One worker per pod: it drives the runtime toward the pod's spec (sandbox, init containers in
//! order, containers, restarts with back-off, probes), reports status, and on deletion stops
//! everything and removes the pod object.
//!
//! A worker wakes when its pod changes (the API watch), when the runtime changed under it (the
//! relist, [`crate::pleg`]), when a probe result changed, or when a back-off ends; otherwise it
//! re-syncs every `resync_period`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodStatus};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, Preconditions};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::backoff::Backoff;
use crate::cgroups;
use crate::config::KubeletConfig;
use crate::credentials;
use crate::cri::{RuntimeClient, api};
use crate::env::{self, EnvContext};
use crate::events::EventTarget;
use crate::image_manager::ImageManager;
use crate::kuberuntime::{self, ContainerParams};
use crate::lifecycle;
use crate::prober::{ContainerProbes, Prober};
use crate::resources;
use crate::runtime_state::{ContainerState, PodRuntime, SandboxState};
use crate::status::{self, Notes, StatusContext, StatusManager};
use crate::volumes::{self, MountInputs, PodVolumes, VolumeError, VolumeManager, etc_hosts};
use crate::{events, kuberuntime::hostname};

/// The least time containers get to stop, as upstream (also for force-deleted pods).
const MIN_GRACE: Duration = Duration::from_secs(2);
/// Retry delay after a failed sync (e.g. the runtime restarting).
const RETRY: Duration = Duration::from_secs(2);
/// The longest a postStart hook may take (upstream waits for it; the worker is blocked
/// meanwhile, so it is bounded here).
const POST_START_LIMIT: Duration = Duration::from_secs(120);

/// What every pod worker shares.
pub struct Context {
    pub cfg: KubeletConfig,
    pub client: kube::Client,
    pub cri: RuntimeClient,
    pub status: StatusManager,
    pub images: ImageManager,
    pub prober: Prober,
    /// Events about pods and containers, from `kubelet` on this node.
    pub events: client_go::events::Recorder,
    pub volumes: VolumeManager,
    /// CRI Version's runtime name, for `containerd://<id>` container IDs.
    pub runtime_name: String,
    pub host_ip: String,
    pub memory_capacity: u64,
    pub milli_cpu: i64,
    /// Every Service, for the containers' Service variables.
    pub services: client_go::informer::Informer<k8s_openapi::api::core::v1::Service>,
}

struct Handle {
    pod: watch::Sender<Option<Arc<Pod>>>,
    wake: Arc<Notify>,
}

type Handles = Arc<Mutex<HashMap<String, Handle>>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The pod workers, by pod UID. Dropping this stops every worker (pods keep running).
pub struct PodWorkers {
    ctx: Arc<Context>,
    handles: Handles,
    tasks: Mutex<JoinSet<()>>,
}

fn uid_of(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

/// The IP probes and hooks dial: the node's for hostNetwork pods, else the sandbox's.
fn dial_ip(ctx: &Context, spec: &PodSpec, sb: Option<&SandboxState>) -> Option<IpAddr> {
    if spec.host_network.unwrap_or(false) {
        ctx.host_ip.parse().ok()
    } else {
        sb.and_then(|s| s.ips.first())
            .and_then(|ip| ip.parse().ok())
    }
}

/// The pod's Service variables, once the Services have been listed: a container started
/// before would miss them for good (upstream's message). A static pod does not wait: the API
/// server it is may be what has not answered yet.
fn service_variables(
    ctx: &Context,
    pod: &Pod,
) -> Result<std::collections::BTreeMap<String, String>, env::EnvError> {
    let is_static = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("kubernetes.io/config.source"))
        .is_some_and(|s| s != "api");
    if !is_static && !ctx.services.has_synced() {
        return Err(env::EnvError(
            "services have not yet been read at least once, cannot construct envvars".into(),
        ));
    }
    let links = pod
        .spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true);
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    Ok(crate::service_env::service_env(
        &ctx.services.list(),
        ns,
        links,
    ))
}

/// A pod as upstream's messages name it: `name_namespace(uid)`.
fn pod_desc(pod: &Pod) -> String {
    format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.uid.as_deref().unwrap_or_default()
    )
}

/// Runs the preStop hooks of the running containers of `rt` that have one, all at once and
/// within `grace`; returns the time they took (taken off the grace, as upstream).
async fn run_pre_stop_hooks(
    ctx: &Context,
    pod: &Pod,
    rt: &PodRuntime,
    ids: Option<&str>,
    grace: Duration,
) -> Duration {
    let started = tokio::time::Instant::now();
    let spec = pod.spec.clone().unwrap_or_default();
    let ip = dial_ip(ctx, &spec, rt.sandbox());
    let desc = pod_desc(pod);
    let hooks = rt
        .running()
        .filter(|l| ids.is_none_or(|id| id == l.id))
        .filter_map(|l| {
            let c = spec.containers.iter().find(|c| c.name == l.name)?;
            let handler = c.lifecycle.as_ref()?.pre_stop.as_ref()?;
            Some((c, handler, l))
        })
        .map(|(c, handler, l)| {
            let desc = &desc;
            async move {
                if let Err(msg) =
                    lifecycle::run(&ctx.prober, handler, c, &l.id, ip, desc, grace).await
                {
                    warn!(pod = %desc, container = %c.name, %msg, "preStop hook failed");
                    EventTarget::container(&ctx.events, pod, &c.name)
                        .warning("FailedPreStopHook", msg);
                }
            }
        });
    futures::future::join_all(hooks).await;
    started.elapsed()
}

fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

impl PodWorkers {
    pub fn new(ctx: Arc<Context>) -> Self {
        PodWorkers {
            ctx,
            handles: Arc::new(Mutex::new(HashMap::new())),
            tasks: Mutex::new(JoinSet::new()),
        }
    }

    fn spawn(&self, uid: String, pod: Option<Arc<Pod>>) {
        let (tx, rx) = watch::channel(pod);
        let wake = Arc::new(Notify::new());
        lock(&self.handles).insert(
            uid.clone(),
            Handle {
                pod: tx,
                wake: wake.clone(),
            },
        );
        let worker = Worker {
            ctx: self.ctx.clone(),
            backoff: Backoff::new(self.ctx.cfg.backoff_initial, self.ctx.cfg.backoff_max),
            uid,
            pod_rx: rx,
            wake,
            handles: self.handles.clone(),
            notes: Notes::default(),
            probes: HashMap::new(),
            last_status: None,
            last_pod: None,
            terminated: None,
            wake_in: None,
            volumes: PodVolumes::default(),
            volumes_mounted: false,
            mount_errors: Vec::new(),
            mount_events: HashMap::new(),
        };
        let mut tasks = lock(&self.tasks);
        while tasks.try_join_next().is_some() {}
        tasks.spawn(worker.run());
    }

    /// A pod bound to this node was added or changed.
    pub fn update(&self, pod: Arc<Pod>) {
        let uid = uid_of(&pod);
        if uid.is_empty() {
            return;
        }
        if let Some(h) = lock(&self.handles).get(&uid) {
            // Our own status writes come back as updates: keep the newest object but wake the
            // worker only for what it acts on (upstream's config source filters the same way),
            // so a status it just reported is not replaced at once by the next sync.
            h.pod.send_if_modified(|cur| {
                let wake = cur.as_ref().is_none_or(|c| acts_on_change(c, &pod));
                *cur = Some(pod);
                wake
            });
            return;
        }
        debug!(pod = %pod_key(&pod), %uid, "new pod worker");
        self.spawn(uid, Some(pod));
    }

    /// The pod is gone from the API: its worker removes whatever is left and ends.
    pub fn remove(&self, uid: &str) {
        if let Some(h) = lock(&self.handles).get(uid) {
            h.pod.send_replace(None);
        }
    }

    /// Something changed in the runtime for this pod.
    pub fn wake(&self, uid: &str) {
        if let Some(h) = lock(&self.handles).get(uid) {
            h.wake.notify_one();
        }
    }

    pub fn has(&self, uid: &str) -> bool {
        lock(&self.handles).contains_key(uid)
    }

    /// Removes the directories (volumes, termination messages, /etc/hosts) of pods that have
    /// no worker and nothing in the runtime (`in_runtime`): pods removed while the kubelet was
    /// down. Called by the relist once every pod bound to the node is known.
    pub fn remove_orphan_pod_dirs(&self, in_runtime: impl Fn(&str) -> bool) {
        for uid in self.ctx.volumes.pod_uids_on_disk() {
            if self.has(&uid) || in_runtime(&uid) {
                continue;
            }
            info!(%uid, "removing the directory of a pod that no longer exists");
            if let Err(e) = self.ctx.volumes.remove_pod_dir(&uid) {
                warn!(%uid, error = %e, "cannot remove an orphaned pod directory");
            }
        }
    }

    /// The newest object of the pod `namespace/name` this kubelet runs (upstream's
    /// `GetPodByName`); `None` once the API deleted it.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<Arc<Pod>> {
        lock(&self.handles).values().find_map(|h| {
            h.pod.borrow().as_ref().and_then(|p| {
                (p.metadata.namespace.as_deref() == Some(namespace)
                    && p.metadata.name.as_deref() == Some(name))
                .then(|| p.clone())
            })
        })
    }

    /// Every pod bound to this node that the API still has (upstream's `GetPods`), by
    /// namespace and name.
    pub fn pods(&self) -> Vec<Arc<Pod>> {
        let mut pods: Vec<Arc<Pod>> = lock(&self.handles)
            .values()
            .filter_map(|h| h.pod.borrow().clone())
            .collect();
        pods.sort_by(|a, b| {
            (&a.metadata.namespace, &a.metadata.name)
                .cmp(&(&b.metadata.namespace, &b.metadata.name))
        });
        pods
    }

    /// Sandboxes or containers of a pod this kubelet does not know (its object is gone):
    /// a worker removes them.
    pub fn remove_orphan(&self, uid: &str) {
        if self.has(uid) {
            return;
        }
        info!(%uid, "removing sandboxes and containers of a pod that no longer exists");
        self.spawn(uid.to_owned(), None);
    }
}

struct Worker {
    ctx: Arc<Context>,
    uid: String,
    pod_rx: watch::Receiver<Option<Arc<Pod>>>,
    wake: Arc<Notify>,
    handles: Handles,
    backoff: Backoff,
    notes: Notes,
    /// Probe loops by container ID.
    probes: HashMap<String, ContainerProbes>,
    /// The status this worker last generated (the API's copy may lag behind it).
    last_status: Option<PodStatus>,
    last_pod: Option<Arc<Pod>>,
    /// When termination finished and the object's deletion was requested.
    terminated: Option<tokio::time::Instant>,
    /// The earliest back-off or retry end seen during the current sync.
    wake_in: Option<Duration>,
    /// Host paths of the pod's volumes, from the latest set-up.
    volumes: PodVolumes,
    /// Every volume was set up once: later failures (say a ConfigMap deleted) leave the old
    /// content in place and only warn; they no longer hold containers back, as upstream.
    volumes_mounted: bool,
    /// The latest set-up failures, and their recurring `FailedMount` events by message.
    mount_errors: Vec<VolumeError>,
    mount_events: HashMap<String, events::Pace>,
}

fn nanos_to_time(ns: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(u64::try_from(ns).unwrap_or(0))
}

/// Go's duration format for messages ("10s", "1m20s", "5m0s"), to the whole second.
fn go_duration(d: Duration) -> String {
    common::duration::format_go(Duration::from_secs(d.as_secs()))
}

fn should_restart(policy: &str, exit_code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ => true,
    }
}

/// True when nothing of the pod runs again: every container exited for good per the restart
/// policy (or an init container failed under `Never`).
fn pod_completed(spec: &PodSpec, rt: &PodRuntime) -> bool {
    let policy = spec.restart_policy.as_deref().unwrap_or("Always");
    if policy == "Always" {
        return false;
    }
    let newest = |name: &str| rt.containers.iter().find(|c| c.name == name);
    let init_failed = spec.init_containers.iter().flatten().any(|c| {
        newest(&c.name).is_some_and(|l| l.is_exited() && l.exit_code != 0) && policy == "Never"
    });
    init_failed
        || (!spec.containers.is_empty()
            && spec.containers.iter().all(|c| {
                newest(&c.name)
                    .is_some_and(|l| l.is_exited() && !should_restart(policy, l.exit_code))
            }))
}

/// Stops every running container of `rt` (SIGTERM, SIGKILL after `grace`) concurrently.
async fn stop_containers(
    cri: &RuntimeClient,
    rt: &PodRuntime,
    grace: Duration,
) -> anyhow::Result<()> {
    let stops = rt.running().map(|c| {
        let cri = cri.clone();
        let id = c.id.clone();
        async move {
            match cri.stop_container(&id, grace).await {
                Err(e) if !e.is_not_found() => Err(e),
                _ => Ok(()),
            }
        }
    });
    for r in futures::future::join_all(stops).await {
        r.context("stopping a container")?;
    }
    Ok(())
}

/// Stops and removes everything the runtime has for pod `uid`: containers (with `grace`),
/// sandboxes, the pod cgroups; and the log directories when `logs`.
pub async fn remove_pod(
    ctx: &Context,
    uid: &str,
    grace: Duration,
    logs: bool,
) -> anyhow::Result<()> {
    let rt = PodRuntime::inspect(&ctx.cri, uid).await?;
    stop_containers(&ctx.cri, &rt, grace).await?;
    for s in &rt.sandboxes {
        for r in [
            ctx.cri.stop_pod_sandbox(&s.id).await,
            ctx.cri.remove_pod_sandbox(&s.id).await,
        ] {
            match r {
                Err(e) if !e.is_not_found() => return Err(e).context("removing a sandbox"),
                _ => {}
            }
        }
        if let Some(parent) = &s.cgroup_parent {
            cgroups::remove_pod_cgroup(parent);
        }
        if logs {
            remove_log_dir(ctx, &s.namespace, &s.name, uid);
        }
    }
    // Containers whose sandbox went missing.
    for c in &rt.containers {
        match ctx.cri.remove_container(&c.id).await {
            Err(e) if !e.is_not_found() => return Err(e).context("removing a container"),
            _ => {}
        }
    }
    Ok(())
}

fn remove_log_dir(ctx: &Context, namespace: &str, name: &str, uid: &str) {
    let dir = ctx.cfg.dirs().pod_log_dir(namespace, name, uid);
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            warn!(dir = %dir.display(), error = %e, "cannot remove pod logs")
        }
        _ => {}
    }
}

impl Worker {
    async fn run(mut self) {
        loop {
            let pod = self.pod_rx.borrow_and_update().clone();
            let Some(pod) = pod else { break };
            self.last_pod = Some(pod.clone());
            self.wake_in = None;
            tracing::trace!(pod = %pod_key(&pod), "sync");
            let next = match self.sync(&pod).await {
                Ok(()) => self
                    .wake_in
                    .unwrap_or(self.ctx.cfg.resync_period)
                    .min(self.ctx.cfg.resync_period),
                Err(e) => {
                    warn!(pod = %pod_key(&pod), error = %format!("{e:#}"), "pod sync failed; retrying");
                    RETRY
                }
            };
            tracing::trace!(pod = %pod_key(&pod), ?next, "synced");
            tokio::select! {
                changed = self.pod_rx.changed() => if changed.is_err() { break },
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(next) => {}
            }
        }
        self.teardown().await;
    }

    /// The pod is gone from the API: remove what is left, then end.
    async fn teardown(mut self) {
        self.probes.clear();
        loop {
            match remove_pod(&self.ctx, &self.uid, MIN_GRACE, true).await {
                Ok(()) => break,
                Err(e) => {
                    warn!(uid = %self.uid, error = %format!("{e:#}"), "removing a deleted pod's containers; retrying");
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
        if let Err(e) = self.ctx.volumes.remove_pod_dir(&self.uid) {
            // The relist's sweep tries again.
            warn!(uid = %self.uid, error = %e, "cannot remove the pod's volumes");
        }
        if let Some(pod) = &self.last_pod {
            remove_log_dir(
                &self.ctx,
                pod.metadata.namespace.as_deref().unwrap_or_default(),
                pod.metadata.name.as_deref().unwrap_or_default(),
                &self.uid,
            );
            info!(pod = %pod_key(pod), "pod removed from the node");
        }
        self.ctx.status.forget(&self.uid);
        lock(&self.handles).remove(&self.uid);
    }

    fn retry_in(&mut self, d: Duration) {
        self.wake_in = Some(self.wake_in.map_or(d, |w| w.min(d)));
    }

    async fn sync(&mut self, pod: &Arc<Pod>) -> anyhow::Result<()> {
        if pod.metadata.deletion_timestamp.is_some() {
            return self.terminate(pod).await;
        }
        if status::is_terminal(pod) {
            return self.stop_finished(pod).await;
        }
        self.sync_pod(pod).await
    }

    fn grace(pod: &Pod) -> Duration {
        let secs = pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| {
                pod.spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
            })
            .unwrap_or(30);
        Duration::from_secs(u64::try_from(secs).unwrap_or(0)).max(MIN_GRACE)
    }

    /// A finished pod: nothing restarts; stop what is left (the sandbox and its network).
    async fn stop_finished(&mut self, pod: &Pod) -> anyhow::Result<()> {
        self.probes.clear();
        let rt = PodRuntime::inspect(&self.ctx.cri, &self.uid).await?;
        stop_containers(&self.ctx.cri, &rt, Self::grace(pod)).await?;
        for s in rt.sandboxes.iter().filter(|s| s.ready) {
            self.ctx.cri.stop_pod_sandbox(&s.id).await?;
        }
        // Nothing runs any more: a finished pod's volumes go (its termination messages stay
        // until it is deleted).
        if let Err(e) = self.ctx.volumes.tear_down_volumes(&self.uid) {
            warn!(pod = %pod_key(pod), error = %e, "cannot tear down the volumes of a finished pod");
            self.retry_in(RETRY);
            return Ok(());
        }
        // Nothing to do until the pod is deleted.
        self.wake_in = Some(Duration::from_secs(3600));
        Ok(())
    }

    /// Graceful deletion: stop the containers within the grace period, report their final
    /// state, remove the sandboxes, then delete the pod object (grace 0) as the kubelet does.
    async fn terminate(&mut self, pod: &Arc<Pod>) -> anyhow::Result<()> {
        if let Some(at) = self.terminated {
            // Deletion requested; the watch will report the object gone. Ask again now and then.
            if at.elapsed() < Duration::from_secs(10) {
                self.retry_in(Duration::from_secs(10));
                return Ok(());
            }
        }
        let grace = Self::grace(pod);
        info!(pod = %pod_key(pod), ?grace, "stopping pod");
        self.probes.clear();
        let rt = PodRuntime::inspect(&self.ctx.cri, &self.uid).await?;
        for c in rt.running() {
            EventTarget::container(&self.ctx.events, pod, &c.name)
                .normal("Killing", format!("Stopping container {}", c.name));
        }
        let hooks = run_pre_stop_hooks(&self.ctx, pod, &rt, None, grace).await;
        stop_containers(
            &self.ctx.cri,
            &rt,
            grace.saturating_sub(hooks).max(MIN_GRACE),
        )
        .await?;
        if !status::is_terminal(pod) {
            let rt = PodRuntime::inspect(&self.ctx.cri, &self.uid).await?;
            self.notes.waiting.clear();
            self.notes.terminating = true;
            let st = self.generate(pod, &rt);
            match self.ctx.status.write_now(pod, &st).await {
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                r => r.context("writing the final pod status")?,
            }
        }
        remove_pod(&self.ctx, &self.uid, grace, false).await?;
        let api: Api<Pod> = Api::namespaced(
            self.ctx.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api
            .delete(pod.metadata.name.as_deref().unwrap_or_default(), &params)
            .await
        {
            Ok(_) => info!(pod = %pod_key(pod), "pod deleted"),
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => return Err(e).context("deleting the pod object"),
        }
        self.terminated = Some(tokio::time::Instant::now());
        self.retry_in(Duration::from_secs(10));
        Ok(())
    }

    fn generate(&self, pod: &Pod, rt: &PodRuntime) -> PodStatus {
        // Transition times and the start time come from what this worker last reported, as
        // the API's copy may not show it yet.
        let mut view = pod.clone();
        if let Some(mine) = &self.last_status {
            let mut merged = mine.clone();
            let theirs = pod.status.as_ref().and_then(|s| s.conditions.clone());
            let ours = [
                "PodReadyToStartContainers",
                "Initialized",
                "Ready",
                "ContainersReady",
            ];
            let mut conds: Vec<_> = theirs
                .unwrap_or_default()
                .into_iter()
                .filter(|c| !ours.contains(&c.type_.as_str()))
                .collect();
            conds.extend(
                mine.conditions
                    .iter()
                    .flatten()
                    .filter(|c| ours.contains(&c.type_.as_str()))
                    .cloned(),
            );
            merged.conditions = Some(conds);
            view.status = Some(merged);
        }
        status::generate(
            &view,
            rt,
            &self.notes,
            &StatusContext {
                host_ip: &self.ctx.host_ip,
                runtime_name: &self.ctx.runtime_name,
                now: Timestamp::now(),
            },
        )
    }

    async fn sync_pod(&mut self, pod: &Arc<Pod>) -> anyhow::Result<()> {
        let spec = pod.spec.clone().unwrap_or_default();
        let ctx = self.ctx.clone();
        self.notes.waiting.clear();
        self.notes.terminating = false;
        let mut rt = PodRuntime::inspect(&ctx.cri, &self.uid).await?;
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let cgroup_parent = resources::pod_cgroup_parent(&ctx.cfg.cgroup_root, pod, &self.uid);
        let log_dir = ctx.cfg.dirs().pod_log_dir(&ns, &name, &self.uid);

        // Volumes first (upstream waits for them before the sandbox), and again at every sync
        // so their content follows the API.
        let volumes_ready = self.set_up_volumes(pod, !rt.sandboxes.is_empty()).await;
        let sandbox_ready = rt.sandbox().is_some_and(|s| s.ready);
        if !volumes_ready {
            // Stuck in ContainerCreating (the containers' default waiting reason) until the
            // volumes can be set up; FailedMount events say why.
            self.retry_in(RETRY);
        } else if !sandbox_ready && !pod_completed(&spec, &rt) {
            self.probes.clear();
            if !rt.sandboxes.is_empty() {
                // The sandbox died: everything restarts in a new one.
                info!(pod = %pod_key(pod), "pod sandbox changed; recreating it");
                EventTarget::pod(&ctx.events, pod).normal(
                    "SandboxChanged",
                    "Pod sandbox changed, it will be killed and re-created.".into(),
                );
                stop_containers(&ctx.cri, &rt, Self::grace(pod)).await?;
                for s in &rt.sandboxes {
                    ctx.cri.stop_pod_sandbox(&s.id).await?;
                    ctx.cri.remove_pod_sandbox(&s.id).await?;
                }
            }
            let attempt = rt
                .sandboxes
                .iter()
                .map(|s| s.attempt + 1)
                .max()
                .unwrap_or(0);
            std::fs::create_dir_all(&log_dir)
                .with_context(|| format!("creating {}", log_dir.display()))?;
            let config =
                kuberuntime::sandbox_config(pod, attempt, &ctx.cfg, &log_dir, &cgroup_parent);
            let now = SystemTime::now();
            if let Some(wait) = self.backoff.remaining("sandbox", now, now) {
                self.retry_in(wait);
            } else {
                match ctx.cri.run_pod_sandbox(config, "").await {
                    Ok(id) => {
                        info!(pod = %pod_key(pod), sandbox = %id, "pod sandbox running");
                        self.backoff.reset("sandbox");
                    }
                    Err(e) => {
                        warn!(pod = %pod_key(pod), error = %e, "cannot create the pod sandbox");
                        EventTarget::pod(&ctx.events, pod).warning(
                            "FailedCreatePodSandBox",
                            format!("Failed to create pod sandbox: {e}"),
                        );
                        self.backoff.next("sandbox", now);
                        self.retry_in(self.backoff.delay("sandbox").min(RETRY));
                    }
                }
            }
            rt = PodRuntime::inspect(&ctx.cri, &self.uid).await?;
        }

        let mut acted = false;
        if let Some(sb) = rt.sandbox().filter(|s| s.ready && volumes_ready).cloned() {
            let sb_config =
                kuberuntime::sandbox_config(pod, sb.attempt, &ctx.cfg, &log_dir, &cgroup_parent);
            let policy = spec.restart_policy.as_deref().unwrap_or("Always");
            let mut initialized = true;
            for c in spec.init_containers.iter().flatten() {
                match rt.latest(&c.name) {
                    Some(l) if l.is_exited() && l.exit_code == 0 => continue,
                    None => {
                        acted |= self.start(pod, c, &sb, &sb_config, &rt).await;
                    }
                    Some(l) if l.is_exited() => {
                        if policy != "Never" {
                            let l = l.clone();
                            acted |= self.restart_or_wait(pod, c, &l, &sb, &sb_config, &rt).await;
                        }
                    }
                    Some(l) if l.is_running() => {}
                    Some(l) => acted |= self.remove_stuck(l).await,
                }
                initialized = false;
                break;
            }
            if initialized {
                for c in &spec.containers {
                    match rt.latest(&c.name).cloned() {
                        None => acted |= self.start(pod, c, &sb, &sb_config, &rt).await,
                        Some(l) if l.is_running() => {
                            acted |= self.check_running(pod, c, &l).await;
                        }
                        Some(l) if l.is_exited() => {
                            if should_restart(policy, l.exit_code) {
                                acted |=
                                    self.restart_or_wait(pod, c, &l, &sb, &sb_config, &rt).await;
                            }
                        }
                        Some(l) => acted |= self.remove_stuck(&l).await,
                    }
                }
                acted |= self.start_ephemeral(pod, &spec, &sb, &sb_config, &rt).await;
            }
            self.remove_dead(&spec, &rt).await;
        }
        if acted {
            rt = PodRuntime::inspect(&ctx.cri, &self.uid).await?;
        }
        self.update_probes(pod, &spec, &rt);

        let st = self.generate(pod, &rt);
        let terminal = matches!(st.phase.as_deref(), Some("Succeeded" | "Failed"));
        if terminal {
            // Written before the sandbox goes, so the pod keeps its IP in the status.
            match ctx.status.write_now(pod, &st).await {
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                r => r.context("writing the pod's final status")?,
            }
            info!(pod = %pod_key(pod), phase = ?st.phase, "pod finished");
            self.last_status = Some(st);
            return self.stop_finished(pod).await;
        }
        ctx.status.set(pod, &st);
        self.last_status = Some(st);
        Ok(())
    }

    /// Sets up (or refreshes) the pod's volumes; failures become `FailedMount` events. True
    /// when containers may start: every volume was set up once, by this worker or — the pod
    /// has a sandbox (`had_sandbox`), which is only made after its volumes — before a kubelet
    /// restart (upstream reconstructs that state from disk).
    async fn set_up_volumes(&mut self, pod: &Pod, had_sandbox: bool) -> bool {
        let (vols, errors) = self.ctx.volumes.set_up(pod).await;
        self.volumes = vols;
        for e in errors.iter().filter(|e| !self.mount_errors.contains(e)) {
            warn!(pod = %pod_key(pod), error = %e, "volume set-up failed");
        }
        let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        self.mount_events.retain(|m, _| messages.contains(m));
        for m in messages {
            if self.mount_events.entry(m.clone()).or_default().due() {
                EventTarget::pod(&self.ctx.events, pod).warning("FailedMount", m);
            }
        }
        self.mount_errors = errors;
        if self.mount_errors.is_empty() || had_sandbox {
            self.volumes_mounted = true;
        }
        self.volumes_mounted
    }

    /// The container's mounts: volumes, the pod's `/etc/hosts` (rewritten for each container
    /// start, as upstream), and a fresh termination-message file.
    fn mounts(
        &self,
        pod: &Pod,
        c: &Container,
        pod_ips: &[String],
        env: &[(String, String)],
    ) -> Result<Vec<api::Mount>, String> {
        let dirs = self.ctx.volumes.dirs();
        let spec = pod.spec.clone().unwrap_or_default();
        let host_net = spec.host_network.unwrap_or(false);
        let mut hosts = None;
        if !pod_ips.is_empty() && !volumes::mounts_etc_hosts(c) {
            let path = dirs.pod_etc_hosts(&self.uid);
            etc_hosts::ensure(
                &path,
                pod_ips,
                &hostname(pod),
                &kuberuntime::pod_domain(pod, &self.ctx.cfg.cluster_domain),
                spec.host_aliases.as_deref().unwrap_or_default(),
                host_net,
            )
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
            hosts = Some(path);
        }
        let mut log = None;
        if c.termination_message_path
            .as_deref()
            .is_some_and(|p| !p.is_empty())
        {
            let dir = dirs.pod_container_dir(&self.uid, &c.name);
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let path = dir.join(format!("{:08x}", nanos ^ std::process::id()));
            // As upstream, a file that cannot be made only loses the message.
            let made = std::fs::create_dir_all(&dir)
                .and_then(|()| std::fs::File::create(&path))
                .and_then(|_| {
                    use std::os::unix::fs::PermissionsExt as _;
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))
                });
            match made {
                Ok(()) => log = Some(path),
                Err(e) => {
                    warn!(path = %path.display(), error = %e, "cannot create the termination-log file")
                }
            }
        }
        volumes::container_mounts(
            c,
            &MountInputs {
                volumes: &self.volumes,
                env,
                etc_hosts: hosts.as_deref(),
                termination_log: log.as_deref(),
                subpaths: &dirs.pod_dir(&self.uid).join("volume-subpaths"),
            },
        )
    }

    /// A running container: restart it when its spec changed or its liveness probe failed.
    async fn check_running(&mut self, pod: &Pod, c: &Container, l: &ContainerState) -> bool {
        let why = if !l.hash.is_empty() && l.hash != kuberuntime::container_hash(c) {
            Some("container spec changed".to_owned())
        } else {
            self.probes.get(&l.id).and_then(|p| p.state().failed)
        };
        let Some(why) = why else { return false };
        info!(pod = %pod_key(pod), container = %c.name, %why, "killing container; it will be restarted");
        let events = EventTarget::container(&self.ctx.events, pod, &c.name);
        let message = match why.split_once(" probe failed") {
            Some((kind, _)) => format!(
                "Container {} failed {} probe, will be restarted",
                c.name,
                kind.to_lowercase()
            ),
            None => format!("Container {} definition changed, will be restarted", c.name),
        };
        events.normal("Killing", message);
        self.probes.remove(&l.id);
        let mut grace = Self::grace(pod);
        if let Ok(rt) = PodRuntime::inspect(&self.ctx.cri, &self.uid).await {
            let hooks = run_pre_stop_hooks(&self.ctx, pod, &rt, Some(&l.id), grace).await;
            grace = grace.saturating_sub(hooks).max(MIN_GRACE);
        }
        if let Err(e) = self.ctx.cri.stop_container(&l.id, grace).await {
            warn!(container = %c.name, error = %e, "cannot stop container");
        }
        true
    }

    /// A container created but never started (a failed start): remove it so it is made again.
    async fn remove_stuck(&mut self, l: &ContainerState) -> bool {
        if let Err(e) = self.ctx.cri.remove_container(&l.id).await {
            warn!(container = %l.name, error = %e, "cannot remove a container that did not start");
        }
        true
    }

    /// Restarts an exited container unless it is backing off (CrashLoopBackOff).
    async fn restart_or_wait(
        &mut self,
        pod: &Pod,
        c: &Container,
        l: &ContainerState,
        sb: &SandboxState,
        sb_config: &api::PodSandboxConfig,
        rt: &PodRuntime,
    ) -> bool {
        let finished = nanos_to_time(l.finished_at);
        if let Some(wait) = self.backoff.remaining(&c.name, finished, SystemTime::now()) {
            let message = format!(
                "back-off {} restarting failed container={} pod={}_{}({})",
                go_duration(self.backoff.delay(&c.name)),
                c.name,
                pod.metadata.name.as_deref().unwrap_or_default(),
                pod.metadata.namespace.as_deref().unwrap_or_default(),
                self.uid
            );
            self.notes
                .waiting
                .insert(c.name.clone(), ("CrashLoopBackOff".into(), message));
            EventTarget::container(&self.ctx.events, pod, &c.name).warning(
                "BackOff",
                format!(
                    "Back-off restarting failed container {} in pod {}_{}({})",
                    c.name,
                    pod.metadata.name.as_deref().unwrap_or_default(),
                    pod.metadata.namespace.as_deref().unwrap_or_default(),
                    self.uid
                ),
            );
            self.retry_in(wait);
            return false;
        }
        self.backoff.next(&c.name, finished);
        self.start(pod, c, sb, sb_config, rt).await
    }

    /// Pulls the image if needed, builds the environment, creates and starts the container.
    /// Failures become the container's waiting reason. True if the runtime changed.
    async fn start(
        &mut self,
        pod: &Pod,
        c: &Container,
        sb: &SandboxState,
        sb_config: &api::PodSandboxConfig,
        rt: &PodRuntime,
    ) -> bool {
        self.start_in(pod, c, sb, sb_config, rt, None).await
    }

    /// [`Self::start`], in the PID namespace of container `pid_target` if given (an ephemeral
    /// container's `targetContainerName`).
    async fn start_in(
        &mut self,
        pod: &Pod,
        c: &Container,
        sb: &SandboxState,
        sb_config: &api::PodSandboxConfig,
        rt: &PodRuntime,
        pid_target: Option<&str>,
    ) -> bool {
        let ctx = self.ctx.clone();
        let events = EventTarget::container(&ctx.events, pod, &c.name);
        let image = c.image.clone().unwrap_or_default();
        let secrets = credentials::pull_secrets(&ctx.client, pod).await;
        let auths = credentials::lookup(&secrets, &image);
        if let Err(f) = ctx
            .images
            .ensure(
                &image,
                c.image_pull_policy.as_deref(),
                sb_config,
                &auths,
                &events,
            )
            .await
        {
            events.warning("Failed", format!("Error: {}", f.reason));
            self.notes
                .waiting
                .insert(c.name.clone(), (f.reason.into(), f.message));
            if let Some(r) = f.retry_in {
                self.retry_in(r);
            }
            return false;
        }
        let host_net = pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false);
        let pod_ips = if host_net {
            vec![ctx.host_ip.clone()]
        } else {
            sb.ips.clone()
        };
        let env_ctx = EnvContext {
            pod_ips: pod_ips.clone(),
            host_ip: ctx.host_ip.clone(),
            node_name: ctx.cfg.node_name.clone(),
            node_milli_cpu: ctx.milli_cpu,
            node_memory: i64::try_from(ctx.memory_capacity).unwrap_or(i64::MAX),
            services: Default::default(),
        };
        let env = match service_variables(&ctx, pod) {
            Ok(services) => {
                let env_ctx = EnvContext {
                    services,
                    ..env_ctx
                };
                env::container_env(&ctx.client, pod, c, &env_ctx).await
            }
            Err(e) => Err(e),
        };
        let env = match env {
            Ok(e) => e,
            Err(e) => {
                events.warning("Failed", format!("Error: {}", e.0));
                self.notes
                    .waiting
                    .insert(c.name.clone(), ("CreateContainerConfigError".into(), e.0));
                self.retry_in(Duration::from_secs(10));
                return false;
            }
        };
        let mounts = match self.mounts(pod, c, &pod_ips, &env) {
            Ok(m) => m,
            Err(e) => {
                self.notes
                    .waiting
                    .insert(c.name.clone(), ("CreateContainerConfigError".into(), e));
                self.retry_in(Duration::from_secs(10));
                return false;
            }
        };
        let attempt = rt.next_attempt(&c.name);
        let mut config = kuberuntime::container_config(
            pod,
            c,
            ContainerParams {
                attempt,
                image: &image,
                env,
                resources: resources::linux_resources(pod, c, ctx.memory_capacity),
                mounts,
            },
        );
        if let Some(target) = pid_target {
            kuberuntime::target_pid_namespace(&mut config, target);
        }
        let id = match ctx
            .cri
            .create_container(&sb.id, config, sb_config.clone())
            .await
        {
            Ok(id) => id,
            Err(e) => {
                warn!(pod = %pod_key(pod), container = %c.name, error = %e, "cannot create container");
                events.warning("Failed", format!("Error: {e}"));
                self.notes.waiting.insert(
                    c.name.clone(),
                    ("CreateContainerError".into(), e.to_string()),
                );
                self.retry_in(RETRY);
                return false;
            }
        };
        events.normal("Created", format!("Created container: {}", c.name));
        if let Err(e) = ctx.cri.start_container(&id).await {
            events.warning("Failed", format!("Error: {e}"));
            // The container stays behind as exited or created; the next sync restarts it with
            // back-off or removes it.
            warn!(pod = %pod_key(pod), container = %c.name, error = %e, "cannot start container");
            self.notes
                .waiting
                .insert(c.name.clone(), ("RunContainerError".into(), e.to_string()));
            return true;
        }
        info!(pod = %pod_key(pod), container = %c.name, attempt, id = %id, "container started");
        events.normal("Started", format!("Started container {}", c.name));
        if let Some(handler) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) {
            let spec = pod.spec.clone().unwrap_or_default();
            let ip = dial_ip(&ctx, &spec, Some(sb));
            let desc = pod_desc(pod);
            if let Err(msg) =
                lifecycle::run(&ctx.prober, handler, c, &id, ip, &desc, POST_START_LIMIT).await
            {
                warn!(pod = %desc, container = %c.name, %msg, "postStart hook failed; killing the container");
                events.warning("FailedPostStartHook", msg);
                events.normal("Killing", "FailedPostStartHook".into());
                if let Err(e) = ctx.cri.stop_container(&id, Self::grace(pod)).await {
                    warn!(container = %c.name, error = %e, "cannot stop container");
                }
            }
        }
        true
    }

    /// Starts the ephemeral containers (`kubectl debug`) that never ran: each runs once in
    /// the pod's sandbox and is never restarted, as upstream.
    async fn start_ephemeral(
        &mut self,
        pod: &Pod,
        spec: &PodSpec,
        sb: &SandboxState,
        sb_config: &api::PodSandboxConfig,
        rt: &PodRuntime,
    ) -> bool {
        let mut acted = false;
        for ec in spec.ephemeral_containers.iter().flatten() {
            if rt.latest(&ec.name).is_some() {
                continue;
            }
            let target = ec
                .target_container_name
                .as_deref()
                .and_then(|t| rt.latest(t))
                .filter(|t| t.is_running())
                .map(|t| t.id.clone());
            let c = kuberuntime::ephemeral_as_container(ec);
            acted |= self
                .start_in(pod, &c, sb, sb_config, rt, target.as_deref())
                .await;
        }
        acted
    }

    /// Keeps the newest two instances of each container of the current sandbox (for
    /// `lastState` and `kubectl logs --previous`); removes older exited ones.
    async fn remove_dead(&mut self, spec: &PodSpec, rt: &PodRuntime) {
        let names = spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers)
            .map(|c| c.name.as_str());
        for name in names {
            for old in rt.instances(name).skip(2).filter(|c| c.is_exited()) {
                debug!(container = %name, id = %old.id, "removing an old container");
                if let Err(e) = self.ctx.cri.remove_container(&old.id).await {
                    debug!(error = %e, "cannot remove an old container");
                }
            }
        }
    }

    /// Starts probe loops for running containers and drops those of containers gone.
    fn update_probes(&mut self, pod: &Pod, spec: &PodSpec, rt: &PodRuntime) {
        let running: HashMap<&str, &ContainerState> = rt
            .sandbox()
            .map(|sb| {
                rt.containers
                    .iter()
                    .filter(|c| c.is_running() && c.sandbox_id == sb.id)
                    .map(|c| (c.id.as_str(), c))
                    .collect()
            })
            .unwrap_or_default();
        self.probes
            .retain(|id, _| running.contains_key(id.as_str()));
        let ip = dial_ip(&self.ctx, spec, rt.sandbox());
        for (id, c) in &running {
            if self.probes.contains_key(*id) {
                continue;
            }
            let Some(cspec) = spec.containers.iter().find(|s| s.name == c.name) else {
                continue;
            };
            if let Some(p) = ContainerProbes::start(
                self.ctx.prober.clone(),
                cspec,
                id,
                ip,
                self.wake.clone(),
                EventTarget::container(&self.ctx.events, pod, &c.name),
            ) {
                self.probes.insert((*id).to_owned(), p);
            }
        }
        self.notes.ready.clear();
        self.notes.started.clear();
        for (id, p) in &self.probes {
            let s = p.state();
            if let Some(r) = s.ready {
                self.notes.ready.insert(id.clone(), r);
            }
            if let Some(st) = s.started {
                self.notes.started.insert(id.clone(), st);
            }
        }
    }
}

/// Whether a pod update changes what its worker does: the spec, the deletion, or the labels
/// and annotations the downward API exposes. Status-only changes do not.
fn acts_on_change(old: &Pod, new: &Pod) -> bool {
    let (o, n) = (&old.metadata, &new.metadata);
    old.spec != new.spec
        || o.deletion_timestamp != n.deletion_timestamp
        || o.deletion_grace_period_seconds != n.deletion_grace_period_seconds
        || o.labels != n.labels
        || o.annotations != n.annotations
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(go_duration(Duration::from_secs(80)), "1m20s");
        assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
    }

    #[test]
    fn restart_policies() {
        assert!(should_restart("Always", 0));
        assert!(should_restart("OnFailure", 1));
        assert!(!should_restart("OnFailure", 0));
        assert!(!should_restart("Never", 1));
    }
}
