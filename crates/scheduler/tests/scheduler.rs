//! The scheduler against a real API server: nodes are created through the API (as kubelets
//! register them), pods with the real kubectl; the test reads where each pod was bound and
//! what the scheduler reported when it could not bind one.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

use std::time::Duration;

use apiserver::testing::{Cluster, eventually};
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

async fn cluster() -> Cluster {
    let c = Cluster::start(false).await;
    let client = scheduler::client(c.config().await).unwrap();
    tokio::spawn(scheduler::run(client, "test-scheduler".into()));
    c
}

/// Registers a node with `cpu` cores, 8Gi of memory, room for `pods` pods and `labels`.
async fn node(c: &Cluster, name: &str, cpu: &str, pods: &str, labels: serde_json::Value) {
    let nodes: Api<Node> = Api::all(c.client().await);
    let mut labels = labels;
    labels["kubernetes.io/hostname"] = json!(name);
    let n: Node = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "status": {
            "capacity": {"cpu": cpu, "memory": "8Gi", "pods": pods},
            "allocatable": {"cpu": cpu, "memory": "8Gi", "pods": pods},
            "conditions": [{"type": "Ready", "status": "True"}]
        }
    }))
    .unwrap();
    nodes.create(&PostParams::default(), &n).await.unwrap();
    // A kubelet reports status through the status subresource.
    nodes
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": n.status})),
        )
        .await
        .unwrap();
}

/// A pod manifest: name, cpu request, and extra spec fields.
fn pod(name: &str, cpu: &str, extra: serde_json::Value) -> String {
    let mut spec = json!({"containers": [{"name": "c", "image": "busybox",
        "resources": {"requests": {"cpu": cpu}}}]});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}}, "spec": spec})
        .to_string()
}

async fn create(c: &Cluster, manifest: &str) {
    let f = c.write(&format!("{}.json", rand_name()), manifest);
    c.ok(&["apply", "-f", &f]).await;
}

fn rand_name() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("m{}", N.fetch_add(1, Ordering::Relaxed))
}

async fn node_of(c: &Cluster, pod: &str) -> String {
    c.ok(&["get", "pod", pod, "-o", "jsonpath={.spec.nodeName}"])
        .await
}

async fn bound_to(c: &Cluster, pod: &str) -> String {
    eventually(&format!("{pod} bound"), || async {
        let n = node_of(c, pod).await;
        (!n.is_empty()).then_some(n)
    })
    .await
}

/// Waits for the pod's FailedScheduling message and checks it stays unbound.
async fn unschedulable(c: &Cluster, pod: &str) -> String {
    let msg = eventually(&format!("{pod} FailedScheduling"), || async {
        let m = c
            .ok(&[
                "get",
                "pod",
                pod,
                "-o",
                r#"jsonpath={.status.conditions[?(@.type=="PodScheduled")].message}"#,
            ])
            .await;
        (!m.is_empty()).then_some(m)
    })
    .await;
    assert_eq!(node_of(c, pod).await, "", "{pod} was bound");
    let reason = c
        .ok(&[
            "get",
            "pod",
            pod,
            "-o",
            r#"jsonpath={.status.conditions[?(@.type=="PodScheduled")].reason}"#,
        ])
        .await;
    assert_eq!(reason, "Unschedulable");
    msg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_fit_and_pending_pods_wait_for_a_node() {
    let c = cluster().await;
    // Before any node exists: Kubernetes' message, reported once (the scheduler's own
    // status update does not retry the pod).
    create(&c, &pod("early", "100m", json!({}))).await;
    assert_eq!(
        unschedulable(&c, "early").await,
        "no nodes available to schedule pods"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let events = c
        .ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=early",
        ])
        .await;
    assert_eq!(events.matches("FailedScheduling").count(), 1, "{events}");
    node(&c, "n1", "2", "110", json!({})).await;
    node(&c, "n2", "1", "110", json!({})).await;
    node(&c, "n3", "1", "110", json!({"disk": "ssd"})).await;
    assert!(!bound_to(&c, "early").await.is_empty());
    create(&c, &pod("big", "1500m", json!({}))).await;
    assert_eq!(bound_to(&c, "big").await, "n1");
    let events = eventually("Scheduled event", || async {
        let e = c
            .ok(&[
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=big",
            ])
            .await;
        e.contains("Scheduled").then_some(e)
    })
    .await;
    assert!(
        events.contains("Successfully assigned default/big to n1"),
        "{events}"
    );

    // Too big for any node: Pending, with Kubernetes' message, until a node that fits comes.
    create(&c, &pod("huge", "3", json!({}))).await;
    let msg = unschedulable(&c, "huge").await;
    assert_eq!(
        msg,
        "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
    );
    let events = c.ok(&["describe", "pod", "huge"]).await;
    assert!(events.contains("FailedScheduling"), "{events}");
    node(&c, "n4", "4", "110", json!({})).await;
    assert_eq!(bound_to(&c, "huge").await, "n4");

    // Mixed reasons are counted per reason.
    create(
        &c,
        &pod("picky", "1500m", json!({"nodeSelector": {"disk": "ssd"}})),
    )
    .await;
    let msg = unschedulable(&c, "picky").await;
    assert!(
        msg.starts_with("0/4 nodes are available: 1 Insufficient cpu, 3 node(s) didn't match Pod's node affinity/selector."),
        "{msg}"
    );
    create(
        &c,
        &pod("ssd", "500m", json!({"nodeSelector": {"disk": "ssd"}})),
    )
    .await;
    assert_eq!(bound_to(&c, "ssd").await, "n3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taints_tolerations_cordon_and_host_ports() {
    let c = cluster().await;
    node(&c, "n1", "4", "110", json!({})).await;
    node(&c, "n2", "4", "110", json!({})).await;
    c.ok(&["taint", "node", "n1", "dedicated=gpu:NoSchedule"])
        .await;
    c.ok(&["cordon", "n2"]).await;
    create(&c, &pod("plain", "100m", json!({}))).await;
    let msg = unschedulable(&c, "plain").await;
    assert!(
        msg.starts_with("0/2 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 1 node(s) were unschedulable."),
        "{msg}"
    );
    create(
        &c,
        &pod("tolerant", "100m", json!({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]})),
    )
    .await;
    assert_eq!(bound_to(&c, "tolerant").await, "n1");
    c.ok(&["uncordon", "n2"]).await;
    assert_eq!(bound_to(&c, "plain").await, "n2");

    // A host port is taken once per node.
    c.ok(&["taint", "node", "n1", "dedicated-"]).await;
    let with_port = |name: &str| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80, "hostPort": 8080}]}]}})
        .to_string()
    };
    create(&c, &with_port("web-1")).await;
    create(&c, &with_port("web-2")).await;
    let (a, b) = (bound_to(&c, "web-1").await, bound_to(&c, "web-2").await);
    assert_ne!(a, b);
    create(&c, &with_port("web-3")).await;
    let msg = unschedulable(&c, "web-3").await;
    assert!(
        msg.starts_with(
            "0/2 nodes are available: 2 node(s) didn't have free ports for the requested pod ports."
        ),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anti_affinity_and_topology_spread() {
    let c = cluster().await;
    node(&c, "n1", "8", "110", json!({"zone": "a"})).await;
    node(&c, "n2", "8", "110", json!({"zone": "a"})).await;
    node(&c, "n3", "8", "110", json!({"zone": "b"})).await;
    let anti = |name: &str| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "db"}},
            "spec": {"containers": [{"name": "c", "image": "redis"}],
                "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"}]}}}})
        .to_string()
    };
    let mut nodes = Vec::new();
    for i in 0..3 {
        create(&c, &anti(&format!("db-{i}"))).await;
        nodes.push(bound_to(&c, &format!("db-{i}")).await);
    }
    nodes.sort();
    assert_eq!(nodes, ["n1", "n2", "n3"]);
    create(&c, &anti("db-3")).await;
    let msg = unschedulable(&c, "db-3").await;
    assert!(
        msg.starts_with("0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules."),
        "{msg}"
    );

    // Spread across zones with maxSkew 1: two zones get two pods each.
    let spread = |name: &str| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}],
                "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone",
                    "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "web"}}}]}})
        .to_string()
    };
    let mut zones = Vec::new();
    for i in 0..4 {
        let name = format!("web-{i}");
        create(&c, &spread(&name)).await;
        let n = bound_to(&c, &name).await;
        zones.push(if n == "n3" { "b" } else { "a" });
    }
    zones.sort();
    assert_eq!(zones, ["a", "a", "b", "b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_never_overcommits_and_preemption_makes_room() {
    let c = cluster().await;
    node(&c, "small", "1", "5", json!({})).await;
    // Eight pods at once onto a node that holds five.
    let mut manifest = String::new();
    for i in 0..8 {
        manifest.push_str(&pod(&format!("b-{i}"), "10m", json!({})));
        manifest.push('\n');
    }
    create(&c, &manifest).await;
    let bound = eventually("five bound", || async {
        let out = c
            .ok(&[
                "get",
                "pods",
                "-o",
                "jsonpath={range .items[*]}{.spec.nodeName}{\"\\n\"}{end}",
            ])
            .await;
        let n = out.lines().filter(|l| !l.is_empty()).count();
        (n == 5).then_some(n)
    })
    .await;
    assert_eq!(bound, 5);
    let msg = unschedulable(&c, "b-7").await;
    let msg2 = unschedulable(&c, "b-5").await;
    assert!(
        msg.contains("1 Too many pods") && msg2.contains("1 Too many pods"),
        "{msg}"
    );
    for i in 0..8 {
        c.ok(&[
            "delete",
            "pod",
            &format!("b-{i}"),
            "--wait=false",
            "--grace-period=0",
            "--force",
        ])
        .await;
    }

    // A higher-priority pod preempts a lower one that holds the CPU it needs.
    c.ok(&["create", "priorityclass", "high", "--value=1000"])
        .await;
    create(&c, &pod("low", "800m", json!({}))).await;
    assert_eq!(bound_to(&c, "low").await, "small");
    create(
        &c,
        &pod("vip", "800m", json!({"priorityClassName": "high"})),
    )
    .await;
    // The victim goes (no kubelet here, so its graceful deletion is finished by hand).
    eventually("victim marked", || async {
        let out = c
            .kubectl(&[
                "get",
                "pod",
                "low",
                "-o",
                "jsonpath={.metadata.deletionTimestamp}",
            ])
            .await;
        (!out.status.success() || !out.stdout.is_empty()).then_some(())
    })
    .await;
    let nominated = c
        .ok(&[
            "get",
            "pod",
            "vip",
            "-o",
            "jsonpath={.status.nominatedNodeName}",
        ])
        .await;
    assert_eq!(nominated, "small");
    c.ok(&[
        "delete",
        "pod",
        "low",
        "--grace-period=0",
        "--force",
        "--ignore-not-found",
    ])
    .await;
    assert_eq!(bound_to(&c, "vip").await, "small");
}

/// Preemption respects PodDisruptionBudgets as upstream: the victim is taken where no budget
/// is broken, even when that victim is more important, and it is told why it goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preemption_spares_pods_a_budget_protects() {
    let c = cluster().await;
    node(&c, "n-a", "1", "10", json!({})).await;
    node(&c, "n-b", "1", "10", json!({})).await;
    c.ok(&["create", "priorityclass", "mid", "--value=500"])
        .await;
    c.ok(&["create", "priorityclass", "top", "--value=1000"])
        .await;
    let on = |n: &str| json!({"nodeSelector": {"kubernetes.io/hostname": n}});
    create(&c, &pod("guarded", "800m", on("n-a"))).await;
    let mut mid = on("n-b");
    mid["priorityClassName"] = json!("mid");
    create(&c, &pod("other", "800m", mid)).await;
    assert_eq!(bound_to(&c, "guarded").await, "n-a");
    assert_eq!(bound_to(&c, "other").await, "n-b");
    // No disruption controller runs here: the budget's status says no disruption is allowed.
    c.ok(&[
        "create",
        "pdb",
        "guarded",
        "--selector=app=guarded",
        "--min-available=1",
    ])
    .await;
    create(&c, &pod("vip", "800m", json!({"priorityClassName": "top"}))).await;
    let nominated = eventually("vip nominated", || async {
        let n = c
            .ok(&[
                "get",
                "pod",
                "vip",
                "-o",
                "jsonpath={.status.nominatedNodeName}",
            ])
            .await;
        (!n.is_empty()).then_some(n)
    })
    .await;
    assert_eq!(
        nominated, "n-b",
        "the unprotected (if more important) victim's node"
    );
    let reason = c
        .ok(&[
            "get",
            "pod",
            "other",
            "-o",
            r#"jsonpath={.status.conditions[?(@.type=="DisruptionTarget")].reason}"#,
        ])
        .await;
    assert_eq!(reason, "PreemptionByScheduler");
    let guarded = c
        .ok(&[
            "get",
            "pod",
            "guarded",
            "-o",
            "jsonpath={.metadata.deletionTimestamp}",
        ])
        .await;
    assert_eq!(guarded, "", "the protected pod stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_profile_schedules_its_own_pods() {
    let c = Cluster::start(false).await;
    let cfg = scheduler::config::Configuration::parse(
        "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nprofiles:\n- schedulerName: default-scheduler\n- schedulerName: ssd-only\n  plugins:\n    filter:\n      enabled: [{name: NodeLabel}]\n  pluginConfig:\n  - name: NodeLabel\n    args: {presentLabels: [ssd]}\n",
    )
    .unwrap();
    let client = scheduler::client(c.config().await).unwrap();
    tokio::spawn(scheduler::run_with_config(client, "test".into(), cfg));
    node(&c, "plain", "8", "110", json!({})).await;
    node(&c, "fast", "1", "110", json!({"ssd": "true"})).await;
    // The default profile prefers the emptier, bigger node; the ssd-only profile may not.
    create(&c, &pod("any", "500m", json!({}))).await;
    assert_eq!(bound_to(&c, "any").await, "plain");
    create(
        &c,
        &pod("mine", "500m", json!({"schedulerName": "ssd-only"})),
    )
    .await;
    assert_eq!(bound_to(&c, "mine").await, "fast");
    create(
        &c,
        &pod("too-big", "2", json!({"schedulerName": "ssd-only"})),
    )
    .await;
    let msg = unschedulable(&c, "too-big").await;
    assert!(
        msg.starts_with("0/2 nodes are available: 1 Insufficient cpu, 1 node(s) didn't have the requested labels."),
        "{msg}"
    );
}
