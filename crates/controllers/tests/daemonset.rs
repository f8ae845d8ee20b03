//! The DaemonSet controller against a real API server with nodes created through the API.
//! No scheduler or kubelet runs: the test binds each daemon pod to the node its affinity
//! names and marks it Ready, as they would.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

use apiserver::testing::{Cluster, eventually};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

async fn node(c: &Cluster, name: &str, labels: serde_json::Value) {
    let nodes: Api<Node> = Api::all(c.client().await);
    let n: Node =
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap();
    nodes.create(&PostParams::default(), &n).await.unwrap();
}

/// Binds every unbound daemon pod to its pinned node and marks it Ready.
async fn act_as_scheduler_and_kubelet(c: &Cluster) {
    let client = c.client().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    for p in pods.list(&ListParams::default()).await.unwrap() {
        let name = p.metadata.name.clone().unwrap();
        if p.metadata.deletion_timestamp.is_some() {
            // A kubelet finishes a graceful deletion once the containers stopped.
            let _ = pods
                .delete(&name, &kube::api::DeleteParams::default().grace_period(0))
                .await;
            continue;
        }
        let spec = p.spec.clone().unwrap();
        if spec.node_name.is_none() {
            let node = spec
                .affinity
                .unwrap()
                .node_affinity
                .unwrap()
                .required_during_scheduling_ignored_during_execution
                .unwrap()
                .node_selector_terms[0]
                .match_fields
                .clone()
                .unwrap()[0]
                .values
                .clone()
                .unwrap()[0]
                .clone();
            let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
                "target": {"kind": "Node", "name": node}});
            let _: Result<serde_json::Value, _> = pods
                .create_subresource("binding", &name, &PostParams::default(), &binding)
                .await;
        }
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let _ = pods
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"phase": "Running",
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}]}})),
            )
            .await;
    }
}

async fn pods_by_node(c: &Cluster) -> Vec<String> {
    let out = c
        .ok(&["get", "pods", "-l", "app=agent", "-o", r#"jsonpath={range .items[*]}{.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchFields[0].values[0]}:{.metadata.labels.controller-revision-hash}{"\n"}{end}"#])
        .await;
    let mut v: Vec<String> = out.lines().map(str::to_string).collect();
    v.sort();
    v
}

const DS: &str = "
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      nodeSelector: {role: worker}
      containers: [{name: agent, image: busybox:1.36}]
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_pod_per_eligible_node_and_rolling_updates() {
    let c = Cluster::start(false).await;
    let client = controllers::client(c.config().await).unwrap();
    tokio::spawn(controllers::run(client, "cm".into()));
    node(&c, "w1", json!({"role": "worker"})).await;
    node(&c, "w2", json!({"role": "worker"})).await;
    node(&c, "db", json!({"role": "db"})).await;
    let f = c.write("ds.yaml", DS);
    c.ok(&["apply", "-f", &f]).await;
    let first = eventually("a pod on each worker", || async {
        let p = pods_by_node(&c).await;
        (p.len() == 2 && p[0].starts_with("w1:") && p[1].starts_with("w2:")).then_some(p)
    })
    .await;
    // A new worker gets one; a tainted one does not.
    node(&c, "w3", json!({"role": "worker"})).await;
    c.ok(&["taint", "node", "w3", "dedicated=x:NoSchedule"])
        .await;
    node(&c, "w4", json!({"role": "worker"})).await;
    eventually("a pod on w4, none on w3", || async {
        let p = pods_by_node(&c).await;
        let nodes: Vec<&str> = p.iter().map(|l| l.split(':').next().unwrap()).collect();
        (nodes == ["w1", "w2", "w4"]).then_some(())
    })
    .await;
    act_as_scheduler_and_kubelet(&c).await;
    eventually("status", || async {
        let s = c.ok(&["get", "ds", "agent", "-o", "jsonpath={.status.desiredNumberScheduled}/{.status.currentNumberScheduled}/{.status.numberReady}/{.status.updatedNumberScheduled}"]).await;
        (s == "3/3/3/3").then_some(())
    })
    .await;
    let out = c
        .ok(&["rollout", "status", "ds/agent", "--timeout=20s"])
        .await;
    assert!(out.contains("successfully rolled out"), "{out}");

    // A new template replaces pods one node at a time (maxUnavailable 1).
    c.ok(&["set", "image", "ds/agent", "agent=busybox:1.37"])
        .await;
    let new_hash = eventually("the rollout", || async {
        act_as_scheduler_and_kubelet(&c).await;
        let p = pods_by_node(&c).await;
        let hashes: Vec<&str> = p.iter().map(|l| l.split(':').nth(1).unwrap()).collect();
        let old = first[0].split(':').nth(1).unwrap();
        (p.len() == 3 && hashes.iter().all(|h| *h != old && *h == hashes[0]))
            .then(|| hashes[0].to_string())
    })
    .await;
    let history = c.ok(&["rollout", "history", "ds/agent"]).await;
    assert!(
        history.contains("1 ") && history.contains("2 "),
        "{history}"
    );
    let revs = c
        .ok(&[
            "get",
            "controllerrevisions",
            "-o",
            "jsonpath={.items[*].metadata.labels.controller-revision-hash}",
        ])
        .await;
    assert!(revs.contains(&new_hash), "{revs}");

    // `rollout undo` applies the previous revision's patch: only the template goes back.
    c.ok(&["rollout", "undo", "ds/agent"]).await;
    eventually("the rollback", || async {
        act_as_scheduler_and_kubelet(&c).await;
        let p = pods_by_node(&c).await;
        let old = first[0].split(':').nth(1).unwrap();
        (p.len() == 3 && p.iter().all(|l| l.ends_with(&format!(":{old}")))).then_some(())
    })
    .await;
    let selector = c
        .ok(&[
            "get",
            "ds",
            "agent",
            "-o",
            "jsonpath={.spec.selector.matchLabels.app}",
        ])
        .await;
    assert_eq!(selector, "agent");

    // Relabelling a node out of the selector removes its pod.
    c.ok(&["label", "node", "w1", "role=db", "--overwrite"])
        .await;
    eventually("w1's pod gone", || async {
        act_as_scheduler_and_kubelet(&c).await;
        let p = pods_by_node(&c).await;
        (!p.iter().any(|l| l.starts_with("w1:"))).then_some(())
    })
    .await;
}
