//! `/metrics/cadvisor`: cAdvisor's Prometheus collector as the kubelet registers it (CPU,
//! memory, CPU load, disk usage, network, process and OOM metrics; no per-CPU usage), with
//! the kubelet's labels `container`, `id`, `image`, `name`, `namespace`, `pod` on every
//! cgroup cAdvisor watches: the root `/` and everything under the pods' root (QoS classes and
//! pods as raw cgroups, containers and sandboxes as containerd containers, named by ID), plus
//! its machine collector. Label values a cgroup lacks are empty, as upstream's.
//!
//! Not reported: disk I/O (blkio) counters, per-container filesystem usage (cAdvisor's
//! containerd handler has none either: only `/` has `container_fs_*`), CPU load and task
//! states beyond cAdvisor's own zeros (its load reader is off in the kubelet).

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use super::StatsProvider;
use super::cadvisor_table::{Info, LABELS, METRICS, spec_memory};
use super::collect::RuntimeView;
use super::host;
use super::prometheus::{Family, Kind, render as render_families};
use super::summary::Time;
use crate::kuberuntime::{LABEL_CONTAINER_NAME, LABEL_POD_NAME, LABEL_POD_NAMESPACE};

/// Open descriptors and sockets of these processes, and the soft open-files limit of the
/// first (cAdvisor's `processStatsFromProcs` and root-process ulimits).
fn process_files(pids: &[i32], root_pid: Option<i32>) -> (u64, u64, Option<i64>) {
    let (mut fds, mut sockets) = (0, 0);
    for pid in pids {
        let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for e in rd.flatten() {
            fds += 1;
            if std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy().starts_with("socket"))
            {
                sockets += 1;
            }
        }
    }
    let limit = root_pid.and_then(|pid| {
        let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
        let line = text.lines().find(|l| l.starts_with("Max open files"))?;
        let soft = line
            .trim_start_matches("Max open files")
            .split_whitespace()
            .next()?;
        Some(if soft == "unlimited" {
            -1
        } else {
            soft.parse().ok()?
        })
    });
    (fds, sockets, limit)
}

/// The device a path's filesystem is mounted from (cAdvisor's `device` label).
fn device_of(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let Ok(dev) = std::fs::metadata(path).map(|m| m.dev()) else {
        return String::new();
    };
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.get(2) == Some(&format!("{major}:{minor}").as_str())).then(|| {
                let sep = f.iter().position(|x| *x == "-")?;
                f.get(sep + 2).map(|s| (*s).to_owned())
            })?
        })
        .unwrap_or_default()
}

/// The machine collector's figures: logical CPUs, physical cores, sockets (sysfs topology).
fn cpu_topology() -> (usize, usize, usize) {
    let mut cores = BTreeSet::new();
    let mut sockets = BTreeSet::new();
    let mut logical = 0;
    if let Ok(rd) = std::fs::read_dir("/sys/devices/system/cpu") {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name
                .strip_prefix("cpu")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            {
                continue;
            }
            let topo = e.path().join("topology");
            let read = |f: &str| {
                std::fs::read_to_string(topo.join(f))
                    .map(|s| s.trim().to_owned())
                    .ok()
            };
            let (Some(pkg), Some(core)) = (read("physical_package_id"), read("core_id")) else {
                continue;
            };
            logical += 1;
            cores.insert((pkg.clone(), core));
            sockets.insert(pkg);
        }
    }
    if logical == 0 {
        let n = crate::machine::cpus();
        return (n, n, 1);
    }
    (logical, cores.len(), sockets.len())
}

impl StatsProvider {
    /// Reads one cgroup.
    fn cadvisor_info(
        &self,
        name: &str,
        labels: [String; 6],
        start: Time,
        root_pid: Option<i32>,
    ) -> Info {
        let procs = self.cgroups.procs(name);
        let (fds, sockets, max_open_files) = process_files(&procs, root_pid);
        Info {
            labels,
            start,
            cpu: self.cgroups.cpu(name),
            throttling: self.cgroups.throttling(name),
            cpu_spec: self.cgroups.cpu_spec(name),
            memory: self.cgroups.memory(name),
            memory_spec: self.cgroups.memory_spec(name),
            pids: self.cgroups.pids(name),
            processes: procs.len() as u64,
            fds,
            sockets,
            max_open_files,
            oom: self.cgroups.oom_kills(name),
            ..Default::default()
        }
    }

    /// Every watched cgroup, labelled as the kubelet labels cAdvisor's containers.
    fn cadvisor_infos(&self, view: Option<&RuntimeView>) -> Vec<Info> {
        let empty = || -> [String; 6] { Default::default() };
        let mut infos = Vec::new();
        // The root: the machine's memory figures (its usage files may be missing on v2), its
        // physical interfaces and the kubelet's filesystem.
        let mut root = self.cadvisor_info("/", empty(), self.cgroup_start("/"), Some(1));
        root.labels[1] = "/".into();
        if root.memory.is_none() {
            root.memory = self.node_memory().map(|(m, _, _)| m);
        }
        root.network = host::net_dev(1).unwrap_or_default();
        if let Some(fs) = host::statfs(&self.cfg.root_dir) {
            root.fs.push((device_of(&self.cfg.root_dir), fs));
        }
        infos.push(root);

        let (mut pods, mut sandboxes, mut containers) =
            (HashMap::new(), HashMap::new(), HashMap::new());
        if let Some(v) = view {
            for s in &v.sandboxes {
                if let Some(m) = &s.metadata {
                    pods.insert(m.uid.clone(), (m.name.clone(), m.namespace.clone()));
                }
                sandboxes.insert(s.id.clone(), s);
            }
            for c in &v.containers {
                containers.insert(c.id.clone(), c);
            }
        }
        for name in self.cgroup_tree() {
            let last = name.rsplit('/').next().unwrap_or_default().to_owned();
            let mut labels = empty();
            labels[1] = name.clone();
            if let Some(c) = containers.get(&last) {
                let label = |k: &str| c.labels.get(k).cloned().unwrap_or_default();
                labels[0] = label(LABEL_CONTAINER_NAME);
                labels[2] = c
                    .image
                    .as_ref()
                    .map(|i| i.image.clone())
                    .unwrap_or_default();
                labels[3] = last.clone();
                labels[4] = label(LABEL_POD_NAMESPACE);
                labels[5] = label(LABEL_POD_NAME);
                let pid = self.cgroups.procs(&name).first().copied();
                infos.push(self.cadvisor_info(
                    &name,
                    labels,
                    Time::from_unix_nanos(c.created_at),
                    pid,
                ));
            } else if let Some(s) = sandboxes.get(&last) {
                let label = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
                labels[2] = crate::images::PAUSE_IMAGE.to_owned();
                labels[3] = last.clone();
                labels[4] = label(LABEL_POD_NAMESPACE);
                labels[5] = label(LABEL_POD_NAME);
                let pid = self.cgroups.procs(&name).first().copied();
                let mut info =
                    self.cadvisor_info(&name, labels, Time::from_unix_nanos(s.created_at), pid);
                // The sandbox holds the pod's network namespace (its containers report none).
                info.network = pid.and_then(host::net_dev).unwrap_or_default();
                infos.push(info);
            } else {
                // A raw cgroup; a pod's carries the pod's name (upstream's GetPodByCgroupfs).
                if let Some((pod, ns)) = last.strip_prefix("pod").and_then(|uid| pods.get(uid)) {
                    labels[4] = ns.clone();
                    labels[5] = pod.clone();
                }
                let start = self.cgroup_start(&name);
                infos.push(self.cadvisor_info(&name, labels, start, None));
            }
        }
        infos
    }
}

/// The exposition: every watched cgroup, the version and machine collectors.
pub fn render(p: &StatsProvider, view: Option<&RuntimeView>) -> String {
    let now = Time::now();
    let now_ms = now.unix_millis();
    let infos = p.cadvisor_infos(view);
    let mut families: Vec<Family> = METRICS
        .iter()
        .map(|(name, help, kind, _, _)| Family::new(name, *help, *kind))
        .collect();
    let mut start = Family::new(
        "container_start_time_seconds",
        "Start time of the container since unix epoch in seconds.",
        Kind::Gauge,
    );
    let mut last_seen = Family::new(
        "container_last_seen",
        "Last time a container was seen by the exporter",
        Kind::Gauge,
    );
    let mut period = Family::new(
        "container_spec_cpu_period",
        "CPU period of the container.",
        Kind::Gauge,
    );
    let mut quota_f = Family::new(
        "container_spec_cpu_quota",
        "CPU quota of the container.",
        Kind::Gauge,
    );
    let mut shares = Family::new(
        "container_spec_cpu_shares",
        "CPU share of the container.",
        Kind::Gauge,
    );
    let mut mem_limit = Family::new(
        "container_spec_memory_limit_bytes",
        "Memory limit for the container.",
        Kind::Gauge,
    );
    let mut swap_limit = Family::new(
        "container_spec_memory_swap_limit_bytes",
        "Memory swap limit for the container.",
        Kind::Gauge,
    );
    let mut reservation = Family::new(
        "container_spec_memory_reservation_limit_bytes",
        "Memory reservation limit for the container.",
        Kind::Gauge,
    );
    for info in &infos {
        let base = || -> Vec<(&'static str, String)> {
            LABELS
                .iter()
                .copied()
                .zip(info.labels.iter().cloned())
                .collect()
        };
        start.push(
            base(),
            info.start.0.map_or(0.0, |t| t.as_second() as f64),
            None,
        );
        if let Some(s) = info.cpu_spec {
            period.push(base(), s.period as f64, None);
            if s.quota != 0 {
                quota_f.push(base(), s.quota as f64, None);
            }
            shares.push(base(), s.shares as f64, None);
        }
        if let Some(s) = info.memory_spec {
            mem_limit.push(base(), spec_memory(s.limit), None);
            swap_limit.push(base(), spec_memory(s.swap_limit), None);
            reservation.push(base(), spec_memory(s.reservation), None);
        }
        last_seen.push(
            base(),
            now.0.map_or(0.0, |t| t.as_second() as f64),
            Some(now_ms),
        );
        for ((_, _, _, extra, values), family) in METRICS.iter().zip(families.iter_mut()) {
            for (extra_values, v) in values(info) {
                let mut labels = base();
                labels.extend(extra.iter().copied().zip(extra_values));
                family.push(labels, v, Some(now_ms));
            }
        }
    }
    families.extend([
        start,
        last_seen,
        period,
        quota_f,
        shares,
        mem_limit,
        swap_limit,
        reservation,
    ]);

    let mut version = Family::new(
        "cadvisor_version_info",
        "A metric with a constant '1' value labeled by kernel version, OS version, docker version, cadvisor version & cadvisor revision.",
        Kind::Gauge,
    );
    version.push(
        vec![
            ("kernelVersion", crate::machine::kernel_version()),
            ("osVersion", crate::machine::os_image()),
            ("dockerVersion", String::new()),
            ("cadvisorVersion", String::new()),
            ("cadvisorRevision", String::new()),
        ],
        1.0,
        None,
    );
    let mut scrape = Family::new(
        "container_scrape_error",
        "1 if there was an error while getting container metrics, 0 otherwise",
        Kind::Gauge,
    );
    scrape.push(Vec::new(), if view.is_some() { 0.0 } else { 1.0 }, None);
    families.extend([version, scrape]);
    families.extend(machine_families());
    render_families(families)
}

/// cAdvisor's machine collector (no NVM or DIMM information here: zeros, as on machines
/// without them).
fn machine_families() -> Vec<Family> {
    let base = || {
        vec![
            ("boot_id", crate::machine::boot_id()),
            ("machine_id", crate::machine::machine_id()),
            ("system_uuid", crate::machine::system_uuid()),
        ]
    };
    let mi = host::meminfo();
    let (logical, physical, sockets) = cpu_topology();
    let gauge = |name, help: &str, v: f64| {
        let mut f = Family::new(name, help, Kind::Gauge);
        f.push(base(), v, None);
        f
    };
    let mut nvm = Family::new(
        "machine_nvm_capacity",
        "NVM capacity value labeled by NVM mode (memory mode or app direct mode).",
        Kind::Gauge,
    );
    for mode in ["memory_mode", "app_direct_mode"] {
        let mut labels = base();
        labels.push(("mode", mode.to_owned()));
        nvm.push(labels, 0.0, None);
    }
    let mut scrape = Family::new(
        "machine_scrape_error",
        "1 if there was an error while getting machine metrics, 0 otherwise.",
        Kind::Gauge,
    );
    scrape.push(Vec::new(), 0.0, None);
    vec![
        gauge(
            "machine_cpu_physical_cores",
            "Number of physical CPU cores.",
            physical as f64,
        ),
        gauge(
            "machine_cpu_cores",
            "Number of logical CPU cores.",
            logical as f64,
        ),
        gauge(
            "machine_cpu_sockets",
            "Number of CPU sockets.",
            sockets as f64,
        ),
        gauge(
            "machine_memory_bytes",
            "Amount of memory installed on the machine.",
            mi.get("MemTotal").copied().unwrap_or(0) as f64,
        ),
        gauge(
            "machine_swap_bytes",
            "Amount of swap memory available on the machine.",
            mi.get("SwapTotal").copied().unwrap_or(0) as f64,
        ),
        gauge(
            "machine_nvm_avg_power_budget_watts",
            "NVM power budget.",
            0.0,
        ),
        nvm,
        scrape,
    ]
}
