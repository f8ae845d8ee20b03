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

/// The container's oom_score_adj by QoS: Guaranteed pods are killed last, BestEffort first,
/// Burstable in proportion to their memory request.
fn oom_score_adj(qos: QosClass, memory_request: Option<i64>, memory_capacity: u64) -> i64 {
    match qos {
        QosClass::Guaranteed => -997,
        QosClass::BestEffort => 1000,
        QosClass::Burstable => {
            let cap = i64::try_from(memory_capacity).unwrap_or(i64::MAX).max(1);
            let req = memory_request.unwrap_or(0);
            let score = 1000 - (1000i128 * i128::from(req) / i128::from(cap)) as i64;
            score.clamp(2, 999)
        }
    }
}

/// The CRI resources of a container: cpu shares from the request, CFS quota from the limit,
/// the memory limit, and the QoS oom_score_adj.
pub fn linux_resources(
    pod: &Pod,
    c: &Container,
    memory_capacity: u64,
) -> api::LinuxContainerResources {
    let r = ContainerResources::of(c);
    let qos = qos_class(pod);
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
        oom_score_adj: oom_score_adj(qos, r.memory_request, memory_capacity),
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
}
