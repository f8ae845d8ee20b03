//! `/metrics/resource`: upstream's resource metrics collector over the CPU-and-memory summary —
//! the figures metrics-server scrapes. HELP texts carry component-base's stability prefix.
//! `scrape_error` (deprecated in 1.29) is hidden in 1.33 as component-base hides a metric
//! deprecated more than a release ago; `resource_scrape_error` is its stable successor.

use super::prometheus::{Family, Kind, render as render_families};
use super::summary::{ContainerStats, PodStats, Summary};

/// The exposition of `summary`; `None` (the summary failed) gives only the error gauge at 1.
pub fn render(summary: Option<&Summary>) -> String {
    let mut node_cpu = Family::new(
        "node_cpu_usage_seconds_total",
        "[STABLE] Cumulative cpu time consumed by the node in core-seconds",
        Kind::Counter,
    );
    let mut node_mem = Family::new(
        "node_memory_working_set_bytes",
        "[STABLE] Current working set of the node in bytes",
        Kind::Gauge,
    );
    let mut node_swap = Family::new(
        "node_swap_usage_bytes",
        "[ALPHA] Current swap usage of the node in bytes. Reported only on non-windows systems",
        Kind::Gauge,
    );
    let mut c_start = Family::new(
        "container_start_time_seconds",
        "[STABLE] Start time of the container since unix epoch in seconds",
        Kind::Gauge,
    );
    let mut c_cpu = Family::new(
        "container_cpu_usage_seconds_total",
        "[STABLE] Cumulative cpu time consumed by the container in core-seconds",
        Kind::Counter,
    );
    let mut c_mem = Family::new(
        "container_memory_working_set_bytes",
        "[STABLE] Current working set of the container in bytes",
        Kind::Gauge,
    );
    let mut c_swap = Family::new(
        "container_swap_usage_bytes",
        "[ALPHA] Current amount of the container swap usage in bytes. Reported only on non-windows systems",
        Kind::Gauge,
    );
    let mut c_swap_limit = Family::new(
        "container_swap_limit_bytes",
        "[ALPHA] Current amount of the container swap limit in bytes. Reported only on non-windows systems",
        Kind::Gauge,
    );
    let mut p_cpu = Family::new(
        "pod_cpu_usage_seconds_total",
        "[STABLE] Cumulative cpu time consumed by the pod in core-seconds",
        Kind::Counter,
    );
    let mut p_mem = Family::new(
        "pod_memory_working_set_bytes",
        "[STABLE] Current working set of the pod in bytes",
        Kind::Gauge,
    );
    let mut p_swap = Family::new(
        "pod_swap_usage_bytes",
        "[ALPHA] Current amount of the pod swap usage in bytes. Reported only on non-windows systems",
        Kind::Gauge,
    );
    let mut errors = Family::new(
        "resource_scrape_error",
        "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise",
        Kind::Gauge,
    );
    errors.push(Vec::new(), if summary.is_some() { 0.0 } else { 1.0 }, None);
    let Some(s) = summary else {
        return render_families(vec![errors]);
    };
    let secs = |ns: u64| ns as f64 / 1e9;
    let node = &s.node;
    if let Some(cpu) = &node.cpu
        && let Some(v) = cpu.usage_core_nano_seconds
    {
        node_cpu.push(Vec::new(), secs(v), Some(cpu.time.unix_millis()));
    }
    if let Some(m) = &node.memory
        && let Some(v) = m.working_set_bytes
    {
        node_mem.push(Vec::new(), v as f64, Some(m.time.unix_millis()));
    }
    // Upstream stamps the node's swap with the memory's time.
    if let (Some(sw), Some(m)) = (&node.swap, &node.memory)
        && let Some(v) = sw.swap_usage_bytes
    {
        node_swap.push(Vec::new(), v as f64, Some(m.time.unix_millis()));
    }
    for pod in &s.pods {
        let pod_labels = || {
            vec![
                ("pod", pod.pod_ref.name.clone()),
                ("namespace", pod.pod_ref.namespace.clone()),
            ]
        };
        for c in &pod.containers {
            container_samples(
                pod,
                c,
                [
                    &mut c_start,
                    &mut c_cpu,
                    &mut c_mem,
                    &mut c_swap,
                    &mut c_swap_limit,
                ],
            );
        }
        if let Some(cpu) = &pod.cpu
            && let Some(v) = cpu.usage_core_nano_seconds
        {
            p_cpu.push(pod_labels(), secs(v), Some(cpu.time.unix_millis()));
        }
        if let Some(m) = &pod.memory
            && let Some(v) = m.working_set_bytes
        {
            p_mem.push(pod_labels(), v as f64, Some(m.time.unix_millis()));
        }
        if let Some(sw) = &pod.swap
            && let Some(v) = sw.swap_usage_bytes
        {
            p_swap.push(pod_labels(), v as f64, Some(sw.time.unix_millis()));
        }
    }
    render_families(vec![
        node_cpu,
        node_mem,
        node_swap,
        c_start,
        c_cpu,
        c_mem,
        c_swap,
        c_swap_limit,
        p_cpu,
        p_mem,
        p_swap,
        errors,
    ])
}

fn container_samples(pod: &PodStats, c: &ContainerStats, f: [&mut Family; 5]) {
    let [start, cpu_f, mem_f, swap_f, swap_limit_f] = f;
    let labels = || {
        vec![
            ("container", c.name.clone()),
            ("pod", pod.pod_ref.name.clone()),
            ("namespace", pod.pod_ref.namespace.clone()),
        ]
    };
    if c.start_time.unix_seconds_f64() > 0.0 {
        start.push(labels(), c.start_time.unix_seconds_f64(), None);
    }
    if let Some(cpu) = &c.cpu
        && let Some(v) = cpu.usage_core_nano_seconds
    {
        cpu_f.push(labels(), v as f64 / 1e9, Some(cpu.time.unix_millis()));
    }
    if let Some(m) = &c.memory
        && let Some(v) = m.working_set_bytes
    {
        mem_f.push(labels(), v as f64, Some(m.time.unix_millis()));
    }
    if let Some(sw) = &c.swap {
        if let Some(v) = sw.swap_usage_bytes {
            swap_f.push(labels(), v as f64, Some(sw.time.unix_millis()));
        }
        if let Some(avail) = sw.swap_available_bytes {
            let used = sw.swap_usage_bytes.unwrap_or(0);
            swap_limit_f.push(labels(), (avail + used) as f64, Some(sw.time.unix_millis()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::summary::{CpuStats, MemoryStats, NodeStats, PodReference, Time};

    #[test]
    fn exposition_has_upstreams_names_labels_and_help() {
        let t = Time::from_unix_nanos(1_700_000_000_500_000_000);
        let cpu = |ns| {
            Some(CpuStats {
                time: t,
                usage_nano_cores: Some(1),
                usage_core_nano_seconds: Some(ns),
            })
        };
        let mem = |b| {
            Some(MemoryStats {
                time: t,
                working_set_bytes: Some(b),
                ..Default::default()
            })
        };
        let s = Summary {
            node: NodeStats {
                node_name: "n".into(),
                cpu: cpu(1_500_000_000),
                memory: mem(14_716_928),
                ..Default::default()
            },
            pods: vec![PodStats {
                pod_ref: PodReference {
                    name: "web".into(),
                    namespace: "default".into(),
                    uid: "u".into(),
                },
                containers: vec![ContainerStats {
                    name: "c".into(),
                    start_time: Time::from_unix_nanos(1_699_999_000_250_000_000),
                    cpu: cpu(2_000_000_000),
                    memory: mem(1024),
                    ..Default::default()
                }],
                cpu: cpu(2_100_000_000),
                memory: mem(2048),
                ..Default::default()
            }],
        };
        let text = render(Some(&s));
        assert_eq!(
            text,
            "# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds\n\
             # TYPE container_cpu_usage_seconds_total counter\n\
             container_cpu_usage_seconds_total{container=\"c\",namespace=\"default\",pod=\"web\"} 2 1700000000500\n\
             # HELP container_memory_working_set_bytes [STABLE] Current working set of the container in bytes\n\
             # TYPE container_memory_working_set_bytes gauge\n\
             container_memory_working_set_bytes{container=\"c\",namespace=\"default\",pod=\"web\"} 1024 1700000000500\n\
             # HELP container_start_time_seconds [STABLE] Start time of the container since unix epoch in seconds\n\
             # TYPE container_start_time_seconds gauge\n\
             container_start_time_seconds{container=\"c\",namespace=\"default\",pod=\"web\"} 1.6999990002499998e+09\n\
             # HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds\n\
             # TYPE node_cpu_usage_seconds_total counter\n\
             node_cpu_usage_seconds_total 1.5 1700000000500\n\
             # HELP node_memory_working_set_bytes [STABLE] Current working set of the node in bytes\n\
             # TYPE node_memory_working_set_bytes gauge\n\
             node_memory_working_set_bytes 1.4716928e+07 1700000000500\n\
             # HELP pod_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the pod in core-seconds\n\
             # TYPE pod_cpu_usage_seconds_total counter\n\
             pod_cpu_usage_seconds_total{namespace=\"default\",pod=\"web\"} 2.1 1700000000500\n\
             # HELP pod_memory_working_set_bytes [STABLE] Current working set of the pod in bytes\n\
             # TYPE pod_memory_working_set_bytes gauge\n\
             pod_memory_working_set_bytes{namespace=\"default\",pod=\"web\"} 2048 1700000000500\n\
             # HELP resource_scrape_error [STABLE] 1 if there was an error while getting container metrics, 0 otherwise\n\
             # TYPE resource_scrape_error gauge\n\
             resource_scrape_error 0\n"
        );
        assert!(render(None).ends_with("resource_scrape_error 1\n"));
    }
}
