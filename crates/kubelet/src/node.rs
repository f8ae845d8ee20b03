//! The Node: registration (labels, capacity, addresses, nodeInfo, a pod CIDR), its status
//! every `node_status_update_frequency`, and the heartbeat Lease in `kube-node-lease`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
    NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tracing::{debug, info, warn};

use crate::config::{KUBELET_VERSION, KubeletConfig, NODE_LEASE_NAMESPACE};
use crate::cri::RuntimeClient;
use crate::machine;
use crate::status::FIELD_MANAGER;

fn params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}

/// What the node reports that does not change while the kubelet runs.
#[derive(Clone, Debug)]
pub struct NodeFacts {
    pub host_ip: String,
    pub cpus: usize,
    pub memory: u64,
    pub ephemeral_storage: u64,
    /// `containerd://1.6.20`
    pub runtime_version: String,
}

impl NodeFacts {
    pub fn gather(cfg: &KubeletConfig, runtime_name: &str, runtime_version: &str) -> Self {
        NodeFacts {
            host_ip: cfg.node_ip.unwrap_or_else(machine::node_ip).to_string(),
            cpus: machine::cpus(),
            memory: machine::memory_bytes(),
            ephemeral_storage: machine::filesystem_bytes(&cfg.data_dir),
            runtime_version: format!("{runtime_name}://{runtime_version}"),
        }
    }
}

fn labels(cfg: &KubeletConfig) -> BTreeMap<String, String> {
    let mut l = BTreeMap::from([
        ("kubernetes.io/hostname".to_owned(), cfg.node_name.clone()),
        ("kubernetes.io/os".to_owned(), "linux".to_owned()),
        ("kubernetes.io/arch".to_owned(), machine::arch().to_owned()),
        ("beta.kubernetes.io/os".to_owned(), "linux".to_owned()),
        (
            "beta.kubernetes.io/arch".to_owned(),
            machine::arch().to_owned(),
        ),
    ]);
    l.extend(cfg.node_labels.iter().cloned());
    l
}

/// Creates the Node or updates the one there (labels), and gives it a pod CIDR if the API has
/// none for it. Returns the Node as registered.
pub async fn register(client: &kube::Client, cfg: &KubeletConfig) -> anyhow::Result<Node> {
    let nodes: Api<Node> = Api::all(client.clone());
    let name = &cfg.node_name;
    let node = Node {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(labels(cfg)),
            annotations: Some(BTreeMap::from([(
                "node.alpha.kubernetes.io/ttl".to_owned(),
                "0".to_owned(),
            )])),
            ..Default::default()
        },
        spec: Some(NodeSpec::default()),
        status: None,
    };
    let mut node = match nodes.create(&PostParams::default(), &node).await {
        Ok(n) => {
            info!(node = %name, "node registered");
            n
        }
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let patch = json!({"metadata": {"labels": labels(cfg)}});
            let n = nodes
                .patch(name, &params(), &Patch::Merge(patch))
                .await
                .with_context(|| format!("updating node {name}"))?;
            info!(node = %name, "node already registered; updated");
            n
        }
        Err(e) => return Err(e).with_context(|| format!("registering node {name}")),
    };
    // The controller manager's node IPAM controller assigns the pod CIDR; wait for it, as
    // upstream's kubelet does.
    let mut waited = false;
    while pod_cidr(&node).is_none() {
        if !waited {
            info!(node = %name, "waiting for the node's pod CIDR (the controller manager's node IPAM controller assigns it)");
            waited = true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        node = nodes
            .get(name)
            .await
            .with_context(|| format!("reading node {name}"))?;
    }
    Ok(node)
}

/// The node's pod CIDR.
pub fn pod_cidr(node: &Node) -> Option<&str> {
    node.spec
        .as_ref()
        .and_then(|s| s.pod_cidr.as_deref())
        .filter(|c| !c.is_empty())
}

/// Runtime readiness for the Ready condition: `Ok` or why not.
async fn runtime_ready(cri: &RuntimeClient) -> Result<(), String> {
    let st = cri
        .status(false)
        .await
        .map_err(|e| format!("container runtime is down: {e}"))?;
    let conds = st.status.map(|s| s.conditions).unwrap_or_default();
    for want in ["RuntimeReady", "NetworkReady"] {
        match conds.iter().find(|c| c.r#type == want) {
            Some(c) if c.status => {}
            Some(c) => {
                return Err(format!(
                    "container runtime {}: {want}=false reason:{} message:{}",
                    if want == "NetworkReady" {
                        "network not ready"
                    } else {
                        "not ready"
                    },
                    c.reason,
                    c.message
                ));
            }
            None => return Err(format!("container runtime status has no {want} condition")),
        }
    }
    Ok(())
}

fn quantity(v: impl ToString) -> Quantity {
    Quantity(v.to_string())
}

/// The node's status now; conditions keep their transition times from `old` while unchanged.
pub fn node_status(
    cfg: &KubeletConfig,
    facts: &NodeFacts,
    ready: &Result<(), String>,
    old: Option<&NodeStatus>,
    now: Timestamp,
) -> NodeStatus {
    let now = Time(Timestamp::from_second(now.as_second()).unwrap_or(now));
    let cond = |type_: &str, status: bool, reason: &str, message: String| {
        let s = if status { "True" } else { "False" };
        let since = old
            .and_then(|o| o.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == type_))
            .filter(|c| c.status == s)
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| now.clone());
        NodeCondition {
            type_: type_.to_owned(),
            status: s.to_owned(),
            reason: Some(reason.to_owned()),
            message: Some(message),
            last_heartbeat_time: Some(now.clone()),
            last_transition_time: Some(since),
        }
    };
    let resources = BTreeMap::from([
        ("cpu".to_owned(), quantity(facts.cpus)),
        (
            "memory".to_owned(),
            quantity(format!("{}Ki", facts.memory / 1024)),
        ),
        ("pods".to_owned(), quantity(cfg.max_pods)),
        (
            "ephemeral-storage".to_owned(),
            quantity(facts.ephemeral_storage),
        ),
    ]);
    let ready_cond = match ready {
        Ok(()) => cond(
            "Ready",
            true,
            "KubeletReady",
            "kubelet is posting ready status".into(),
        ),
        Err(why) => cond("Ready", false, "KubeletNotReady", why.clone()),
    };
    NodeStatus {
        capacity: Some(resources.clone()),
        allocatable: Some(resources),
        conditions: Some(vec![
            cond(
                "MemoryPressure",
                false,
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available".into(),
            ),
            cond(
                "DiskPressure",
                false,
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure".into(),
            ),
            cond(
                "PIDPressure",
                false,
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available".into(),
            ),
            ready_cond,
        ]),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: facts.host_ip.clone(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: cfg.hostname.clone(),
            },
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: cfg.kubelet_port,
            }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: machine::arch().into(),
            boot_id: machine::boot_id(),
            container_runtime_version: facts.runtime_version.clone(),
            kernel_version: machine::kernel_version(),
            kube_proxy_version: String::new(),
            kubelet_version: KUBELET_VERSION.into(),
            machine_id: machine::machine_id(),
            operating_system: "linux".into(),
            os_image: machine::os_image(),
            system_uuid: machine::system_uuid(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A status without heartbeat times, to see whether anything else changed.
fn without_heartbeats(s: &NodeStatus) -> Value {
    let mut v = serde_json::to_value(s).unwrap_or(Value::Null);
    if let Some(conds) = v.get_mut("conditions").and_then(Value::as_array_mut) {
        for c in conds {
            if let Some(o) = c.as_object_mut() {
                o.remove("lastHeartbeatTime");
            }
        }
    }
    v
}

/// Writes the node status now and then until the process ends: when it changed, and at least
/// every `node_status_report_frequency`.
pub async fn run_status(
    client: kube::Client,
    cfg: KubeletConfig,
    cri: RuntimeClient,
    facts: NodeFacts,
) {
    let nodes: Api<Node> = Api::all(client.clone());
    let mut last: Option<(NodeStatus, Instant)> = None;
    loop {
        let ready = runtime_ready(&cri).await;
        let old = last.as_ref().map(|(s, _)| s);
        let st = node_status(&cfg, &facts, &ready, old, Timestamp::now());
        let due = match &last {
            None => true,
            Some((prev, at)) => {
                without_heartbeats(prev) != without_heartbeats(&st)
                    || at.elapsed() >= cfg.node_status_report_frequency
            }
        };
        if due {
            let patch = json!({"status": st});
            match nodes
                .patch_status(&cfg.node_name, &params(), &Patch::Merge(patch))
                .await
            {
                Ok(_) => {
                    if let Err(why) = &ready {
                        debug!(node = %cfg.node_name, %why, "node not ready");
                    }
                    last = Some((st, Instant::now()));
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {
                    // Someone deleted the Node: register again.
                    warn!(node = %cfg.node_name, "node object deleted; registering again");
                    if let Err(e) = register(&client, &cfg).await {
                        warn!(error = %format!("{e:#}"), "registering the node");
                    }
                    last = None;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                Err(e) => warn!(node = %cfg.node_name, error = %e, "updating node status"),
            }
        }
        tokio::time::sleep(cfg.node_status_update_frequency).await;
    }
}

/// Renews the node's Lease every quarter of its duration (10 s of 40 s), creating it if
/// missing, until the process ends. On failure, retries sooner (200 ms doubling to 7 s).
pub async fn run_lease(client: kube::Client, cfg: KubeletConfig) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), NODE_LEASE_NAMESPACE);
    let nodes: Api<Node> = Api::all(client);
    let renew = cfg.node_lease_duration / 4;
    let mut retry = Duration::from_millis(200);
    loop {
        match renew_lease(&leases, &nodes, &cfg).await {
            Ok(()) => {
                retry = Duration::from_millis(200);
                tokio::time::sleep(renew).await;
            }
            Err(e) => {
                warn!(node = %cfg.node_name, error = %format!("{e:#}"), "renewing the node lease");
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(Duration::from_secs(7));
            }
        }
    }
}

async fn renew_lease(
    leases: &Api<Lease>,
    nodes: &Api<Node>,
    cfg: &KubeletConfig,
) -> anyhow::Result<()> {
    let name = &cfg.node_name;
    let now = MicroTime(Timestamp::now());
    let duration = i32::try_from(cfg.node_lease_duration.as_secs()).unwrap_or(40);
    match leases.get_opt(name).await.context("reading the lease")? {
        Some(mut lease) => {
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            spec.holder_identity = Some(name.clone());
            spec.lease_duration_seconds = Some(duration);
            spec.renew_time = Some(now);
            // Replace carries the resourceVersion: a concurrent writer makes it fail, not lost.
            leases
                .replace(name, &PostParams::default(), &lease)
                .await
                .context("renewing the lease")?;
        }
        None => {
            // Owned by the Node, so deleting the Node deletes its Lease.
            let owner = nodes.get(name).await.context("reading the node")?;
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(NODE_LEASE_NAMESPACE.into()),
                    owner_references: Some(vec![OwnerReference {
                        api_version: "v1".into(),
                        kind: "Node".into(),
                        name: name.clone(),
                        uid: owner.metadata.uid.unwrap_or_default(),
                        ..Default::default()
                    }]),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(name.clone()),
                    lease_duration_seconds: Some(duration),
                    renew_time: Some(now),
                    ..Default::default()
                }),
            };
            leases
                .create(&PostParams::default(), &lease)
                .await
                .context("creating the lease")?;
            info!(node = %name, "node lease created");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_reports_the_machine_and_keeps_transition_times() {
        let cfg = KubeletConfig::new(Some("n1"), "/");
        let facts = NodeFacts {
            host_ip: "192.0.2.1".into(),
            cpus: 2,
            memory: 4 << 30,
            ephemeral_storage: 10 << 30,
            runtime_version: "containerd://1.6.20".into(),
        };
        let t0 = Timestamp::from_second(1_700_000_000).unwrap_or(Timestamp::UNIX_EPOCH);
        let t1 = Timestamp::from_second(1_700_000_010).unwrap_or(Timestamp::UNIX_EPOCH);
        let s0 = node_status(&cfg, &facts, &Ok(()), None, t0);
        let s1 = node_status(&cfg, &facts, &Ok(()), Some(&s0), t1);
        assert_eq!(without_heartbeats(&s0), without_heartbeats(&s1));
        let cap = s1.capacity.clone().unwrap_or_default();
        assert_eq!(cap.get("cpu"), Some(&Quantity("2".into())));
        assert_eq!(cap.get("memory"), Some(&Quantity("4194304Ki".into())));
        assert_eq!(cap.get("pods"), Some(&Quantity("110".into())));
        let info = s1.node_info.clone().unwrap_or_default();
        assert_eq!(info.kubelet_version, "v1.33.0");
        assert_eq!(info.container_runtime_version, "containerd://1.6.20");
        let s2 = node_status(
            &cfg,
            &facts,
            &Err("network not ready".into()),
            Some(&s1),
            t1,
        );
        assert_ne!(without_heartbeats(&s1), without_heartbeats(&s2));
        let ready = s2
            .conditions
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_ == "Ready");
        assert_eq!(ready.map(|c| c.status), Some("False".to_owned()));
    }
}
