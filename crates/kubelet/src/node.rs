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
use common::quantity;

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
    /// The pressure conditions the eviction manager sets (shared by every clone).
    pub pressure: crate::eviction::Pressure,
}

impl NodeFacts {
    pub fn gather(cfg: &KubeletConfig, runtime_name: &str, runtime_version: &str) -> Self {
        NodeFacts {
            host_ip: cfg.node_ip.unwrap_or_else(machine::node_ip).to_string(),
            cpus: machine::cpus(),
            memory: machine::memory_bytes(),
            ephemeral_storage: machine::filesystem_bytes(&cfg.data_dir),
            runtime_version: format!("{runtime_name}://{runtime_version}"),
            pressure: Default::default(),
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

/// The annotations a new Node gets: upstream's TTL, and where local-path volumes go here.
fn annotations(cfg: &KubeletConfig) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("node.alpha.kubernetes.io/ttl".to_owned(), "0".to_owned()),
        (
            crate::volumes::local_storage::NODE_STORAGE_DIR_ANNOTATION.to_owned(),
            cfg.local_storage_dir.to_string_lossy().into_owned(),
        ),
    ])
}

/// Creates the Node or updates the one there (labels, the storage annotation), and gives it a pod CIDR if the API has
/// none for it. Returns the Node as registered.
pub async fn register(client: &kube::Client, cfg: &KubeletConfig) -> anyhow::Result<Node> {
    let nodes: Api<Node> = Api::all(client.clone());
    let name = &cfg.node_name;
    let node = Node {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(labels(cfg)),
            annotations: Some(annotations(cfg)),
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
            let patch =
                json!({"metadata": {"labels": labels(cfg), "annotations": annotations(cfg)}});
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

/// The node's status now, as upstream's kubelet computes it over the Node it read
/// (`current`, the API server's status): capacity, allocatable, addresses, daemon endpoints,
/// nodeInfo and the MemoryPressure / DiskPressure / PIDPressure / Ready conditions are the
/// kubelet's; every other field and condition of `current` is kept. A condition keeps its
/// transition time from `current` while its status is the same there (so one someone else
/// set to Unknown transitions now).
pub fn node_status(
    cfg: &KubeletConfig,
    facts: &NodeFacts,
    ready: &Result<(), String>,
    current: Option<&NodeStatus>,
    now: Timestamp,
) -> NodeStatus {
    let now = Time(Timestamp::from_second(now.as_second()).unwrap_or(now));
    let cond = |type_: &str, status: bool, reason: &str, message: String| {
        let s = if status { "True" } else { "False" };
        let since = current
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
    // The eviction manager's conditions, with upstream's reasons and messages.
    let pressure_cond = |type_: &str, yes: (&str, &str), no: (&str, &str)| {
        let on = facts.pressure.is(type_);
        let (reason, message) = if on { yes } else { no };
        cond(type_, on, reason, message.into())
    };
    let ready_cond = match ready {
        Ok(()) => cond(
            "Ready",
            true,
            "KubeletReady",
            "kubelet is posting ready status".into(),
        ),
        Err(why) => cond("Ready", false, "KubeletNotReady", why.clone()),
    };
    let ours = [
        pressure_cond(
            "MemoryPressure",
            (
                "KubeletHasInsufficientMemory",
                "kubelet has insufficient memory available",
            ),
            (
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
        ),
        pressure_cond(
            "DiskPressure",
            ("KubeletHasDiskPressure", "kubelet has disk pressure"),
            ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ),
        pressure_cond(
            "PIDPressure",
            (
                "KubeletHasInsufficientPID",
                "kubelet has insufficient PID available",
            ),
            (
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            ),
        ),
        ready_cond,
    ];
    let mut status = current.cloned().unwrap_or_default();
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    for c in ours {
        match conditions.iter_mut().find(|x| x.type_ == c.type_) {
            Some(x) => *x = c,
            None => conditions.push(c),
        }
    }
    status.capacity = Some(resources.clone());
    status.allocatable = Some(resources);
    NodeStatus {
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
        ..status
    }
}

/// A status as upstream's nodeStatusHasChanged compares it: without heartbeat times,
/// conditions in type order, quantities by value, and empty lists, maps and strings the
/// same as absent ones (apimachinery's semantic equality).
fn comparable(s: &NodeStatus) -> Value {
    fn prune(v: &mut Value) -> bool {
        match v {
            Value::Null => false,
            Value::String(s) => !s.is_empty(),
            Value::Array(a) => {
                a.retain_mut(prune);
                !a.is_empty()
            }
            Value::Object(o) => {
                o.retain(|_, v| prune(v));
                !o.is_empty()
            }
            _ => true,
        }
    }
    let mut v = serde_json::to_value(s).unwrap_or(Value::Null);
    if let Some(conds) = v.get_mut("conditions").and_then(Value::as_array_mut) {
        for c in conds.iter_mut() {
            if let Some(o) = c.as_object_mut() {
                o.remove("lastHeartbeatTime");
            }
        }
        conds.sort_by(|a, b| a["type"].as_str().cmp(&b["type"].as_str()));
    }
    for list in ["capacity", "allocatable"] {
        if let Some(o) = v.get_mut(list).and_then(Value::as_object_mut) {
            for q in o.values_mut() {
                if let Some(milli) = q.as_str().and_then(|s| quantity::parse_scaled(s, 1000)) {
                    *q = json!(milli);
                }
            }
        }
    }
    prune(&mut v);
    v
}

/// Whether the kubelet writes `computed` over `current`, the API server's status
/// (upstream's tryUpdateNodeStatus): when they differ other than in heartbeat times — say
/// the node lifecycle controller set the conditions to Unknown — or when
/// `report_frequency` passed since the last write (`None`: never written).
fn status_update_due(
    current: &NodeStatus,
    computed: &NodeStatus,
    last_report: Option<Instant>,
    report_frequency: Duration,
    now: Instant,
) -> bool {
    comparable(current) != comparable(computed)
        || last_report.is_none_or(|at| now.saturating_duration_since(at) >= report_frequency)
}

/// The JSON merge patch (RFC 7386) that turns `old` into `new`: changed members, nulls
/// for removed ones, nothing for equal ones.
fn merge_diff(old: &Value, new: &Value) -> Value {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut patch = serde_json::Map::new();
            for (k, nv) in n {
                match o.get(k) {
                    Some(ov) if ov == nv => {}
                    Some(ov @ Value::Object(_)) if nv.is_object() => {
                        patch.insert(k.clone(), merge_diff(ov, nv));
                    }
                    _ => {
                        patch.insert(k.clone(), nv.clone());
                    }
                }
            }
            for k in o.keys().filter(|k| !n.contains_key(*k)) {
                patch.insert(k.clone(), Value::Null);
            }
            Value::Object(patch)
        }
        _ => new.clone(),
    }
}

/// How many times one status update is tried before waiting for the next period
/// (upstream's nodeStatusUpdateRetry).
const NODE_STATUS_UPDATE_RETRY: usize = 5;

fn is_not_found(e: &anyhow::Error) -> bool {
    e.chain().any(
        |c| matches!(c.downcast_ref::<kube::Error>(), Some(kube::Error::Api(s)) if s.code == 404),
    )
}

/// One status update: reads the Node, computes the status over it, and writes it when due.
async fn try_update_node_status(
    nodes: &Api<Node>,
    cfg: &KubeletConfig,
    facts: &NodeFacts,
    ready: &Result<(), String>,
    last_report: &mut Option<Instant>,
) -> anyhow::Result<()> {
    let name = &cfg.node_name;
    let node = nodes
        .get(name)
        .await
        .with_context(|| format!("reading node {name}"))?;
    let current = node.status.clone().unwrap_or_default();
    let st = node_status(cfg, facts, ready, Some(&current), Timestamp::now());
    let now = Instant::now();
    if !status_update_due(
        &current,
        &st,
        *last_report,
        cfg.node_status_report_frequency,
        now,
    ) {
        return Ok(());
    }
    // Only what changed, as upstream's two-way patch (so fields other components own, say
    // volumesAttached, are left alone); a changed conditions list replaces the one read,
    // so the resourceVersion makes a concurrent change a conflict, retried on a fresh
    // read, rather than lost.
    let patch = json!({
        "metadata": {"resourceVersion": node.metadata.resource_version},
        "status": merge_diff(
            &serde_json::to_value(&current).context("encoding the node status")?,
            &serde_json::to_value(&st).context("encoding the node status")?,
        ),
    });
    nodes
        .patch_status(name, &params(), &Patch::Merge(patch))
        .await
        .with_context(|| format!("patching the status of node {name}"))?;
    *last_report = Some(now);
    if let Err(why) = ready {
        debug!(node = %name, %why, "node not ready");
    }
    Ok(())
}

/// Keeps the node status up to date until the process ends, as upstream's kubelet: every
/// `node_status_update_frequency` it compares the status with the Node the API server has
/// and writes it when they differ or `node_status_report_frequency` passed (the Lease is
/// the frequent heartbeat).
pub async fn run_status(
    client: kube::Client,
    cfg: KubeletConfig,
    cri: RuntimeClient,
    facts: NodeFacts,
) {
    let nodes: Api<Node> = Api::all(client.clone());
    let mut last_report: Option<Instant> = None;
    loop {
        let ready = runtime_ready(&cri).await;
        for attempt in 1..=NODE_STATUS_UPDATE_RETRY {
            match try_update_node_status(&nodes, &cfg, &facts, &ready, &mut last_report).await {
                Ok(()) => break,
                Err(e) if is_not_found(&e) => {
                    // Someone deleted the Node: register again.
                    warn!(node = %cfg.node_name, "node object deleted; registering again");
                    if let Err(e) = register(&client, &cfg).await {
                        warn!(error = %format!("{e:#}"), "registering the node");
                    }
                    last_report = None;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => warn!(node = %cfg.node_name, attempt, error = %format!("{e:#}"),
                    "updating node status"),
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

    fn facts() -> NodeFacts {
        NodeFacts {
            host_ip: "192.0.2.1".into(),
            cpus: 2,
            memory: 4 << 30,
            ephemeral_storage: 10 << 30,
            runtime_version: "containerd://1.6.20".into(),
            pressure: Default::default(),
        }
    }

    #[test]
    fn pressure_conditions_follow_the_eviction_manager() {
        let cfg = KubeletConfig::new(Some("n"), "/tmp/x");
        let facts = facts();
        let s0 = node_status(&cfg, &facts, &Ok(()), None, at(1_700_000_000));
        assert_eq!(condition(&s0, "MemoryPressure").status, "False");
        facts.pressure.set_for_test(&["MemoryPressure"]);
        let s1 = node_status(&cfg, &facts, &Ok(()), Some(&s0), at(1_700_000_010));
        let m = condition(&s1, "MemoryPressure");
        assert_eq!(m.status, "True");
        assert_eq!(m.reason.as_deref(), Some("KubeletHasInsufficientMemory"));
        assert_eq!(condition(&s1, "DiskPressure").status, "False");
    }

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn condition<'a>(s: &'a NodeStatus, type_: &str) -> &'a NodeCondition {
        let found = s.conditions.iter().flatten().find(|c| c.type_ == type_);
        found.unwrap_or_else(|| panic!("no {type_} condition"))
    }

    #[test]
    fn status_reports_the_machine_and_keeps_transition_times() {
        let cfg = KubeletConfig::new(Some("n1"), "/");
        let facts = facts();
        let s0 = node_status(&cfg, &facts, &Ok(()), None, at(1_700_000_000));
        let s1 = node_status(&cfg, &facts, &Ok(()), Some(&s0), at(1_700_000_010));
        assert_eq!(comparable(&s0), comparable(&s1));
        assert_ne!(
            condition(&s0, "Ready").last_heartbeat_time,
            condition(&s1, "Ready").last_heartbeat_time
        );
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
            at(1_700_000_010),
        );
        assert_ne!(comparable(&s1), comparable(&s2));
        assert_eq!(condition(&s2, "Ready").status, "False");
    }

    #[test]
    fn status_is_written_when_the_api_server_has_another_or_the_report_is_due() {
        let cfg = KubeletConfig::new(Some("n1"), "/");
        let facts = facts();
        let report = Duration::from_secs(300);
        let t0 = Instant::now();
        let later = |secs| t0 + Duration::from_secs(secs);
        // What the kubelet wrote at t0, as the API server gives it back (another
        // component's condition and a quantity in another form included).
        let mut written = node_status(&cfg, &facts, &Ok(()), None, at(1_700_000_000));
        written
            .conditions
            .get_or_insert_with(Vec::new)
            .push(NodeCondition {
                type_: "NetworkUnavailable".into(),
                status: "False".into(),
                reason: Some("RouteCreated".into()),
                ..Default::default()
            });
        written.conditions.get_or_insert_with(Vec::new).reverse();
        if let Some(cap) = written.capacity.as_mut() {
            cap.insert("memory".into(), Quantity("4Gi".into()));
        }

        // Ten seconds on, nothing but the heartbeats moved: nothing to write.
        let next = node_status(&cfg, &facts, &Ok(()), Some(&written), at(1_700_000_010));
        assert_eq!(
            condition(&next, "NetworkUnavailable").reason.as_deref(),
            Some("RouteCreated")
        );
        assert!(!status_update_due(
            &written,
            &next,
            Some(t0),
            report,
            later(10)
        ));
        // ... until the report frequency passed, or when never written by this process.
        assert!(status_update_due(
            &written,
            &next,
            Some(t0),
            report,
            later(300)
        ));
        assert!(status_update_due(&written, &next, None, report, later(10)));

        // The node lifecycle controller set the conditions to Unknown: written at once,
        // each transitioning now.
        let mut unknown = written.clone();
        for c in unknown.conditions.iter_mut().flatten() {
            if c.type_ != "NetworkUnavailable" {
                c.status = "Unknown".into();
                c.reason = Some("NodeStatusUnknown".into());
                c.message = Some("Kubelet stopped posting node status.".into());
            }
        }
        let fixed = node_status(&cfg, &facts, &Ok(()), Some(&unknown), at(1_700_000_020));
        assert!(status_update_due(
            &unknown,
            &fixed,
            Some(t0),
            report,
            later(20)
        ));
        let ready = condition(&fixed, "Ready");
        assert_eq!(ready.status, "True");
        assert_eq!(ready.last_transition_time, Some(Time(at(1_700_000_020))));
        assert_eq!(condition(&fixed, "NetworkUnavailable").status, "False");

        // A resource the kubelet no longer reports: written, the patch removing it and
        // leaving what others own (volumesAttached) alone.
        let mut stale = written.clone();
        if let Some(cap) = stale.capacity.as_mut() {
            cap.insert("hugepages-2Mi".into(), Quantity("0".into()));
        }
        stale.volumes_attached = Some(vec![k8s_openapi::api::core::v1::AttachedVolume {
            name: "kubernetes.io/csi/v1".into(),
            device_path: String::new(),
        }]);
        let next = node_status(&cfg, &facts, &Ok(()), Some(&stale), at(1_700_000_010));
        assert!(status_update_due(
            &stale,
            &next,
            Some(t0),
            report,
            later(10)
        ));
        let patch = merge_diff(
            &serde_json::to_value(&stale).unwrap_or_default(),
            &serde_json::to_value(&next).unwrap_or_default(),
        );
        assert_eq!(
            patch["capacity"],
            json!({"hugepages-2Mi": null, "memory": "4194304Ki"})
        );
        assert!(patch.get("volumesAttached").is_none(), "{patch}");
        assert!(patch.get("nodeInfo").is_none(), "{patch}");
        assert_eq!(patch["conditions"].as_array().map(Vec::len), Some(5));

        // The runtime's network went down: written at once too.
        let down = node_status(
            &cfg,
            &facts,
            &Err("network not ready".into()),
            Some(&written),
            at(1_700_000_010),
        );
        assert!(status_update_due(
            &written,
            &down,
            Some(t0),
            report,
            later(10)
        ));
    }
}
