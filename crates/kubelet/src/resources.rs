//! Requests and limits: quantities, QoS classes, and the CRI Linux resources (cgroup settings)
//! of a container, as upstream's kubelet computes them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::cri::api;

/// CFS period the kubelet uses (100 ms).
const CPU_PERIOD: i64 = 100_000;
const MIN_SHARES: i64 = 2;
const MIN_QUOTA: i64 = 1_000;

/// The value of a quantity times `scale` (1000 for millicores), rounded up as Kubernetes
/// does; `None` when it does not parse.
pub fn parse_scaled(q: &str, scale: i64) -> Option<i64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let (exp10, exp2): (i32, i32) = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        s if s.starts_with(['e', 'E']) => (s[1..].parse().ok()?, 0),
        _ => return None,
    };
    let value: f64 = num.parse().ok()?;
    let v = value * 10f64.powi(exp10) * 2f64.powi(exp2) * scale as f64;
    // Float noise must not round 0.1 * 1000 up to 101.
    let rounded = (v - 1e-6).ceil();
    (rounded.is_finite() && rounded.abs() < 9.2e18).then_some(rounded as i64)
}

fn get(map: Option<&BTreeMap<String, Quantity>>, name: &str, scale: i64) -> Option<i64> {
    map.and_then(|m| m.get(name))
        .and_then(|q| parse_scaled(&q.0, scale))
}

/// A container's CPU (millicores) and memory (bytes) requests and limits; a missing request
/// defaults to the limit, as the API server does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ContainerResources {
    pub cpu_request: Option<i64>,
    pub cpu_limit: Option<i64>,
    pub memory_request: Option<i64>,
    pub memory_limit: Option<i64>,
}

impl ContainerResources {
    pub fn of(c: &Container) -> Self {
        let r = c.resources.as_ref();
        let limits = r.and_then(|r| r.limits.as_ref());
        let requests = r.and_then(|r| r.requests.as_ref());
        let cpu_limit = get(limits, "cpu", 1000);
        let memory_limit = get(limits, "memory", 1);
        ContainerResources {
            cpu_request: get(requests, "cpu", 1000).or(cpu_limit),
            cpu_limit,
            memory_request: get(requests, "memory", 1).or(memory_limit),
            memory_limit,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl QosClass {
    pub fn as_str(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        }
    }
}

/// Kubernetes' QoS class: BestEffort when no container asks for cpu or memory, Guaranteed when
/// every container has cpu and memory limits equal to its requests, Burstable otherwise.
pub fn qos_class(pod: &Pod) -> QosClass {
    let Some(spec) = pod.spec.as_ref() else {
        return QosClass::BestEffort;
    };
    let all = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    let mut any = false;
    let mut guaranteed = true;
    for c in all {
        let r = ContainerResources::of(c);
        if r.cpu_request.is_some() || r.memory_request.is_some() {
            any = true;
        }
        if r.cpu_limit.is_none()
            || r.memory_limit.is_none()
            || r.cpu_request != r.cpu_limit
            || r.memory_request != r.memory_limit
        {
            guaranteed = false;
        }
    }
    match (any, guaranteed) {
        (false, _) => QosClass::BestEffort,
        (true, true) => QosClass::Guaranteed,
        (true, false) => QosClass::Burstable,
    }
}

/// The pod's cgroup (cgroupfs layout): Guaranteed pods directly under the root, the others
/// under `burstable` / `besteffort`.
pub fn pod_cgroup_parent(root: &str, pod: &Pod, uid: &str) -> String {
    let root = root.trim_end_matches('/');
    match qos_class(pod) {
        QosClass::Guaranteed => format!("{root}/pod{uid}"),
        QosClass::Burstable => format!("{root}/burstable/pod{uid}"),
        QosClass::BestEffort => format!("{root}/besteffort/pod{uid}"),
    }
}

/// oom_score_adj of Guaranteed and node-critical containers (upstream's policy.go).
const GUARANTEED_OOM_SCORE_ADJ: i64 = -997;
const BEST_EFFORT_OOM_SCORE_ADJ: i64 = 1000;
/// Priority from which a pod is critical (upstream's `scheduling.SystemCriticalPriority`).
const SYSTEM_CRITICAL_PRIORITY: i32 = 2_000_000_000;

/// Upstream's `IsCriticalPod`: a static pod, a mirror pod, or one of at least system-critical
/// priority (never evicted by the kubelet, protected from the OOM killer when node-critical).
pub fn is_critical_pod(pod: &Pod) -> bool {
    let annotations = pod.metadata.annotations.as_ref();
    let source = annotations.and_then(|a| a.get("kubernetes.io/config.source"));
    source.is_some_and(|s| s != "api")
        || annotations.is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"))
        || pod
            .spec
            .as_ref()
            .and_then(|s| s.priority)
            .is_some_and(|p| p >= SYSTEM_CRITICAL_PRIORITY)
}

/// Upstream's `IsNodeCriticalPod`: a critical pod of priority class `system-node-critical`.
fn is_node_critical(pod: &Pod) -> bool {
    is_critical_pod(pod)
        && pod
            .spec
            .as_ref()
            .and_then(|s| s.priority_class_name.as_deref())
            == Some("system-node-critical")
}

/// The container's oom_score_adj, as upstream's `GetContainerOOMScoreAdjust`: node-critical
/// and Guaranteed pods are killed last, BestEffort first, Burstable in proportion to the
/// container's memory request (a sidecar as low as the pod's smallest regular container), kept
/// within [3, 999] so the three classes never meet.
fn oom_score_adj(pod: &Pod, c: &Container, memory_capacity: u64) -> i64 {
    if is_node_critical(pod) {
        return GUARANTEED_OOM_SCORE_ADJ;
    }
    match qos_class(pod) {
        QosClass::Guaranteed => return GUARANTEED_OOM_SCORE_ADJ,
        QosClass::BestEffort => return BEST_EFFORT_OOM_SCORE_ADJ,
        QosClass::Burstable => {}
    }
    let cap = i128::from(i64::try_from(memory_capacity).unwrap_or(i64::MAX).max(1));
    let score = |request: Option<i64>| 1000 - 1000 * i128::from(request.unwrap_or(0)) / cap;
    let mut adj = score(ContainerResources::of(c).memory_request);
    let spec = pod.spec.as_ref();
    let sidecar = c.restart_policy.as_deref() == Some("Always")
        && spec.is_some_and(|s| s.init_containers.iter().flatten().any(|i| i.name == c.name));
    if sidecar {
        let min_regular = spec
            .into_iter()
            .flat_map(|s| &s.containers)
            .map(|r| ContainerResources::of(r).memory_request.unwrap_or(0))
            .min();
        if let Some(min) = min_regular {
            adj = adj.min(score(Some(min)));
        }
    }
    let floor = i128::from(1000 + GUARANTEED_OOM_SCORE_ADJ);
    if adj < floor {
        return 1000 + GUARANTEED_OOM_SCORE_ADJ;
    }
    if adj == i128::from(BEST_EFFORT_OOM_SCORE_ADJ) {
        return BEST_EFFORT_OOM_SCORE_ADJ - 1;
    }
    adj as i64
}

/// The CRI resources of a container: cpu shares from the request, CFS quota from the limit,
/// the memory limit, and the QoS oom_score_adj.
pub fn linux_resources(
    pod: &Pod,
    c: &Container,
    memory_capacity: u64,
) -> api::LinuxContainerResources {
    let r = ContainerResources::of(c);
    let cpu_shares = match r.cpu_request {
        Some(m) => (m * 1024 / 1000).max(MIN_SHARES),
        None => MIN_SHARES,
    };
    let (cpu_quota, cpu_period) = match r.cpu_limit {
        Some(m) => ((m * CPU_PERIOD / 1000).max(MIN_QUOTA), CPU_PERIOD),
        None => (0, 0),
    };
    api::LinuxContainerResources {
        cpu_shares,
        cpu_quota,
        cpu_period,
        memory_limit_in_bytes: r.memory_limit.unwrap_or(0),
        oom_score_adj: oom_score_adj(pod, c, memory_capacity),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(containers: serde_json::Value) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": "p"}, "spec": {"containers": containers}}),
        )
        .unwrap_or_default()
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_scaled("100m", 1000), Some(100));
        assert_eq!(parse_scaled("0.1", 1000), Some(100));
        assert_eq!(parse_scaled("2", 1000), Some(2000));
        assert_eq!(parse_scaled("128Mi", 1), Some(128 << 20));
        assert_eq!(parse_scaled("1G", 1), Some(1_000_000_000));
        assert_eq!(parse_scaled("1e3", 1), Some(1000));
        assert_eq!(parse_scaled("x", 1), None);
    }

    #[test]
    fn qos_classes_follow_kubernetes() {
        let be = pod(json!([{"name": "a"}]));
        assert_eq!(qos_class(&be), QosClass::BestEffort);
        let g = pod(json!([{"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]));
        assert_eq!(qos_class(&g), QosClass::Guaranteed);
        let b = pod(json!([{"name": "a", "resources": {"requests": {"cpu": "100m"}}}]));
        assert_eq!(qos_class(&b), QosClass::Burstable);
        assert_eq!(
            pod_cgroup_parent("/kubepods", &b, "u1"),
            "/kubepods/burstable/podu1"
        );
        assert_eq!(pod_cgroup_parent("/kubepods/", &g, "u1"), "/kubepods/podu1");
    }

    #[test]
    fn cri_resources() {
        let p = pod(json!([{"name": "a", "resources": {
            "requests": {"cpu": "250m", "memory": "64Mi"},
            "limits": {"cpu": "500m", "memory": "128Mi"}}}]));
        let c = &p
            .spec
            .as_ref()
            .map(|s| s.containers[0].clone())
            .unwrap_or_default();
        let r = linux_resources(&p, c, 1 << 30);
        assert_eq!(r.cpu_shares, 256);
        assert_eq!(r.cpu_quota, 50_000);
        assert_eq!(r.cpu_period, 100_000);
        assert_eq!(r.memory_limit_in_bytes, 128 << 20);
        assert_eq!(r.oom_score_adj, 1000 - 1000 * 64 / 1024);
        let be = pod(json!([{"name": "a"}]));
        let c = &be
            .spec
            .as_ref()
            .map(|s| s.containers[0].clone())
            .unwrap_or_default();
        let r = linux_resources(&be, c, 1 << 30);
        assert_eq!((r.cpu_shares, r.cpu_quota, r.oom_score_adj), (2, 0, 1000));
    }

    #[test]
    fn oom_score_adj_as_upstream_policy() {
        let gib = 1u64 << 30;
        let first = |p: &Pod| {
            p.spec
                .as_ref()
                .map(|s| s.containers[0].clone())
                .unwrap_or_default()
        };
        // A tiny request scores 999, not BestEffort's 1000; a huge one 3, above Guaranteed.
        let tiny = pod(json!([{"name": "a", "resources": {"requests": {"memory": "1"}}}]));
        assert_eq!(oom_score_adj(&tiny, &first(&tiny), gib), 999);
        let cpu_only = pod(json!([{"name": "a", "resources": {"requests": {"cpu": "1"}}}]));
        assert_eq!(oom_score_adj(&cpu_only, &first(&cpu_only), gib), 999);
        let huge = pod(json!([{"name": "a", "resources": {"requests": {"memory": "2Gi"}}}]));
        assert_eq!(oom_score_adj(&huge, &first(&huge), gib), 3);
        let g = pod(json!([{"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]));
        assert_eq!(oom_score_adj(&g, &first(&g), gib), -997);
        // A static pod of system-node-critical is protected whatever its QoS class.
        let mut critical = pod(json!([{"name": "a"}]));
        critical.metadata.annotations =
            Some([("kubernetes.io/config.source".to_owned(), "file".to_owned())].into());
        if let Some(s) = critical.spec.as_mut() {
            s.priority_class_name = Some("system-node-critical".into());
        }
        assert_eq!(oom_score_adj(&critical, &first(&critical), gib), -997);
        // A sidecar scores no higher than the pod's smallest regular container.
        let with_sidecar: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {
            "initContainers": [{"name": "side", "restartPolicy": "Always",
                "resources": {"requests": {"memory": "64Mi"}}}],
            "containers": [{"name": "a", "resources": {"requests": {"memory": "512Mi"}}}]}}))
        .unwrap_or_default();
        let side = with_sidecar
            .spec
            .as_ref()
            .and_then(|s| s.init_containers.as_ref())
            .map(|i| i[0].clone())
            .unwrap_or_default();
        assert_eq!(oom_score_adj(&with_sidecar, &side, gib), 500);
        assert_eq!(
            oom_score_adj(&with_sidecar, &first(&with_sidecar), gib),
            500
        );
    }
}
