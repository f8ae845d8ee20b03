//! The node lifecycle and taint eviction controllers against a real API server, driven with
//! the real kubectl. No kubelet runs: the test posts node status and renews the nodes'
//! Leases as kubelets would, and stops doing so for the node it "loses". The grace periods
//! are seconds, not upstream's tens of seconds, so the whole life of a lost node fits in a
//! test.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use apiserver::testing::{Cluster, eventually};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const LEASES: &str = "kube-node-lease";

/// A cluster without DefaultTolerationSeconds (so a pod can have no NoExecute toleration at
/// all) and the controller manager with second-scale grace periods.
async fn start() -> Cluster {
    let c = Cluster::start_configured(false, |cfg| {
        cfg.event_ttl = Duration::from_secs(600);
        cfg.disable_admission_plugins = vec!["DefaultTolerationSeconds".into()];
    })
    .await;
    let config = c.config().await;
    let mut options = controllers::Options::from_config(&config);
    options.node_lifecycle = controllers::nodelifecycle::Options {
        node_monitor_period: Duration::from_millis(250),
        node_monitor_grace_period: Duration::from_secs(3),
        node_startup_grace_period: Duration::from_secs(8),
        ..Default::default()
    };
    let client = controllers::client(config).unwrap();
    tokio::spawn(controllers::run_with(client, "cm".into(), options));
    c
}

fn now() -> String {
    Timestamp::from_second(Timestamp::now().as_second())
        .unwrap()
        .to_string()
}

/// The conditions a healthy kubelet posts.
fn healthy_status() -> Value {
    let t = now();
    let cond = |type_: &str, status: &str| {
        json!({"type": type_, "status": status, "reason": "Kubelet", "message": "",
            "lastHeartbeatTime": t, "lastTransitionTime": t})
    };
    json!({"status": {"conditions": [
        cond("MemoryPressure", "False"),
        cond("DiskPressure", "False"),
        cond("PIDPressure", "False"),
        cond("Ready", "True"),
    ]}})
}

async fn post_healthy_status(c: &Cluster, name: &str) {
    let nodes: Api<Node> = Api::all(c.client().await);
    nodes
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(healthy_status()),
        )
        .await
        .unwrap();
}

/// A node registered and reporting Ready, with its Lease, as a kubelet starts.
async fn register(c: &Cluster, name: &str) {
    let client = c.client().await;
    let nodes: Api<Node> = Api::all(client.clone());
    let n: Node = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    nodes.create(&PostParams::default(), &n).await.unwrap();
    post_healthy_status(c, name).await;
    let leases: Api<Lease> = Api::namespaced(client, LEASES);
    let l: Lease = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40,
            "renewTime": MicroTime(Timestamp::now())},
    }))
    .unwrap();
    leases.create(&PostParams::default(), &l).await.unwrap();
}

async fn renew(leases: &Api<Lease>, name: &str) {
    let patch = json!({"spec": {"renewTime": MicroTime(Timestamp::now())}});
    let _ = leases
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await;
}

/// A pod bound to `node`, Running and Ready.
async fn pod(c: &Cluster, name: &str, node: &str, spec: Value) {
    let pods: Api<Pod> = Api::namespaced(c.client().await, "default");
    let mut s = json!({"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]});
    for (k, v) in spec.as_object().unwrap() {
        s[k] = v.clone();
    }
    let p: Pod = serde_json::from_value(json!({"metadata": {"name": name}, "spec": s})).unwrap();
    pods.create(&PostParams::default(), &p).await.unwrap();
    let status = json!({"status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": now()}]}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();
}

fn unreachable_toleration(seconds: Option<i64>) -> Value {
    let mut t = json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists",
        "effect": "NoExecute"});
    if let Some(s) = seconds {
        t["tolerationSeconds"] = json!(s);
    }
    json!({"tolerations": [t]})
}

async fn get_pod(c: &Cluster, name: &str) -> Option<Pod> {
    let pods: Api<Pod> = Api::namespaced(c.client().await, "default");
    pods.get_opt(name).await.unwrap()
}

async fn get_node(c: &Cluster, name: &str) -> Node {
    let nodes: Api<Node> = Api::all(c.client().await);
    nodes.get(name).await.unwrap()
}

/// `key:effect` of the node's taints, each with whether it has a timeAdded.
async fn taints(c: &Cluster, name: &str) -> Vec<(String, bool)> {
    let mut v: Vec<(String, bool)> = get_node(c, name)
        .await
        .spec
        .and_then(|s| s.taints)
        .unwrap_or_default()
        .into_iter()
        .map(|t| (format!("{}:{}", t.key, t.effect), t.time_added.is_some()))
        .collect();
    v.sort();
    v
}

/// The STATUS column of `kubectl get nodes` for `name`.
async fn kubectl_status(c: &Cluster, name: &str) -> String {
    let out = c.ok(&["get", "nodes", "--no-headers"]).await;
    out.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cols| cols.first() == Some(&name))
        .map(|cols| cols[1].to_string())
        .unwrap_or_default()
}

fn condition<'a>(p: &'a Pod, type_: &str) -> Option<&'a k8s_openapi::api::core::v1::PodCondition> {
    p.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// Events in `ns` as (involved name, type, reason, message).
async fn events(c: &Cluster, ns: &str) -> Vec<(String, String, String, String)> {
    let api: Api<Event> = Api::namespaced(c.client().await, ns);
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| {
            (
                e.involved_object.name.unwrap_or_default(),
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.message.unwrap_or_default(),
            )
        })
        .collect()
}

async fn has_event(c: &Cluster, involved: &str, type_: &str, reason: &str, message: &str) -> bool {
    events(c, "default")
        .await
        .iter()
        .any(|(n, t, r, m)| n == involved && t == type_ && r == reason && m == message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_node_is_tainted_and_its_pods_evicted_until_it_returns() {
    let c = start().await;
    register(&c, "alive").await;
    register(&c, "lost").await;
    // The kubelets' Lease renewals; the lost node's stop when `lost` is set.
    let lost = Arc::new(AtomicBool::new(false));
    let leases: Api<Lease> = Api::namespaced(c.client().await, LEASES);
    let (l, flag) = (leases.clone(), lost.clone());
    tokio::spawn(async move {
        loop {
            renew(&l, "alive").await;
            if !flag.load(Ordering::SeqCst) {
                renew(&l, "lost").await;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    pod(&c, "plain", "lost", json!({})).await;
    pod(
        &c,
        "brief",
        "lost",
        json!({"terminationGracePeriodSeconds": 0, "tolerations": unreachable_toleration(Some(2))["tolerations"]}),
    )
    .await;
    pod(&c, "forever", "lost", unreachable_toleration(None)).await;
    pod(&c, "elsewhere", "alive", json!({})).await;
    // Healthy nodes stay untouched well past the grace period.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(kubectl_status(&c, "lost").await, "Ready");
    assert!(taints(&c, "lost").await.is_empty());
    assert!(
        get_pod(&c, "plain")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_none()
    );

    // The node goes silent: neither status nor Lease.
    lost.store(true, Ordering::SeqCst);
    let node = eventually("the lost node's conditions to become Unknown", || async {
        let n = get_node(&c, "lost").await;
        let conds = n.status.as_ref()?.conditions.clone()?;
        conds.iter().all(|c| c.status == "Unknown").then_some(conds)
    })
    .await;
    for cond in &node {
        assert_eq!(
            cond.reason.as_deref(),
            Some("NodeStatusUnknown"),
            "{cond:?}"
        );
        assert_eq!(
            cond.message.as_deref(),
            Some("Kubelet stopped posting node status.")
        );
    }
    assert_eq!(kubectl_status(&c, "lost").await, "NotReady");
    assert_eq!(kubectl_status(&c, "alive").await, "Ready");
    // Taint eviction counts from when it sees the NoExecute taint.
    let tainted_at = eventually("the unreachable NoExecute taint", || async {
        let t = taints(&c, "lost").await;
        t.iter()
            .any(|(k, _)| k == "node.kubernetes.io/unreachable:NoExecute")
            .then(Instant::now)
    })
    .await;
    eventually("both unreachable taints, with their times", || async {
        (taints(&c, "lost").await
            == [
                ("node.kubernetes.io/unreachable:NoExecute".to_string(), true),
                (
                    "node.kubernetes.io/unreachable:NoSchedule".to_string(),
                    true,
                ),
            ])
        .then_some(())
    })
    .await;
    assert!(taints(&c, "alive").await.is_empty());
    eventually("the node's NotReady event", || async {
        has_event(
            &c,
            "lost",
            "Normal",
            "NodeNotReady",
            "Node lost status is now: NodeNotReady",
        )
        .await
        .then_some(())
    })
    .await;

    // Its pods are no longer Ready, with a warning each.
    eventually("pods on the lost node marked not Ready", || async {
        let p = get_pod(&c, "forever").await?;
        (condition(&p, "Ready")?.status == "False").then_some(())
    })
    .await;
    assert!(
        has_event(
            &c,
            "forever",
            "Warning",
            "NodeNotReady",
            "Node is not ready"
        )
        .await
    );
    let elsewhere = get_pod(&c, "elsewhere").await.unwrap();
    assert_eq!(condition(&elsewhere, "Ready").unwrap().status, "True");

    // A pod without a toleration is deleted at once, gracefully (no kubelet finishes it).
    let plain = eventually("the untolerating pod deleted", || async {
        get_pod(&c, "plain")
            .await
            .filter(|p| p.metadata.deletion_timestamp.is_some())
    })
    .await;
    assert_eq!(plain.metadata.deletion_grace_period_seconds, Some(30));
    let target = condition(&plain, "DisruptionTarget").expect("DisruptionTarget condition");
    assert_eq!(target.status, "True");
    assert_eq!(target.reason.as_deref(), Some("DeletionByTaintManager"));
    assert_eq!(
        target.message.as_deref(),
        Some("Taint manager: deleting due to NoExecute taint")
    );
    assert!(
        has_event(
            &c,
            "plain",
            "Normal",
            "TaintManagerEviction",
            "Marking for deletion Pod default/plain"
        )
        .await
    );

    // One tolerating for 2 s goes after about 2 s.
    eventually("the briefly tolerating pod deleted", || async {
        get_pod(&c, "brief").await.is_none().then_some(())
    })
    .await;
    let after = tainted_at.elapsed();
    assert!(
        after >= Duration::from_millis(1500),
        "deleted {after:?} after the taint"
    );
    // One tolerating forever stays.
    let forever = get_pod(&c, "forever").await.unwrap();
    assert!(forever.metadata.deletion_timestamp.is_none());
    assert!(
        get_pod(&c, "elsewhere")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_none()
    );

    // The kubelet is back: Ready again, and the taints come off.
    post_healthy_status(&c, "lost").await;
    lost.store(false, Ordering::SeqCst);
    eventually("the taints removed", || async {
        taints(&c, "lost").await.is_empty().then_some(())
    })
    .await;
    assert_eq!(kubectl_status(&c, "lost").await, "Ready");
    // Staying healthy, it stays untainted.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(taints(&c, "lost").await.is_empty());
    assert!(
        get_pod(&c, "forever")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cordoned_and_silent_from_the_start_nodes() {
    let c = start().await;
    register(&c, "worker").await;
    let leases: Api<Lease> = Api::namespaced(c.client().await, LEASES);
    let l = leases.clone();
    tokio::spawn(async move {
        loop {
            renew(&l, "worker").await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    c.ok(&["cordon", "worker"]).await;
    eventually("the unschedulable taint", || async {
        (taints(&c, "worker").await
            == [(
                "node.kubernetes.io/unschedulable:NoSchedule".to_string(),
                true,
            )])
        .then_some(())
    })
    .await;
    assert_eq!(
        kubectl_status(&c, "worker").await,
        "Ready,SchedulingDisabled"
    );
    c.ok(&["uncordon", "worker"]).await;
    eventually("the unschedulable taint removed", || async {
        taints(&c, "worker").await.is_empty().then_some(())
    })
    .await;
    assert_eq!(kubectl_status(&c, "worker").await, "Ready");

    // A node whose kubelet never posted a status: Unknown, then (after the startup grace
    // period) conditions the controller made up, and NotReady.
    let nodes: Api<Node> = Api::all(c.client().await);
    let n: Node = serde_json::from_value(json!({"metadata": {"name": "silent"}})).unwrap();
    nodes.create(&PostParams::default(), &n).await.unwrap();
    assert_eq!(kubectl_status(&c, "silent").await, "Unknown");
    let conds = eventually("made-up conditions", || async {
        get_node(&c, "silent").await.status?.conditions
    })
    .await;
    let types: Vec<&str> = conds.iter().map(|c| c.type_.as_str()).collect();
    assert_eq!(
        types,
        ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"]
    );
    for cond in &conds {
        assert_eq!(cond.status, "Unknown");
        assert_eq!(cond.reason.as_deref(), Some("NodeStatusNeverUpdated"));
        assert_eq!(
            cond.message.as_deref(),
            Some("Kubelet never posted node status.")
        );
    }
    assert_eq!(kubectl_status(&c, "silent").await, "NotReady");
    eventually("the silent node tainted unreachable", || async {
        let t = taints(&c, "silent").await;
        t.iter()
            .any(|(k, _)| k == "node.kubernetes.io/unreachable:NoExecute")
            .then_some(())
    })
    .await;
}
