//! The Summary: which pods and containers from CRI (upstream's `criStatsProvider`), their CPU
//! and memory from their cgroups (what cAdvisor gives upstream's provider), the rest from the
//! filesystems.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;

use super::StatsProvider;
use super::cgroup::{MemoryUsage, UNLIMITED, memory_from};
use super::host::{self, FsInfo};
use super::summary::{
    ContainerStats, CpuStats, FsStats, MemoryStats, NodeStats, PodReference, PodStats,
    ProcessStats, RlimitStats, RuntimeStats, Summary, SwapStats, Time,
};
use super::volumes::PodVolume;
use crate::cri::api;
use crate::kuberuntime::ANNOTATION_CGROUP_PARENT;

/// Entries walked per log directory at most.
const LOG_WALK_LIMIT: usize = 10_000;

/// CRI's container stats by container ID.
pub type ContainerStatsById = HashMap<String, api::ContainerStats>;

/// What the runtime reports: live sandboxes (upstream's `removeTerminatedPods`), running
/// containers, their stats by ID when listed, and the image filesystem when asked for.
pub struct RuntimeView {
    pub sandboxes: Vec<api::PodSandbox>,
    pub containers: Vec<api::Container>,
    /// Every listed container (running or not) by CRI state, for `/metrics`' PLEG gauges.
    pub container_states: BTreeMap<i32, u64>,
    pub stats: Option<ContainerStatsById>,
    pub image_fs: Option<api::FilesystemUsage>,
}

/// When a view needs CRI's container stats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerStatsNeed {
    /// The full summary: the writable layers.
    Always,
    /// CPU and memory: only for a container whose cgroup cannot be read.
    UnlessCgroups,
    /// cAdvisor's metrics: never.
    Never,
}

/// Keeps one sandbox per pod name: the ready ones, else the newest (a pod recreated under its
/// name, or a sandbox recreated, leaves old ones behind for a while).
pub fn remove_terminated_pods(mut pods: Vec<api::PodSandbox>) -> Vec<api::PodSandbox> {
    pods.sort_by_key(|p| p.created_at);
    let mut by_ref: BTreeMap<(String, String), Vec<api::PodSandbox>> = BTreeMap::new();
    for p in pods {
        let m = p.metadata.clone().unwrap_or_default();
        by_ref.entry((m.namespace, m.name)).or_default().push(p);
    }
    let ready = api::PodSandboxState::SandboxReady as i32;
    let mut out = Vec::new();
    for (_, mut refs) in by_ref {
        if refs.len() == 1 || !refs.iter().any(|p| p.state == ready) {
            out.extend(refs.pop());
        } else {
            out.extend(refs.into_iter().filter(|p| p.state == ready));
        }
    }
    out
}

fn u64v(v: &Option<api::UInt64Value>) -> Option<u64> {
    v.as_ref().map(|v| v.value)
}

/// `a + b`, where a missing side adds nothing and two missing sides stay missing.
fn add(a: &mut Option<u64>, b: Option<u64>) {
    *a = match (*a, b) {
        (Some(x), Some(y)) => Some(x.saturating_add(y)),
        (x, None) => x,
        (None, y) => y,
    };
}

fn memory_stats(m: &MemoryUsage, limit: u64, time: Time) -> MemoryStats {
    MemoryStats {
        time,
        available_bytes: (limit <= UNLIMITED).then(|| limit.saturating_sub(m.working_set)),
        usage_bytes: Some(m.usage),
        working_set_bytes: Some(m.working_set),
        rss_bytes: Some(m.rss),
        page_faults: Some(m.pgfault),
        major_page_faults: Some(m.pgmajfault),
    }
}

fn swap_stats(swap: u64, limit: u64, time: Time) -> SwapStats {
    SwapStats {
        time,
        swap_available_bytes: (limit <= UNLIMITED).then(|| limit.saturating_sub(swap)),
        swap_usage_bytes: Some(swap),
    }
}

/// A filesystem's figures on a stat whose usage is someone's share of it.
fn fs_share(info: &FsInfo, time: Time, used: Option<u64>, inodes_used: Option<u64>) -> FsStats {
    FsStats {
        time,
        available_bytes: Some(info.available),
        capacity_bytes: Some(info.capacity),
        used_bytes: used,
        inodes_free: Some(info.inodes_free),
        inodes: Some(info.inodes),
        inodes_used,
    }
}

/// Upstream's `calcEphemeralStorage` (CRI provider): the containers' writable layers and
/// logs, the local ephemeral volumes, the pod's own log files and its `/etc/hosts`.
fn ephemeral_storage(
    containers: &[ContainerStats],
    volumes: &[PodVolume],
    root: &FsInfo,
    extra: &[Option<FsStats>],
    time: Time,
) -> FsStats {
    let mut r = fs_share(root, time, None, None);
    let take = |fs: &FsStats, r: &mut FsStats| {
        add(&mut r.used_bytes, fs.used_bytes);
        add(&mut r.inodes_used, fs.inodes_used);
        r.time = r.time.max(fs.time);
    };
    for c in containers {
        if let Some(rootfs) = &c.rootfs {
            take(rootfs, &mut r);
            if let Some(logs) = &c.logs {
                take(logs, &mut r);
            }
        }
    }
    for v in volumes.iter().filter(|v| v.local_ephemeral) {
        take(&v.stats.fs, &mut r);
    }
    for fs in extra.iter().flatten() {
        take(fs, &mut r);
    }
    r
}

/// Container stats as a view got them.
enum Stats {
    Cached(ContainerStatsById),
    Listed(Vec<api::ContainerStats>),
}
use Stats::{Cached, Listed};

fn by_id(list: Vec<api::ContainerStats>) -> ContainerStatsById {
    list.into_iter()
        .filter_map(|s| Some((s.attributes.as_ref()?.id.clone(), s)))
        .collect()
}

impl StatsProvider {
    /// Lists CRI's container stats and keeps them for summaries (housekeeping does, each
    /// round).
    pub async fn refresh_container_stats(&self) -> anyhow::Result<()> {
        let list = self
            .cri
            .list_container_stats(None)
            .await
            .context("failed to list all container stats")?;
        self.keep_container_stats(by_id(list));
        Ok(())
    }

    pub(super) fn keep_container_stats(&self, stats: ContainerStatsById) {
        *self
            .container_stats
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), stats));
    }

    /// The kept container stats, unless older than two housekeeping rounds (housekeeping
    /// stopped, or has not run yet).
    pub(super) fn cached_container_stats(&self) -> Option<ContainerStatsById> {
        let kept = self
            .container_stats
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let (at, stats) = kept.as_ref()?;
        (at.elapsed() <= 2 * self.cfg.housekeeping_interval).then(|| stats.clone())
    }

    /// The CRI lists every stats answer starts from (run at once). `ListContainerStats` is
    /// asked only when its answer is used — [`ContainerStatsNeed`] — since containerd 1.6
    /// answers it by asking every container's shim (~2 ms of CPU per container); a full
    /// summary takes housekeeping's last answer (containerd itself refreshes the writable
    /// layers' usage only every 10 s).
    pub(super) async fn runtime_view(
        &self,
        need: ContainerStatsNeed,
        with_image_fs: bool,
    ) -> anyhow::Result<RuntimeView> {
        let list_stats = || async {
            self.cri
                .list_container_stats(None)
                .await
                .context("failed to list all container stats")
        };
        let (sandboxes, containers, stats) = tokio::try_join!(
            async {
                self.cri
                    .list_pod_sandbox(None)
                    .await
                    .context("failed to list all pod sandboxes")
            },
            async {
                self.cri
                    .list_containers(None)
                    .await
                    .context("failed to list all containers")
            },
            async {
                match need {
                    ContainerStatsNeed::Always => match self.cached_container_stats() {
                        Some(cached) => Ok(Some(Cached(cached))),
                        None => list_stats().await.map(|l| Some(Listed(l))),
                    },
                    _ => Ok(None),
                }
            },
        )
        .context("failed to list pod stats")?;
        let running = api::ContainerState::ContainerRunning as i32;
        let mut container_states = BTreeMap::new();
        for c in &containers {
            *container_states.entry(c.state).or_default() += 1;
        }
        let mut view = RuntimeView {
            sandboxes: remove_terminated_pods(sandboxes),
            containers: containers
                .into_iter()
                .filter(|c| c.state == running)
                .collect(),
            container_states,
            stats: None,
            image_fs: None,
        };
        let stats = match (stats, need) {
            (None, ContainerStatsNeed::UnlessCgroups) if self.missing_cgroups(&view) => Some(
                Listed(list_stats().await.context("failed to list pod stats")?),
            ),
            (stats, _) => stats,
        };
        view.stats = stats.map(|stats| match stats {
            Cached(by_id) => by_id,
            Listed(list) => {
                let by_id = by_id(list);
                self.keep_container_stats(by_id.clone());
                by_id
            }
        });
        if with_image_fs {
            let fs = self
                .cri
                .image_fs_info()
                .await
                .context("failed to get imageFs stats")?
                .image_filesystems
                .into_iter()
                .next()
                .context("failed to get imageFs stats: imageFs information is unavailable")?;
            view.image_fs = Some(fs);
        }
        Ok(view)
    }

    /// Whether some running container's cgroup cannot be read (so its figures must come
    /// from CRI).
    pub(super) fn missing_cgroups(&self, view: &RuntimeView) -> bool {
        let parents: HashMap<&str, Option<String>> = view
            .sandboxes
            .iter()
            .map(|s| (s.id.as_str(), self.pod_cgroup(s)))
            .collect();
        view.containers.iter().any(|c| {
            parents.get(c.pod_sandbox_id.as_str()).is_some_and(|p| {
                p.as_ref()
                    .is_none_or(|p| !self.cgroups.exists(&format!("{p}/{}", c.id)))
            })
        })
    }

    /// The pod's cgroup: the one its sandbox was made with (our annotation), else wherever
    /// the cgroupfs layout puts `pod<uid>` under the pods' root.
    pub(super) fn pod_cgroup(&self, sandbox: &api::PodSandbox) -> Option<String> {
        if let Some(p) = sandbox.annotations.get(ANNOTATION_CGROUP_PARENT)
            && self.cgroups.exists(p)
        {
            return Some(p.trim_end_matches('/').to_owned());
        }
        let uid = &sandbox.metadata.as_ref()?.uid;
        let root = self.cfg.cgroup_root.trim_end_matches('/');
        ["", "/burstable", "/besteffort"]
            .iter()
            .map(|qos| format!("{root}{qos}/pod{uid}"))
            .find(|n| self.cgroups.exists(n))
    }

    /// The creation time of a cgroup as cAdvisor reports it (never before boot).
    pub(super) fn cgroup_start(&self, name: &str) -> Time {
        let t = self
            .cgroups
            .creation_time(name)
            .map_or(Time::default(), Time::from_system);
        if self.boot_time.0.is_some() && t < self.boot_time {
            self.boot_time
        } else {
            t
        }
    }

    /// CPU, memory and swap of a cgroup, read now (the CPU rate from housekeeping).
    fn cgroup_cpu_memory(
        &self,
        name: &str,
        now: Time,
    ) -> (Option<CpuStats>, Option<MemoryStats>, Option<SwapStats>) {
        let cpu = self.cgroups.cpu(name).map(|c| CpuStats {
            time: now,
            usage_nano_cores: Some(self.rate(name)),
            usage_core_nano_seconds: Some(c.total),
        });
        let spec = self.cgroups.memory_spec(name).unwrap_or_default();
        match self.cgroups.memory(name) {
            Some(m) => (
                cpu,
                Some(memory_stats(&m, spec.limit, now)),
                Some(swap_stats(m.swap, spec.swap_limit, now)),
            ),
            None => (cpu, None, None),
        }
    }

    /// The node's memory: its root cgroup's, or — the v2 root has no usage files — runc's
    /// emulation from /proc/meminfo. Also the machine's memory and swap (the root's limits).
    pub(super) fn node_memory(&self) -> Option<(MemoryUsage, u64, u64)> {
        let mi = host::meminfo();
        let total = *mi.get("MemTotal")?;
        let get = |k: &str| mi.get(k).copied().unwrap_or(0);
        let swap_total = get("SwapTotal");
        let m = self.cgroups.memory("/").unwrap_or_else(|| {
            let stat = self.cgroups.memory_stat("/").unwrap_or_else(|| {
                HashMap::from([
                    ("inactive_file".to_owned(), get("Inactive(file)")),
                    ("active_file".to_owned(), get("Active(file)")),
                    ("anon".to_owned(), get("AnonPages")),
                    ("file".to_owned(), get("Cached")),
                    ("file_mapped".to_owned(), get("Mapped")),
                ])
            });
            let mut m = memory_from(total.saturating_sub(get("MemFree")), &stat, false, true);
            m.swap = swap_total.saturating_sub(get("SwapFree"));
            m
        });
        Some((m, total, swap_total))
    }

    /// The Summary from the runtime's view; `full` = everything, else CPU and memory only.
    pub(super) fn build_summary(&self, view: &RuntimeView, full: bool) -> anyhow::Result<Summary> {
        let now = Time::now();
        let root_fs = if full {
            Some(host::statfs(&self.cfg.root_dir).with_context(|| {
                format!(
                    "failed to get rootFs info of {}",
                    self.cfg.root_dir.display()
                )
            })?)
        } else {
            None
        };
        let node = self.node_stats(view, root_fs.as_ref(), now);
        let sandboxes: HashMap<&str, &api::PodSandbox> =
            view.sandboxes.iter().map(|s| (s.id.as_str(), s)).collect();
        // Running containers by sandbox; with stats listed, those in the answer (upstream
        // walks ListContainerStats' answer).
        let mut by_sandbox: BTreeMap<&str, Vec<(&api::Container, Option<&api::ContainerStats>)>> =
            BTreeMap::new();
        for c in &view.containers {
            let st = view.stats.as_ref().map(|s| s.get(&c.id));
            if st.is_some_and(|s| s.is_none()) || !sandboxes.contains_key(c.pod_sandbox_id.as_str())
            {
                continue;
            }
            by_sandbox
                .entry(c.pod_sandbox_id.as_str())
                .or_default()
                .push((c, st.flatten()));
        }
        let mut fs_by_mount: HashMap<String, Option<FsInfo>> = HashMap::new();
        let mut pods = Vec::with_capacity(by_sandbox.len());
        for (id, containers) in by_sandbox {
            let Some(sandbox) = sandboxes.get(id) else {
                continue;
            };
            pods.push(self.pod_stats(
                sandbox,
                &containers,
                root_fs.as_ref(),
                &mut fs_by_mount,
                now,
            ));
        }
        pods.sort_by(|a, b| a.pod_ref.cmp(&b.pod_ref));
        Ok(Summary { node, pods })
    }

    fn node_stats(&self, view: &RuntimeView, root_fs: Option<&FsInfo>, now: Time) -> NodeStats {
        let full = root_fs.is_some();
        let cpu = self.node_cpu().map(|total| CpuStats {
            time: now,
            usage_nano_cores: Some(self.rate("/")),
            usage_core_nano_seconds: Some(total),
        });
        let (memory, swap) = match self.node_memory() {
            Some((m, total, swap_total)) => (
                Some(memory_stats(&m, total, now)),
                Some(swap_stats(m.swap, swap_total, now)),
            ),
            None => (None, None),
        };
        let root = self.cfg.cgroup_root.trim_end_matches('/');
        let mut system_containers = Vec::new();
        if self.cgroups.exists(root) {
            let (cpu, memory, swap) = self.cgroup_cpu_memory(root, now);
            system_containers.push(ContainerStats {
                name: "pods".into(),
                start_time: self.cgroup_start(root),
                cpu,
                memory,
                swap,
                ..Default::default()
            });
        }
        let mut node = NodeStats {
            node_name: self.cfg.node_name.clone(),
            system_containers,
            start_time: if full {
                self.boot_time
            } else {
                self.cgroup_start("/")
            },
            cpu,
            memory,
            swap,
            ..Default::default()
        };
        let Some(root_fs) = root_fs else {
            return node;
        };
        let ifaces = host::net_dev(1)
            .or_else(|| host::net_dev(i32::try_from(std::process::id()).unwrap_or(0)))
            .unwrap_or_default();
        node.network = host::network_stats(&ifaces, now);
        node.fs = Some(FsStats {
            used_bytes: Some(root_fs.usage),
            inodes_used: Some(root_fs.inodes.saturating_sub(root_fs.inodes_free)),
            ..fs_share(root_fs, now, None, None)
        });
        let image_fs = view.image_fs.as_ref().map(|fs| {
            let mount = fs
                .fs_id
                .as_ref()
                .map(|f| f.mountpoint.as_str())
                .unwrap_or("");
            let info = host::statfs(Path::new(mount));
            FsStats {
                time: Time::from_unix_nanos(fs.timestamp),
                used_bytes: u64v(&fs.used_bytes),
                inodes_used: u64v(&fs.inodes_used),
                available_bytes: info.map(|i| i.available),
                capacity_bytes: info.map(|i| i.capacity),
                inodes_free: info.map(|i| i.inodes_free),
                inodes: info.map(|i| i.inodes),
            }
        });
        // containerd reports no separate container filesystem: the image one serves both.
        node.runtime = Some(RuntimeStats {
            container_fs: image_fs.clone(),
            image_fs,
        });
        let (max_pid, running) = host::rlimit();
        node.rlimit = Some(RlimitStats {
            time: Time::now(),
            max_pid,
            num_of_running_processes: running,
        });
        node
    }

    fn pod_stats(
        &self,
        sandbox: &api::PodSandbox,
        containers: &[(&api::Container, Option<&api::ContainerStats>)],
        root_fs: Option<&FsInfo>,
        fs_by_mount: &mut HashMap<String, Option<FsInfo>>,
        now: Time,
    ) -> PodStats {
        let meta = sandbox.metadata.clone().unwrap_or_default();
        let cgroup = self.pod_cgroup(sandbox);
        let log_dir = self
            .cfg
            .dirs
            .pod_log_dir(&meta.namespace, &meta.name, &meta.uid);
        let mut out = PodStats {
            pod_ref: PodReference {
                name: meta.name.clone(),
                namespace: meta.namespace.clone(),
                uid: meta.uid.clone(),
            },
            // The sandbox's creation, as upstream's "pod creation time".
            start_time: Time::from_unix_nanos(sandbox.created_at),
            ..Default::default()
        };
        let mut processes: Option<u64> = None;
        for (c, st) in containers {
            let name = c
                .metadata
                .as_ref()
                .map(|m| m.name.clone())
                .unwrap_or_default();
            let cg = cgroup
                .as_ref()
                .map(|p| format!("{p}/{}", c.id))
                .filter(|n| self.cgroups.exists(n));
            let (cpu, memory, swap) = match &cg {
                Some(n) => self.cgroup_cpu_memory(n, now),
                None => cri_cpu_memory(*st, now),
            };
            let mut cs = ContainerStats {
                name: name.clone(),
                // Upstream's container "start" is its creation.
                start_time: Time::from_unix_nanos(c.created_at),
                cpu,
                memory,
                swap,
                ..Default::default()
            };
            if let Some(root_fs) = root_fs {
                cs.rootfs =
                    Some(st.map_or_else(FsStats::default, |st| rootfs_stats(st, fs_by_mount)));
                cs.logs = host::du(&log_dir.join(&name), LOG_WALK_LIMIT)
                    .map(|du| fs_share(root_fs, now, Some(du.bytes), Some(du.inodes)));
                if let Some(n) = &cg {
                    add(&mut processes, Some(self.cgroups.procs(n).len() as u64));
                }
            }
            out.containers.push(cs);
        }
        out.containers.sort_by(|a, b| a.name.cmp(&b.name));
        match &cgroup {
            Some(p) => {
                let (cpu, memory, swap) = self.cgroup_cpu_memory(p, now);
                (out.cpu, out.memory, out.swap) = (cpu, memory, swap);
            }
            None => (out.cpu, out.memory) = sum_containers(&out.containers),
        }
        let Some(root_fs) = root_fs else {
            return out;
        };
        out.process_stats = processes.map(|n| ProcessStats {
            process_count: Some(n),
        });
        // The sandbox's (pause's) network namespace.
        let pause = cgroup.as_ref().and_then(|p| {
            self.cgroups
                .procs(&format!("{p}/{}", sandbox.id))
                .first()
                .copied()
        });
        out.network = pause
            .and_then(host::net_dev)
            .and_then(|i| host::network_stats(&i, now));
        let Some(volumes) = self.volumes.get(&meta.uid) else {
            // Not measured yet (as upstream before its first volume pass): no volume figures.
            out.ephemeral_storage = Some(ephemeral_storage(
                &out.containers,
                &[],
                root_fs,
                &self.pod_extra_fs(&log_dir, &meta.uid, root_fs, now),
                now,
            ));
            return out;
        };
        out.volume_stats = volumes.iter().map(|v| v.stats.clone()).collect();
        out.ephemeral_storage = Some(ephemeral_storage(
            &out.containers,
            &volumes,
            root_fs,
            &self.pod_extra_fs(&log_dir, &meta.uid, root_fs, now),
            now,
        ));
        out
    }

    /// The pod's own log files (not its containers' directories) and its managed
    /// `/etc/hosts`, which upstream counts toward ephemeral storage too.
    fn pod_extra_fs(
        &self,
        log_dir: &Path,
        uid: &str,
        root_fs: &FsInfo,
        now: Time,
    ) -> [Option<FsStats>; 2] {
        let pod_logs = std::fs::read_dir(log_dir).ok().map(|rd| {
            let (mut used, mut inodes) = (None, None);
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                if let Some(du) = host::du(&e.path(), 1) {
                    add(&mut used, Some(du.bytes));
                    add(&mut inodes, Some(du.inodes));
                }
            }
            fs_share(root_fs, now, used, inodes)
        });
        let etc_hosts = host::du(&self.cfg.dirs.pod_etc_hosts(uid), 1)
            .map(|du| fs_share(root_fs, now, Some(du.bytes), Some(du.inodes)));
        [pod_logs, etc_hosts]
    }
}

/// A container whose cgroup cannot be read (another cgroup driver): CRI's own figures.
fn cri_cpu_memory(
    st: Option<&api::ContainerStats>,
    now: Time,
) -> (Option<CpuStats>, Option<MemoryStats>, Option<SwapStats>) {
    let cpu = match st.and_then(|s| s.cpu.as_ref()) {
        Some(c) => CpuStats {
            time: Time::from_unix_nanos(c.timestamp),
            usage_nano_cores: u64v(&c.usage_nano_cores),
            usage_core_nano_seconds: u64v(&c.usage_core_nano_seconds),
        },
        None => CpuStats {
            time: now,
            usage_nano_cores: Some(0),
            usage_core_nano_seconds: Some(0),
        },
    };
    let memory = match st.and_then(|s| s.memory.as_ref()) {
        Some(m) => MemoryStats {
            time: Time::from_unix_nanos(m.timestamp),
            available_bytes: u64v(&m.available_bytes),
            usage_bytes: u64v(&m.usage_bytes),
            working_set_bytes: u64v(&m.working_set_bytes),
            rss_bytes: u64v(&m.rss_bytes),
            page_faults: u64v(&m.page_faults),
            major_page_faults: u64v(&m.major_page_faults),
        },
        None => MemoryStats {
            time: now,
            working_set_bytes: Some(0),
            ..Default::default()
        },
    };
    (Some(cpu), Some(memory), None)
}

/// The container's writable layer (CRI) on its filesystem.
fn rootfs_stats(
    st: &api::ContainerStats,
    fs_by_mount: &mut HashMap<String, Option<FsInfo>>,
) -> FsStats {
    let Some(wl) = &st.writable_layer else {
        return FsStats::default();
    };
    let mut fs = FsStats {
        time: Time::from_unix_nanos(wl.timestamp),
        used_bytes: u64v(&wl.used_bytes),
        inodes_used: u64v(&wl.inodes_used),
        ..Default::default()
    };
    if let Some(mount) = wl.fs_id.as_ref().map(|f| f.mountpoint.clone()) {
        let info = *fs_by_mount
            .entry(mount)
            .or_insert_with_key(|m| host::statfs(Path::new(m)));
        if let Some(info) = info {
            fs.available_bytes = Some(info.available);
            fs.capacity_bytes = Some(info.capacity);
            fs.inodes_free = Some(info.inodes_free);
            fs.inodes = Some(info.inodes);
        }
    }
    fs
}

/// A pod without a readable cgroup: its containers' CPU and memory summed, as upstream.
fn sum_containers(cs: &[ContainerStats]) -> (Option<CpuStats>, Option<MemoryStats>) {
    let (mut cpu, mut mem): (Option<CpuStats>, Option<MemoryStats>) = (None, None);
    for c in cs {
        if let Some(x) = &c.cpu {
            let p = cpu.get_or_insert_with(CpuStats::default);
            p.time = x.time;
            p.usage_core_nano_seconds = Some(
                p.usage_core_nano_seconds.unwrap_or(0) + x.usage_core_nano_seconds.unwrap_or(0),
            );
            p.usage_nano_cores =
                Some(p.usage_nano_cores.unwrap_or(0) + x.usage_nano_cores.unwrap_or(0));
        }
        if let Some(x) = &c.memory {
            let p = mem.get_or_insert_with(MemoryStats::default);
            p.time = x.time;
            let sum = |a: Option<u64>, b: Option<u64>| Some(a.unwrap_or(0) + b.unwrap_or(0));
            p.available_bytes = sum(p.available_bytes, x.available_bytes);
            p.usage_bytes = sum(p.usage_bytes, x.usage_bytes);
            p.working_set_bytes = sum(p.working_set_bytes, x.working_set_bytes);
            p.rss_bytes = sum(p.rss_bytes, x.rss_bytes);
            p.page_faults = sum(p.page_faults, x.page_faults);
            p.major_page_faults = sum(p.major_page_faults, x.major_page_faults);
        }
    }
    (cpu, mem)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox(name: &str, created: i64, ready: bool) -> api::PodSandbox {
        api::PodSandbox {
            id: format!("{name}-{created}"),
            metadata: Some(api::PodSandboxMetadata {
                name: name.into(),
                namespace: "default".into(),
                uid: format!("u-{name}"),
                attempt: 0,
            }),
            state: if ready {
                api::PodSandboxState::SandboxReady as i32
            } else {
                api::PodSandboxState::SandboxNotready as i32
            },
            created_at: created,
            ..Default::default()
        }
    }

    #[test]
    fn terminated_sandboxes_give_way_to_live_ones() {
        let kept = remove_terminated_pods(vec![
            sandbox("a", 2, true),
            sandbox("a", 1, false),
            sandbox("b", 1, false),
            sandbox("b", 3, false),
            sandbox("c", 1, false),
        ]);
        let ids: Vec<&str> = kept.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["a-2", "b-3", "c-1"]);
    }

    #[test]
    fn ephemeral_storage_adds_what_upstream_adds() {
        let root = FsInfo {
            capacity: 100,
            available: 50,
            usage: 50,
            inodes: 10,
            inodes_free: 5,
            fs_type: 0,
        };
        let t = Time::from_unix_nanos(1);
        let fs = |used| FsStats {
            time: t,
            used_bytes: Some(used),
            inodes_used: Some(1),
            ..Default::default()
        };
        let containers = [ContainerStats {
            rootfs: Some(fs(10)),
            logs: Some(fs(3)),
            ..Default::default()
        }];
        let vol = |used, local_ephemeral| PodVolume {
            stats: super::super::summary::VolumeStats {
                fs: fs(used),
                name: "v".into(),
                pvc_ref: None,
            },
            local_ephemeral,
        };
        let r = ephemeral_storage(
            &containers,
            &[vol(100, true), vol(1000, false)],
            &root,
            &[Some(fs(7)), None],
            t,
        );
        assert_eq!(r.used_bytes, Some(120));
        assert_eq!(r.inodes_used, Some(4));
        assert_eq!((r.capacity_bytes, r.available_bytes), (Some(100), Some(50)));
    }
}
