//! What the scheduler knows of each node: the Node, the pods on it (bound or assumed), what
//! they request, the host ports they use and the images the node has.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Container, Node, Pod};

use crate::quantity;

/// Requests for containers that set none, counted by the scoring plugins only (Kubernetes'
/// non-zero defaults), so a node full of request-less pods does not look empty.
pub const DEFAULT_MILLI_CPU: i64 = 100;
pub const DEFAULT_MEMORY: i64 = 200 * 1024 * 1024;

/// An amount of every resource the scheduler accounts for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    pub pods: i64,
    /// Extended resources (`example.com/gpu`, hugepages-*), in units.
    pub scalar: BTreeMap<String, i64>,
}

impl Resources {
    fn add_named(&mut self, name: &str, q: &str) {
        match name {
            "cpu" => self.milli_cpu += quantity::milli_cpu(q),
            "memory" => self.memory += quantity::value(q),
            "ephemeral-storage" => self.ephemeral_storage += quantity::value(q),
            "pods" => self.pods += quantity::value(q),
            other => *self.scalar.entry(other.to_string()).or_default() += quantity::value(q),
        }
    }

    pub fn from_list(
        list: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
    ) -> Resources {
        let mut r = Resources::default();
        for (k, v) in list.into_iter().flatten() {
            r.add_named(k, &v.0);
        }
        r
    }

    pub fn add(&mut self, o: &Resources) {
        self.milli_cpu += o.milli_cpu;
        self.memory += o.memory;
        self.ephemeral_storage += o.ephemeral_storage;
        self.pods += o.pods;
        for (k, v) in &o.scalar {
            *self.scalar.entry(k.clone()).or_default() += v;
        }
    }

    pub fn sub(&mut self, o: &Resources) {
        self.milli_cpu -= o.milli_cpu;
        self.memory -= o.memory;
        self.ephemeral_storage -= o.ephemeral_storage;
        self.pods -= o.pods;
        for (k, v) in &o.scalar {
            *self.scalar.entry(k.clone()).or_default() -= v;
        }
    }

    /// Each resource the larger of the two.
    fn max_with(&mut self, o: &Resources) {
        self.milli_cpu = self.milli_cpu.max(o.milli_cpu);
        self.memory = self.memory.max(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(o.ephemeral_storage);
        for (k, v) in &o.scalar {
            let e = self.scalar.entry(k.clone()).or_default();
            *e = (*e).max(*v);
        }
    }
}

fn container_requests(c: &Container) -> Resources {
    Resources::from_list(c.resources.as_ref().and_then(|r| r.requests.as_ref()))
}

/// What a pod requests, as Kubernetes computes it: the sum of its containers (and of its
/// sidecar init containers, which keep running), or the largest single init container plus
/// the sidecars started before it, whichever is more; plus the pod's overhead.
/// `non_zero` counts request-less containers at the scoring defaults.
pub fn pod_requests(pod: &Pod, non_zero: bool) -> Resources {
    let Some(spec) = pod.spec.as_ref() else {
        return Resources::default();
    };
    let with_defaults = |c: &Container| {
        let mut r = container_requests(c);
        if non_zero {
            let req = c.resources.as_ref().and_then(|r| r.requests.as_ref());
            if !req.is_some_and(|m| m.contains_key("cpu")) {
                r.milli_cpu = DEFAULT_MILLI_CPU;
            }
            if !req.is_some_and(|m| m.contains_key("memory")) {
                r.memory = DEFAULT_MEMORY;
            }
        }
        r
    };
    let mut total = Resources::default();
    for c in &spec.containers {
        total.add(&with_defaults(c));
    }
    let mut sidecars = Resources::default();
    let mut init_peak = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let r = with_defaults(c);
        if c.restart_policy.as_deref() == Some("Always") {
            sidecars.add(&r);
            total.add(&r);
            init_peak.max_with(&sidecars);
        } else {
            let mut during = sidecars.clone();
            during.add(&r);
            init_peak.max_with(&during);
        }
    }
    total.max_with(&init_peak);
    if let Some(o) = spec.overhead.as_ref() {
        total.add(&Resources::from_list(Some(o)));
    }
    total.pods = 1;
    total
}

/// A host port a pod uses: (protocol, hostIP, port).
pub type HostPort = (String, String, i32);

pub fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let hp = p.host_port.filter(|h| *h > 0)?;
            Some((
                p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                p.host_ip.clone().unwrap_or_else(|| "0.0.0.0".into()),
                hp,
            ))
        })
        .collect()
}

/// Whether two host ports collide (0.0.0.0 collides with every address).
pub fn ports_conflict(a: &HostPort, b: &HostPort) -> bool {
    a.0 == b.0 && a.2 == b.2 && (a.1 == b.1 || a.1 == "0.0.0.0" || b.1 == "0.0.0.0")
}

/// A pod as the scheduler keeps it.
#[derive(Clone, Debug)]
pub struct PodInfo {
    pub pod: Arc<Pod>,
    pub requests: Resources,
    pub non_zero: Resources,
    pub ports: Vec<HostPort>,
}

impl PodInfo {
    pub fn new(pod: Arc<Pod>) -> Self {
        PodInfo {
            requests: pod_requests(&pod, false),
            non_zero: pod_requests(&pod, true),
            ports: host_ports(&pod),
            pod,
        }
    }

    pub fn key(&self) -> String {
        pod_key(&self.pod)
    }

    pub fn priority(&self) -> i32 {
        priority(&self.pod)
    }

    pub fn has_affinity(&self) -> bool {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.affinity.as_ref())
            .is_some_and(|a| a.pod_affinity.is_some() || a.pod_anti_affinity.is_some())
    }
}

pub fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

pub fn priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub node: Arc<Node>,
    pub pods: Vec<PodInfo>,
    pub requested: Resources,
    pub non_zero_requested: Resources,
    pub allocatable: Resources,
    pub used_ports: Vec<HostPort>,
    /// Pods here with pod (anti-)affinity: InterPodAffinity skips nodes without any.
    pub affinity_pods: usize,
    pub images: HashSet<String>,
    /// (image name, size in bytes) the node reports.
    pub image_sizes: BTreeMap<String, i64>,
}

impl NodeInfo {
    pub fn new(node: Arc<Node>) -> Self {
        let mut n = NodeInfo {
            node: node.clone(),
            pods: Vec::new(),
            requested: Resources::default(),
            non_zero_requested: Resources::default(),
            allocatable: Resources::default(),
            used_ports: Vec::new(),
            affinity_pods: 0,
            images: HashSet::new(),
            image_sizes: BTreeMap::new(),
        };
        n.set_node(node);
        n
    }

    pub fn set_node(&mut self, node: Arc<Node>) {
        let status = node.status.as_ref();
        self.allocatable = Resources::from_list(
            status
                .and_then(|s| s.allocatable.as_ref())
                .or(status.and_then(|s| s.capacity.as_ref())),
        );
        self.images.clear();
        self.image_sizes.clear();
        for img in status.and_then(|s| s.images.as_ref()).into_iter().flatten() {
            for name in img.names.iter().flatten() {
                self.images.insert(name.clone());
                self.image_sizes
                    .insert(name.clone(), img.size_bytes.unwrap_or(0));
            }
        }
        self.node = node;
    }

    pub fn name(&self) -> &str {
        self.node.metadata.name.as_deref().unwrap_or_default()
    }

    pub fn labels(&self) -> &BTreeMap<String, String> {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        self.node.metadata.labels.as_ref().unwrap_or(&EMPTY)
    }

    pub fn add_pod(&mut self, p: PodInfo) {
        self.requested.add(&p.requests);
        self.non_zero_requested.add(&p.non_zero);
        self.used_ports.extend(p.ports.iter().cloned());
        self.affinity_pods += usize::from(p.has_affinity());
        self.pods.push(p);
    }

    pub fn remove_pod(&mut self, key: &str) -> Option<PodInfo> {
        let i = self.pods.iter().position(|p| p.key() == key)?;
        let p = self.pods.swap_remove(i);
        self.requested.sub(&p.requests);
        self.non_zero_requested.sub(&p.non_zero);
        self.affinity_pods -= usize::from(p.has_affinity());
        for port in &p.ports {
            if let Some(j) = self.used_ports.iter().position(|u| u == port) {
                self.used_ports.swap_remove(j);
            }
        }
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn init_containers_count_as_kubernetes_counts_them() {
        let p = pod(serde_json::json!({"spec": {
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "100Mi"}}},
                {"name": "b", "resources": {"requests": {"cpu": "200m"}}}
            ],
            "initContainers": [
                {"name": "i", "resources": {"requests": {"cpu": "500m", "memory": "50Mi"}}}
            ],
            "overhead": {"cpu": "10m"}
        }}));
        let r = pod_requests(&p, false);
        assert_eq!(r.milli_cpu, 510); // the init container's 500m beats 300m
        assert_eq!(r.memory, 100 * 1024 * 1024);
        assert_eq!(r.pods, 1);
        // Scoring counts request-less containers at 100m / 200Mi.
        let nz = pod_requests(&p, true);
        assert_eq!(nz.memory, 300 * 1024 * 1024);
        // A sidecar (restartPolicy Always) runs alongside the containers.
        let p = pod(serde_json::json!({"spec": {
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "100m"}}}],
            "initContainers": [
                {"name": "s", "restartPolicy": "Always", "resources": {"requests": {"cpu": "50m"}}}
            ]
        }}));
        assert_eq!(pod_requests(&p, false).milli_cpu, 150);
    }

    #[test]
    fn host_port_conflicts() {
        let any = ("TCP".to_string(), "0.0.0.0".to_string(), 80);
        let one = ("TCP".to_string(), "10.0.0.1".to_string(), 80);
        let udp = ("UDP".to_string(), "0.0.0.0".to_string(), 80);
        assert!(ports_conflict(&any, &one));
        assert!(!ports_conflict(&any, &udp));
    }
}
