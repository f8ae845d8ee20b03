//! Resource stats of the node and its pods — the seed's cAdvisor role inside the kubelet, and
//! upstream's CRI stats provider: what `/stats/summary`, `/metrics/resource` and
//! `/metrics/cadvisor` serve.
//!
//! * CPU and memory of the node, the pods and every container from their cgroups
//!   ([`cgroup`], v1 or v2; the node's cgroup root, else /proc), CPU rates (`usageNanoCores`)
//!   from a housekeeping task that samples every cgroup each `housekeeping_interval` (10 s,
//!   cAdvisor's) and keeps the rate between its last two samples ([`rates`]); cumulative
//!   figures are read when asked.
//! * Which pods and containers: CRI `ListPodSandbox`, `ListContainers` and
//!   `ListContainerStats` (the writable layer's usage too); the image filesystem from CRI
//!   `ImageFsInfo`.
//! * A pod's network from its sandbox's network namespace (`/proc/<pause pid>/net/dev`), the
//!   node's from PID 1's ([`host`]); filesystems with `statvfs`; container logs and volumes
//!   measured as `du` does ([`volumes`], cached as upstream's, refreshed by housekeeping).
//! * [`summary`] is the Summary API's JSON; [`prometheus`] the text format the metrics
//!   endpoints write ([`resource_metrics`], [`cadvisor_metrics`], and [`kubelet_metrics`] for
//!   `/metrics`).

pub mod cadvisor_metrics;
mod cadvisor_table;
pub mod cgroup;
mod collect;
pub mod host;
pub mod kubelet_metrics;
pub mod prometheus;
pub mod rates;
pub mod resource_metrics;
pub mod summary;
pub mod volumes;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use crate::config::KubeletConfig;
use crate::cri::RuntimeClient;
use crate::paths::AgentDirs;
use cgroup::Cgroups;
use collect::ContainerStatsNeed;
use rates::Rates;
use summary::{Summary, Time};
use volumes::{ClaimsOf, VolumeCache};

/// How deep below the pods' cgroup root housekeeping looks: QoS class, pod, container.
const CGROUP_DEPTH: usize = 3;

/// The claims `uid`'s volumes use, by volume name, among `pods`.
pub fn claims_of(
    pods: &[Arc<k8s_openapi::api::core::v1::Pod>],
    uid: &str,
) -> HashMap<String, summary::PvcReference> {
    let Some(pod) = pods.iter().find(|p| p.metadata.uid.as_deref() == Some(uid)) else {
        return HashMap::new();
    };
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let volumes = pod.spec.iter().flat_map(|s| s.volumes.iter().flatten());
    volumes
        .filter_map(|v| {
            let (name, _) = crate::volumes::persistent_volume_claim::claim_of(pod, v)?;
            let pvc = summary::PvcReference {
                name,
                namespace: namespace.clone(),
            };
            Some((v.name.clone(), pvc))
        })
        .collect()
}

/// What the stats provider needs to know of the kubelet.
#[derive(Clone, Debug)]
pub struct StatsConfig {
    pub node_name: String,
    /// The pods' cgroup root (`/kubepods`): the `pods` system container.
    pub cgroup_root: String,
    pub dirs: AgentDirs,
    /// The kubelet's root directory: its filesystem is the node's (`node.fs`) and holds the
    /// logs (upstream's `--root-dir`, `/var/lib/kubelet`).
    pub root_dir: PathBuf,
    /// cAdvisor's housekeeping interval: how often CPU rates (and, at most once a minute per
    /// pod, volume usage) are refreshed.
    pub housekeeping_interval: Duration,
}

impl StatsConfig {
    pub fn from_kubelet(cfg: &KubeletConfig) -> Self {
        let dirs = cfg.dirs();
        let root_dir = dirs
            .kubelet_pods
            .parent()
            .map_or_else(|| cfg.data_dir.clone(), |p| p.to_path_buf());
        StatsConfig {
            node_name: cfg.node_name.clone(),
            cgroup_root: cfg.cgroup_root.clone(),
            dirs,
            root_dir,
            housekeeping_interval: cfg.housekeeping_interval,
        }
    }
}

/// The stats provider: cheap to share; [`StatsProvider::run_housekeeping`] keeps its rates.
pub struct StatsProvider {
    cfg: StatsConfig,
    cri: RuntimeClient,
    cgroups: Cgroups,
    rates: Mutex<Rates>,
    volumes: VolumeCache,
    /// The claims of each pod's volumes (the kubelet's pods), for their `pvcRef`.
    claims: OnceLock<Box<ClaimsOf>>,
    boot_time: Time,
    /// CRI's container stats (for the writable layers) as housekeeping last listed them: a
    /// summary then costs no round of containerd asking every shim.
    container_stats: Mutex<Option<(Instant, collect::ContainerStatsById)>>,
}

impl StatsProvider {
    pub fn new(cfg: StatsConfig, cri: RuntimeClient) -> Arc<Self> {
        Self::with_cgroups(cfg, cri, Cgroups::host())
    }

    /// With the cgroup filesystem at another place (tests).
    pub fn with_cgroups(cfg: StatsConfig, cri: RuntimeClient, cgroups: Cgroups) -> Arc<Self> {
        Arc::new(StatsProvider {
            cfg,
            cri,
            cgroups,
            rates: Mutex::default(),
            volumes: VolumeCache::default(),
            claims: OnceLock::new(),
            boot_time: host::boot_time(),
            container_stats: Mutex::default(),
        })
    }

    /// Where claim volumes learn their claims: the pod's volumes that use one, by pod UID
    /// (upstream's stats provider asks its pod manager). Set once; unset, claims' volumes
    /// report no `pvcRef`.
    pub fn set_claims_of(
        &self,
        claims: impl Fn(&str) -> HashMap<String, summary::PvcReference> + Send + Sync + 'static,
    ) {
        // Set once at start; a second call would describe the same pods.
        let _ = self.claims.set(Box::new(claims));
    }

    pub fn config(&self) -> &StatsConfig {
        &self.cfg
    }

    /// Samples every cgroup now and then each housekeeping interval, until dropped.
    pub async fn run_housekeeping(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.cfg.housekeeping_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let me = self.clone();
            match tokio::task::spawn_blocking(move || me.housekeep()).await {
                Ok(n) => debug!(cgroups = n, "stats housekeeping"),
                Err(e) => warn!(error = %e, "stats housekeeping failed"),
            }
            if let Err(e) = self.refresh_container_stats().await {
                debug!(error = %format!("{e:#}"), "listing container stats failed");
            }
        }
    }

    /// One housekeeping round: CPU time of the node and of every cgroup below the pods'
    /// root, then the volumes of the pods found there. Returns the cgroups sampled.
    pub fn housekeep(&self) -> usize {
        let at = Instant::now();
        let mut samples = Vec::new();
        if let Some(cpu) = self.node_cpu() {
            samples.push(("/".to_owned(), cpu));
        }
        let mut uids = Vec::new();
        for name in self.cgroup_tree() {
            if let Some(cpu) = self.cgroups.cpu(&name) {
                samples.push((name.clone(), cpu.total));
            }
            if let Some(uid) = name.rsplit('/').next().and_then(|n| n.strip_prefix("pod")) {
                uids.push(uid.to_owned());
            }
        }
        let n = samples.len();
        self.rates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(at, samples);
        let none = |_: &str| HashMap::new();
        let claims: &ClaimsOf = self.claims.get().map_or(&none, |c| c.as_ref());
        self.volumes.refresh(&self.cfg.dirs, &uids, claims);
        n
    }

    /// The pods' cgroup root and every cgroup below it, to [`CGROUP_DEPTH`].
    fn cgroup_tree(&self) -> Vec<String> {
        let root = self.cfg.cgroup_root.trim_end_matches('/').to_owned();
        if !self.cgroups.exists(&root) {
            return Vec::new();
        }
        let mut out = vec![root.clone()];
        let mut level = vec![root];
        for _ in 0..CGROUP_DEPTH {
            let mut next = Vec::new();
            for parent in &level {
                for child in self.cgroups.children(parent) {
                    next.push(format!("{parent}/{child}"));
                }
            }
            out.extend(next.iter().cloned());
            level = next;
        }
        out
    }

    /// The node's cumulative CPU time: the root cgroup's, else /proc/stat's busy time.
    fn node_cpu(&self) -> Option<u64> {
        self.cgroups
            .cpu("/")
            .map(|c| c.total)
            .or_else(host::proc_stat_cpu)
    }

    /// The cgroup's latest CPU rate; 0 before housekeeping has two samples (as cAdvisor's
    /// stats without an instantaneous figure).
    fn rate(&self, name: &str) -> u64 {
        self.rates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .unwrap_or(0)
    }

    /// `/stats/summary`: everything, or (`only_cpu_and_memory`) upstream's
    /// `GetCPUAndMemoryStats`.
    pub async fn summary(self: &Arc<Self>, only_cpu_and_memory: bool) -> anyhow::Result<Summary> {
        let need = if only_cpu_and_memory {
            ContainerStatsNeed::UnlessCgroups
        } else {
            ContainerStatsNeed::Always
        };
        let view = self.runtime_view(need, !only_cpu_and_memory).await?;
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.build_summary(&view, !only_cpu_and_memory))
            .await
            .map_err(|e| anyhow::anyhow!("building the summary: {e}"))?
    }

    /// `/metrics/resource`.
    pub async fn resource_metrics(self: &Arc<Self>) -> String {
        let summary = self.summary(true).await;
        if let Err(e) = &summary {
            warn!(error = %format!("{e:#}"), "Error getting summary for resourceMetric prometheus endpoint");
        }
        resource_metrics::render(summary.ok().as_ref())
    }

    /// `/metrics`: CRI's sandbox and container lists (no `ListContainerStats` or
    /// `ImageFsInfo`) for the runtime counts and which pods' claims to report, their figures
    /// from the housekeeping volume cache. No summary: a scrape reads no cgroup, log or
    /// filesystem.
    pub async fn kubelet_metrics(&self) -> String {
        match self.runtime_view(ContainerStatsNeed::Never, false).await {
            Ok(view) => self.kubelet_metrics_of(Some(&view)),
            Err(e) => {
                warn!(error = %format!("{e:#}"), "Error getting pod stats for the kubelet's metrics");
                self.kubelet_metrics_of(None)
            }
        }
    }

    /// `/metrics` for the runtime's lists (`None`: they failed).
    fn kubelet_metrics_of(&self, view: Option<&collect::RuntimeView>) -> String {
        let Some(view) = view else {
            return kubelet_metrics::render(&self.cfg.node_name, None, None);
        };
        let counts = kubelet_metrics::RuntimeCounts::of(view);
        let claims = self
            .volumes
            .claim_stats(kubelet_metrics::summary_pods(view));
        kubelet_metrics::render(&self.cfg.node_name, Some(&claims), Some(&counts))
    }

    /// `/metrics/cadvisor`.
    pub async fn cadvisor_metrics(self: &Arc<Self>) -> String {
        let view = self.runtime_view(ContainerStatsNeed::Never, false).await;
        if let Err(e) = &view {
            warn!(error = %format!("{e:#}"), "Couldn't get containers");
        }
        let me = self.clone();
        tokio::task::spawn_blocking(move || cadvisor_metrics::render(&me, view.ok().as_ref()))
            .await
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;
