//! The DaemonSet controller against a real API server with nodes created through the API.
//! No scheduler or kubelet runs: the test binds each daemon pod to the node its affinity
//! names and marks it Ready, as they would.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

use std::time::Duration;

use apiserver::testing::{Cluster, eventually};
use client_go::informer::Informer;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

async fn node(c: &Cluster, name: &str, labels: serde_json::Value) {
    let nodes: Api<Node> = Api::all(c.client().await);
    let n: Node =
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap();
    nodes.create(&PostParams::default(), &n).await.unwrap();
}

/// A worker node registered with `taint`.
async fn tainted_node(c: &Cluster, name: &str, taint: Value) {
    let nodes: Api<Node> = Api::all(c.client().await);
    let n: Node = serde_json::from_value(json!({"metadata": {"name": name,
        "labels": {"role": "worker"}}, "spec": {"taints": [taint]}}))
    .unwrap();
    nodes.create(&PostParams::default(), &n).await.unwrap();
}

/// The name of the `agent` pod for `node` (bound or not).
async fn pod_on(c: &Cluster, node: &str) -> String {
    let pods: Api<Pod> = Api::namespaced(c.client().await, "default");
    pods.list(&ListParams::default().labels("app=agent"))
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|p| {
            let s = serde_json::to_value(p).unwrap();
            s.pointer("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms/0/matchFields/0/values/0")
                == Some(&json!(node))
        })
        .and_then(|p| p.metadata.name)
        .unwrap()
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
    // A new worker gets one; one registered with a taint does not (tainted later, it would
    // keep a pod made before: only NoExecute taints remove daemon pods).
    tainted_node(
        &c,
        "w3",
        json!({"key": "dedicated", "value": "x", "effect": "NoSchedule"}),
    )
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

/// Every `agent` pod as `node:state`, state `live` or `terminating`, sorted.
async fn pod_states(c: &Cluster) -> Vec<String> {
    let out = c
        .ok(&["get", "pods", "-l", "app=agent", "-o", r#"jsonpath={range .items[*]}{.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchFields[0].values[0]}:{.metadata.deletionTimestamp}{"\n"}{end}"#])
        .await;
    let mut v: Vec<String> = out
        .lines()
        .map(|l| {
            let (node, deleted) = l.split_once(':').unwrap();
            let state = if deleted.is_empty() {
                "live"
            } else {
                "terminating"
            };
            format!("{node}:{state}")
        })
        .collect();
    v.sort();
    v
}

/// `desiredNumberScheduled/currentNumberScheduled/numberMisscheduled` once they are `want`.
async fn ds_counts(c: &Cluster, want: &str) {
    eventually(&format!("DaemonSet counts {want}"), || async {
        let s = c.ok(&["get", "ds", "agent", "-o", "jsonpath={.status.desiredNumberScheduled}/{.status.currentNumberScheduled}/{.status.numberMisscheduled}"]).await;
        (s == want).then_some(())
    })
    .await;
}

/// `pod_states` stays `want` for a while (what should not happen had time to).
async fn stays(c: &Cluster, want: &[&str]) {
    for _ in 0..15 {
        assert_eq!(pod_states(c).await, want);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Only the DaemonSet controller runs, so every deletion is its own; taints are set by hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_schedule_taints_stop_new_pods_no_execute_taints_remove_them() {
    // Events kept long enough to be read after the deletion is seen (the test cluster's
    // default 3 s TTL could expire the DaemonSet's event first on a loaded machine).
    let c = Cluster::start_with(false, Duration::from_secs(600)).await;
    c.default_service_account("default").await;
    let client = controllers::client(c.config().await).unwrap();
    let ds = controllers::daemonset::DaemonSetController::new(
        client.clone(),
        Informer::start(Api::all(client.clone())),
        Informer::start(Api::all(client.clone())),
        Informer::start(Api::all(client.clone())),
        Informer::start(Api::all(client.clone())),
    );
    tokio::spawn(ds.run(2));
    for n in ["n1", "n2", "n3"] {
        node(&c, n, json!({"role": "worker"})).await;
    }
    let f = c.write("ds.yaml", DS);
    c.ok(&["apply", "-f", &f]).await;
    eventually("a pod on each node", || async {
        (pod_states(&c).await == ["n1:live", "n2:live", "n3:live"]).then_some(())
    })
    .await;
    act_as_scheduler_and_kubelet(&c).await;
    ds_counts(&c, "3/3/0").await;

    // Every daemon pod carries upstream's default tolerations; not-ready and unreachable
    // NoExecute for good.
    let tolerations = c
        .ok(&[
            "get",
            "pods",
            "-l",
            "app=agent",
            "-o",
            r#"jsonpath={.items[0].spec.tolerations}"#,
        ])
        .await;
    let mut got: Vec<String> = serde_json::from_str::<Vec<Value>>(&tolerations)
        .unwrap()
        .iter()
        .map(|t| {
            assert_eq!(t["operator"], "Exists", "{t}");
            assert!(t.get("tolerationSeconds").is_none(), "{t}");
            format!(
                "{}:{}",
                t["key"].as_str().unwrap(),
                t["effect"].as_str().unwrap()
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            "node.kubernetes.io/disk-pressure:NoSchedule",
            "node.kubernetes.io/memory-pressure:NoSchedule",
            "node.kubernetes.io/not-ready:NoExecute",
            "node.kubernetes.io/pid-pressure:NoSchedule",
            "node.kubernetes.io/unreachable:NoExecute",
            "node.kubernetes.io/unschedulable:NoSchedule",
        ]
    );

    // A node that turned NotReady (not-ready:NoSchedule, which daemon pods do not
    // tolerate) keeps its pod but no longer counts as desired; a new NotReady node gets
    // none.
    c.ok(&[
        "taint",
        "node",
        "n1",
        "node.kubernetes.io/not-ready:NoSchedule",
    ])
    .await;
    tainted_node(
        &c,
        "n4",
        json!({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}),
    )
    .await;
    ds_counts(&c, "2/2/1").await;
    stays(&c, &["n1:live", "n2:live", "n3:live"]).await;
    // Once gone, n1's pod is not replaced while the taint is there.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let gone = kube::api::DeleteParams::default().grace_period(0);
    pods.delete(&pod_on(&c, "n1").await, &gone).await.unwrap();
    ds_counts(&c, "2/2/0").await;
    stays(&c, &["n2:live", "n3:live"]).await;

    // An untolerated NoExecute taint removes the pod there.
    c.ok(&["taint", "node", "n2", "dedicated=x:NoExecute"])
        .await;
    eventually("n2's pod deleted", || async {
        act_as_scheduler_and_kubelet(&c).await;
        (pod_states(&c).await == ["n3:live"]).then_some(())
    })
    .await;
    ds_counts(&c, "1/1/0").await;
    // The DaemonSet controller deleted it (nothing else runs here).
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let deletions = || async {
        events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.involved_object.kind.as_deref() == Some("DaemonSet"))
            .filter(|e| e.reason.as_deref() == Some("SuccessfulDelete"))
            .count()
    };
    eventually("the DaemonSet's SuccessfulDelete event", || async {
        (deletions().await > 0).then_some(())
    })
    .await;
    assert_eq!(
        deletions().await,
        1,
        "the DaemonSet deleted its pod more than once"
    );

    // The taints gone, n1 and n4 get their pods.
    c.ok(&[
        "taint",
        "node",
        "n1",
        "node.kubernetes.io/not-ready:NoSchedule-",
    ])
    .await;
    c.ok(&[
        "taint",
        "node",
        "n4",
        "node.kubernetes.io/not-ready:NoSchedule-",
    ])
    .await;
    eventually("pods on n1 and n4", || async {
        (pod_states(&c).await == ["n1:live", "n3:live", "n4:live"]).then_some(())
    })
    .await;
}

fn now() -> String {
    Timestamp::from_second(Timestamp::now().as_second())
        .unwrap()
        .to_string()
}

/// Posts the node's conditions as a kubelet would: Ready True, or False (NotReady).
async fn post_status(c: &Cluster, name: &str, ready: bool) {
    let t = now();
    let cond = |type_: &str, status: &str| {
        json!({"type": type_, "status": status, "reason": "Kubelet", "message": "",
            "lastHeartbeatTime": t, "lastTransitionTime": t})
    };
    let status = json!({"status": {"conditions": [
        cond("MemoryPressure", "False"),
        cond("DiskPressure", "False"),
        cond("PIDPressure", "False"),
        cond("Ready", if ready { "True" } else { "False" }),
    ]}});
    let nodes: Api<Node> = Api::all(c.client().await);
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();
}

async fn taints(c: &Cluster, node: &str) -> Vec<String> {
    let out = c
        .ok(&[
            "get",
            "node",
            node,
            "-o",
            r#"jsonpath={range .spec.taints[*]}{.key}:{.effect}{"\n"}{end}"#,
        ])
        .await;
    let mut v: Vec<String> = out.lines().map(str::to_string).collect();
    v.sort();
    v
}

/// The whole controller manager: the node lifecycle controller taints a NotReady node
/// not-ready NoSchedule and NoExecute; its daemon pod stays (neither the DaemonSet nor the
/// taint eviction controller removes it), and it gets no new one until it is Ready again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_not_ready_node_keeps_its_daemon_pod() {
    let c = Cluster::start(false).await;
    let config = c.config().await;
    let mut options = controllers::Options::from_config(&config);
    options.node_lifecycle.node_monitor_period = Duration::from_millis(250);
    let client = controllers::client(config).unwrap();
    tokio::spawn(controllers::run_with(client, "cm".into(), options));
    for n in ["w1", "w2"] {
        node(&c, n, json!({"role": "worker"})).await;
        post_status(&c, n, true).await;
    }
    let f = c.write("ds.yaml", DS);
    c.ok(&["apply", "-f", &f]).await;
    eventually("a pod on each node", || async {
        act_as_scheduler_and_kubelet(&c).await;
        (pod_states(&c).await == ["w1:live", "w2:live"]).then_some(())
    })
    .await;
    ds_counts(&c, "2/2/0").await;

    post_status(&c, "w2", false).await;
    eventually("w2 tainted not-ready", || async {
        (taints(&c, "w2").await
            == [
                "node.kubernetes.io/not-ready:NoExecute",
                "node.kubernetes.io/not-ready:NoSchedule",
            ])
        .then_some(())
    })
    .await;
    ds_counts(&c, "1/1/1").await;
    stays(&c, &["w1:live", "w2:live"]).await;

    // Its pod gone, the NotReady node gets no new one...
    let pods: Api<Pod> = Api::namespaced(c.client().await, "default");
    let gone = kube::api::DeleteParams::default().grace_period(0);
    pods.delete(&pod_on(&c, "w2").await, &gone).await.unwrap();
    ds_counts(&c, "1/1/0").await;
    stays(&c, &["w1:live"]).await;

    // ... until it is Ready again.
    post_status(&c, "w2", true).await;
    eventually("a pod on w2 again", || async {
        (pod_states(&c).await == ["w1:live", "w2:live"]).then_some(())
    })
    .await;
}
