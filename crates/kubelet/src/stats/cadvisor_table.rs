//! cAdvisor's per-container metrics as the kubelet registers them (`/metrics/cadvisor`): for
//! each, its name, help, type, extra labels and values from one watched cgroup ([`Info`]) —
//! upstream's `metrics/prometheus.go` table for the kubelet's metric set (CPU, memory, CPU load,
//! disk usage, network, process and OOM metrics; no per-CPU usage).

use super::cgroup::{CpuSpec, CpuUsage, MemorySpec, MemoryUsage, Pids, Throttling, UNLIMITED};
use super::host::{FsInfo, Interface};
use super::prometheus::Kind;
use super::summary::Time;

/// One watched cgroup and what was read of it.
#[derive(Default)]
pub(super) struct Info {
    /// container, id, image, name, namespace, pod.
    pub(super) labels: [String; 6],
    pub(super) start: Time,
    pub(super) cpu: Option<CpuUsage>,
    pub(super) throttling: Option<Throttling>,
    pub(super) cpu_spec: Option<CpuSpec>,
    pub(super) memory: Option<MemoryUsage>,
    pub(super) memory_spec: Option<MemorySpec>,
    pub(super) pids: Option<Pids>,
    pub(super) processes: u64,
    pub(super) fds: u64,
    pub(super) sockets: u64,
    /// The soft open-files limit of the container's first process (cAdvisor's "root PID").
    pub(super) max_open_files: Option<i64>,
    pub(super) oom: Option<u64>,
    pub(super) network: Vec<Interface>,
    pub(super) fs: Vec<(String, FsInfo)>,
}

pub(super) const LABELS: [&str; 6] = ["container", "id", "image", "name", "namespace", "pod"];

pub(super) type Values = Vec<(Vec<String>, f64)>;

/// A per-container metric: name, help, type, extra label names, values.
pub(super) type Metric = (
    &'static str,
    &'static str,
    Kind,
    &'static [&'static str],
    fn(&Info) -> Values,
);

fn one(v: Option<f64>) -> Values {
    v.map(|v| vec![(Vec::new(), v)]).unwrap_or_default()
}

fn mem(i: &Info, f: fn(&MemoryUsage) -> u64) -> Values {
    one(i.memory.as_ref().map(|m| f(m) as f64))
}

fn net(i: &Info, f: fn(&Interface) -> u64) -> Values {
    i.network
        .iter()
        .map(|n| (vec![n.name.clone()], f(n) as f64))
        .collect()
}

fn fs(i: &Info, f: fn(&FsInfo) -> u64) -> Values {
    i.fs.iter()
        .map(|(d, fs)| (vec![d.clone()], f(fs) as f64))
        .collect()
}

/// cAdvisor's container metrics for the kubelet's metric set, in its order.
pub(super) const METRICS: &[Metric] = &[
    (
        "container_cpu_user_seconds_total",
        "Cumulative user cpu time consumed in seconds.",
        Kind::Counter,
        &[],
        |i| one(i.cpu.map(|c| c.user as f64 / 1e9)),
    ),
    (
        "container_cpu_system_seconds_total",
        "Cumulative system cpu time consumed in seconds.",
        Kind::Counter,
        &[],
        |i| one(i.cpu.map(|c| c.system as f64 / 1e9)),
    ),
    // Without per-CPU figures cAdvisor reports one "total" sample, and none at zero.
    (
        "container_cpu_usage_seconds_total",
        "Cumulative cpu time consumed in seconds.",
        Kind::Counter,
        &["cpu"],
        |i| {
            i.cpu
                .filter(|c| c.total > 0)
                .map(|c| vec![(vec!["total".to_owned()], c.total as f64 / 1e9)])
                .unwrap_or_default()
        },
    ),
    (
        "container_cpu_cfs_periods_total",
        "Number of elapsed enforcement period intervals.",
        Kind::Counter,
        &[],
        |i| {
            if quota(i) {
                one(i.throttling.map(|t| t.periods as f64))
            } else {
                Vec::new()
            }
        },
    ),
    (
        "container_cpu_cfs_throttled_periods_total",
        "Number of throttled period intervals.",
        Kind::Counter,
        &[],
        |i| {
            if quota(i) {
                one(i.throttling.map(|t| t.throttled_periods as f64))
            } else {
                Vec::new()
            }
        },
    ),
    (
        "container_cpu_cfs_throttled_seconds_total",
        "Total time duration the container has been throttled.",
        Kind::Counter,
        &[],
        |i| {
            if quota(i) {
                one(i.throttling.map(|t| t.throttled_ns as f64 / 1e9))
            } else {
                Vec::new()
            }
        },
    ),
    (
        "container_cpu_load_average_10s",
        "Value of container cpu load average over the last 10 seconds.",
        Kind::Gauge,
        &[],
        |i| one(i.cpu.map(|_| 0.0)),
    ),
    (
        "container_cpu_load_d_average_10s",
        "Value of container cpu load.d average over the last 10 seconds.",
        Kind::Gauge,
        &[],
        |i| one(i.cpu.map(|_| 0.0)),
    ),
    (
        "container_tasks_state",
        "Number of tasks in given state",
        Kind::Gauge,
        &["state"],
        |i| {
            if i.cpu.is_some() {
                [
                    "sleeping",
                    "running",
                    "stopped",
                    "uninterruptible",
                    "iowaiting",
                ]
                .iter()
                .map(|s| (vec![(*s).to_owned()], 0.0))
                .collect()
            } else {
                Vec::new()
            }
        },
    ),
    (
        "container_memory_cache",
        "Number of bytes of page cache memory.",
        Kind::Gauge,
        &[],
        |i| mem(i, |m| m.cache),
    ),
    (
        "container_memory_rss",
        "Size of RSS in bytes.",
        Kind::Gauge,
        &[],
        |i| mem(i, |m| m.rss),
    ),
    (
        "container_memory_kernel_usage",
        "Size of kernel memory allocated in bytes.",
        Kind::Gauge,
        &[],
        |i| mem(i, |m| m.kernel),
    ),
    (
        "container_memory_mapped_file",
        "Size of memory mapped files in bytes.",
        Kind::Gauge,
        &[],
        |i| mem(i, |m| m.mapped_file),
    ),
    (
        "container_memory_swap",
        "Container swap usage in bytes.",
        Kind::Gauge,
        &[],
        |i| mem(i, |m| m.swap),
    ),
    (
        "container_memory_failcnt",
        "Number of memory usage hits limits",
        Kind::Counter,
        &[],
        |i| mem(i, |m| m.failcnt),
    ),
    (
        "container_memory_usage_bytes",
        "Current memory usage in bytes, including all memory regardless of when it was accessed",
        Kind::Gauge,
        &[],
        |i| mem(i, |m| m.usage),
    ),
    (
        "container_memory_max_usage_bytes",
        "Maximum memory usage recorded in bytes",
        Kind::Gauge,
        &[],
        |i| mem(i, |m| m.max_usage),
    ),
    (
        "container_memory_working_set_bytes",
        "Current working set in bytes.",
        Kind::Gauge,
        &[],
        |i| mem(i, |m| m.working_set),
    ),
    (
        "container_memory_total_active_file_bytes",
        "Current total active file in bytes.",
        Kind::Gauge,
        &[],
        |i| mem(i, |m| m.active_file),
    ),
    (
        "container_memory_total_inactive_file_bytes",
        "Current total inactive file in bytes.",
        Kind::Gauge,
        &[],
        |i| mem(i, |m| m.inactive_file),
    ),
    (
        "container_memory_failures_total",
        "Cumulative count of memory allocation failures.",
        Kind::Counter,
        &["failure_type", "scope"],
        |i| {
            i.memory
                .map(|m| {
                    [
                        ("pgfault", "container", m.pgfault),
                        ("pgmajfault", "container", m.pgmajfault),
                        ("pgfault", "hierarchy", m.pgfault),
                        ("pgmajfault", "hierarchy", m.pgmajfault),
                    ]
                    .iter()
                    .map(|(t, s, v)| (vec![(*t).to_owned(), (*s).to_owned()], *v as f64))
                    .collect()
                })
                .unwrap_or_default()
        },
    ),
    (
        "container_fs_inodes_free",
        "Number of available Inodes",
        Kind::Gauge,
        &["device"],
        |i| fs(i, |f| f.inodes_free),
    ),
    (
        "container_fs_inodes_total",
        "Number of Inodes",
        Kind::Gauge,
        &["device"],
        |i| fs(i, |f| f.inodes),
    ),
    (
        "container_fs_limit_bytes",
        "Number of bytes that can be consumed by the container on this filesystem.",
        Kind::Gauge,
        &["device"],
        |i| fs(i, |f| f.capacity),
    ),
    (
        "container_fs_usage_bytes",
        "Number of bytes that are consumed by the container on this filesystem.",
        Kind::Gauge,
        &["device"],
        |i| fs(i, |f| f.usage),
    ),
    (
        "container_network_receive_bytes_total",
        "Cumulative count of bytes received",
        Kind::Counter,
        &["interface"],
        |i| net(i, |n| n.rx_bytes),
    ),
    (
        "container_network_receive_packets_total",
        "Cumulative count of packets received",
        Kind::Counter,
        &["interface"],
        |i| net(i, |n| n.rx_packets),
    ),
    (
        "container_network_receive_packets_dropped_total",
        "Cumulative count of packets dropped while receiving",
        Kind::Counter,
        &["interface"],
        |i| net(i, |n| n.rx_dropped),
    ),
    (
        "container_network_receive_errors_total",
        "Cumulative count of errors encountered while receiving",
        Kind::Counter,
        &["interface"],
        |i| net(i, |n| n.rx_errors),
    ),
    (
        "container_network_transmit_bytes_total",
        "Cumulative count of bytes transmitted",
        Kind::Counter,
        &["interface"],
        |i| net(i, |n| n.tx_bytes),
    ),
    (
        "container_network_transmit_packets_total",
        "Cumulative count of packets transmitted",
        Kind::Counter,
        &["interface"],
        |i| net(i, |n| n.tx_packets),
    ),
    (
        "container_network_transmit_packets_dropped_total",
        "Cumulative count of packets dropped while transmitting",
        Kind::Counter,
        &["interface"],
        |i| net(i, |n| n.tx_dropped),
    ),
    (
        "container_network_transmit_errors_total",
        "Cumulative count of errors encountered while transmitting",
        Kind::Counter,
        &["interface"],
        |i| net(i, |n| n.tx_errors),
    ),
    (
        "container_processes",
        "Number of processes running inside the container.",
        Kind::Gauge,
        &[],
        |i| one(Some(i.processes as f64)),
    ),
    (
        "container_file_descriptors",
        "Number of open file descriptors for the container.",
        Kind::Gauge,
        &[],
        |i| one(Some(i.fds as f64)),
    ),
    (
        "container_sockets",
        "Number of open sockets for the container.",
        Kind::Gauge,
        &[],
        |i| one(Some(i.sockets as f64)),
    ),
    (
        "container_threads_max",
        "Maximum number of threads allowed inside the container, infinity if value is zero",
        Kind::Gauge,
        &[],
        |i| one(Some(i.pids.map_or(0, |p| p.max) as f64)),
    ),
    (
        "container_threads",
        "Number of threads running inside the container",
        Kind::Gauge,
        &[],
        |i| one(Some(i.pids.map_or(0, |p| p.current) as f64)),
    ),
    (
        "container_ulimits_soft",
        "Soft ulimit values for the container root process. Unlimited if -1, except priority and nice",
        Kind::Gauge,
        &["ulimit"],
        |i| {
            i.max_open_files
                .map(|v| vec![(vec!["max_open_files".to_owned()], v as f64)])
                .unwrap_or_default()
        },
    ),
    (
        "container_oom_events_total",
        "Count of out of memory events observed for the container",
        Kind::Counter,
        &[],
        |i| one(Some(i.oom.unwrap_or(0) as f64)),
    ),
];

fn quota(i: &Info) -> bool {
    i.cpu_spec.is_some_and(|s| s.quota != 0)
}

/// cAdvisor's `specMemoryValue`: unlimited is 0.
pub(super) fn spec_memory(v: u64) -> f64 {
    if v > UNLIMITED { 0.0 } else { v as f64 }
}
