//! The controllers against a real API server, driven with the real kubectl. No kubelet runs
//! here: pods stay Pending unless a test marks them Running and Ready through the status
//! subresource, as a kubelet would.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

use std::time::Duration;

use apiserver::testing::{Cluster, eventually};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;

/// A cluster with the controller manager running (two of them, competing for the lease).
async fn cluster() -> Cluster {
    let c = Cluster::start(false).await;
    for id in ["cm-a", "cm-b"] {
        let client = controllers::client(c.config().await).unwrap();
        tokio::spawn(controllers::run(client, id.to_string()));
    }
    c
}

/// Marks every pending pod Running and Ready, as a kubelet would once its containers run.
async fn make_ready(client: &kube::Client) {
    let pods: Api<Pod> = Api::all(client.clone());
    for p in pods.list(&ListParams::default()).await.unwrap() {
        let ready = p
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if ready || p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let api: Api<Pod> =
            Api::namespaced(client.clone(), p.metadata.namespace.as_deref().unwrap());
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let status = json!({"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": now}
        ]}});
        let _ = api
            .patch_status(
                p.metadata.name.as_deref().unwrap(),
                &PatchParams::default(),
                &Patch::Merge(status),
            )
            .await;
    }
}

/// A kubelet stand-in that keeps every pod ready until dropped.
struct ReadyLoop(tokio::task::JoinHandle<()>);

impl ReadyLoop {
    async fn start(c: &Cluster) -> ReadyLoop {
        let client = c.client().await;
        ReadyLoop(tokio::spawn(async move {
            loop {
                make_ready(&client).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }))
    }
}

impl Drop for ReadyLoop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Names of the pods with `selector`, and each one's controller (kind/name).
async fn pods(c: &Cluster, selector: &str) -> Vec<(String, String)> {
    let out = c
        .ok(&[
            "get",
            "pods",
            "-l",
            selector,
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.name} {.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}{"\n"}{end}"#,
        ])
        .await;
    let mut v: Vec<(String, String)> = out
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    v.sort();
    v
}

async fn jsonpath(c: &Cluster, args: &[&str], path: &str) -> String {
    let mut a: Vec<&str> = args.to_vec();
    let p = format!("jsonpath={path}");
    a.extend(["-o", &p]);
    c.ok(&a).await
}

const RS: &str = "
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: frontend}
spec:
  replicas: 3
  selector:
    matchExpressions: [{key: tier, operator: In, values: [frontend]}]
  template:
    metadata: {labels: {tier: frontend}}
    spec:
      containers: [{name: php, image: php:8}]
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicaset_keeps_its_replicas_adopts_and_releases() {
    let c = cluster().await;
    let f = c.write("rs.yaml", RS);
    c.ok(&["apply", "-f", &f]).await;
    let first = eventually("3 pods", || async {
        let p = pods(&c, "tier=frontend").await;
        (p.len() == 3).then_some(p)
    })
    .await;
    assert!(
        first
            .iter()
            .all(|(_, owner)| owner == "ReplicaSet/frontend"),
        "{first:?}"
    );
    // Two controller managers run; only the lease holder acts, so no pod was made twice.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(pods(&c, "tier=frontend").await.len(), 3);
    let holder = jsonpath(
        &c,
        &[
            "get",
            "lease",
            "-n",
            "kube-system",
            "kube-controller-manager",
        ],
        "{.spec.holderIdentity}",
    )
    .await;
    assert!(holder == "cm-a" || holder == "cm-b", "{holder}");

    // A deleted pod is replaced.
    c.ok(&["delete", "pod", &first[0].0, "--wait=false"]).await;
    eventually("a replacement", || async {
        let p = pods(&c, "tier=frontend").await;
        (p.len() == 3 && !p.iter().any(|(n, _)| *n == first[0].0)).then_some(())
    })
    .await;

    // A matching orphan is adopted (and the surplus removed).
    let orphan = c.write(
        "orphan.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: stray, labels: {tier: frontend}}\nspec: {containers: [{name: c, image: busybox}]}\n",
    );
    c.ok(&["apply", "-f", &orphan]).await;
    eventually("3 owned pods after adoption", || async {
        let p = pods(&c, "tier=frontend").await;
        (p.len() == 3 && p.iter().all(|(_, o)| o == "ReplicaSet/frontend")).then_some(())
    })
    .await;

    // A pod relabelled out of the selector is released and replaced.
    let victim = pods(&c, "tier=frontend").await[0].0.clone();
    c.ok(&["label", "pod", &victim, "tier=debug", "--overwrite"])
        .await;
    eventually("release and replacement", || async {
        let p = pods(&c, "tier=frontend").await;
        let released = pods(&c, "tier=debug").await;
        (p.len() == 3 && released == vec![(victim.clone(), "/".to_string())]).then_some(())
    })
    .await;

    // Status counts ready and available pods.
    let client = c.client().await;
    make_ready(&client).await;
    eventually("status", || async {
        let s = jsonpath(&c, &["get", "rs", "frontend"], "{.status.replicas}/{.status.readyReplicas}/{.status.availableReplicas}/{.status.fullyLabeledReplicas}").await;
        (s == "3/3/3/3").then_some(())
    })
    .await;
    let events = c
        .ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=frontend",
        ])
        .await;
    assert!(events.contains("SuccessfulCreate"), "{events}");

    // Scale down: to one.
    c.ok(&["scale", "rs", "frontend", "--replicas=1"]).await;
    eventually("1 pod", || async {
        (pods(&c, "tier=frontend").await.len() == 1).then_some(())
    })
    .await;
    // Deleting the ReplicaSet deletes its pods (the garbage collector), not the released one.
    c.ok(&["delete", "rs", "frontend"]).await;
    eventually("no pods", || async {
        pods(&c, "tier=frontend").await.is_empty().then_some(())
    })
    .await;
    assert_eq!(pods(&c, "tier=debug").await.len(), 1);
}

const RC: &str = "
apiVersion: v1
kind: ReplicationController
metadata: {name: nginx}
spec:
  replicas: 2
  selector: {app: nginx}
  template:
    metadata: {labels: {app: nginx}}
    spec:
      containers: [{name: nginx, image: nginx}]
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_controller_scale_to_zero_orphans_and_cascades() {
    let c = cluster().await;
    let f = c.write("rc.yaml", RC);
    c.ok(&["apply", "-f", &f]).await;
    eventually("2 pods", || async {
        (pods(&c, "app=nginx").await.len() == 2).then_some(())
    })
    .await;
    // The seed's way to stop an RC's pods: scale it to zero.
    c.ok(&["scale", "rc", "nginx", "--replicas=0"]).await;
    eventually("0 pods", || async {
        pods(&c, "app=nginx").await.is_empty().then_some(())
    })
    .await;
    c.ok(&["scale", "rc", "nginx", "--replicas=2"]).await;
    let before = eventually("2 pods", || async {
        let p = pods(&c, "app=nginx").await;
        (p.len() == 2).then_some(p)
    })
    .await;

    // Deleted through the API without a propagation policy, a v1 RC orphans its pods.
    let rcs: Api<k8s_openapi::api::core::v1::ReplicationController> =
        Api::namespaced(c.client().await, "default");
    rcs.delete("nginx", &DeleteParams::default()).await.unwrap();
    eventually("orphaned pods", || async {
        let p = pods(&c, "app=nginx").await;
        let gone = c.kubectl(&["get", "rc", "nginx"]).await;
        (!gone.status.success() && p.len() == 2 && p.iter().all(|(_, o)| o == "/")).then_some(())
    })
    .await;
    // A new RC adopts them rather than creating more.
    c.ok(&["apply", "-f", &f]).await;
    eventually("adoption", || async {
        let p = pods(&c, "app=nginx").await;
        let names: Vec<&String> = p.iter().map(|(n, _)| n).collect();
        let want: Vec<&String> = before.iter().map(|(n, _)| n).collect();
        (names == want && p.iter().all(|(_, o)| o == "ReplicationController/nginx")).then_some(())
    })
    .await;
    // kubectl deletes in the background: the pods go too.
    c.ok(&["delete", "rc", "nginx"]).await;
    eventually("no pods", || async {
        pods(&c, "app=nginx").await.is_empty().then_some(())
    })
    .await;
}

const DEPLOY: &str = "
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations: {kubernetes.io/change-cause: first}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: nginx, image: nginx:1.26}]
";

async fn replicasets(c: &Cluster) -> Vec<String> {
    let out = jsonpath(
        c,
        &["get", "rs", "-l", "app=web"],
        r#"{range .items[*]}{.metadata.annotations.deployment\.kubernetes\.io/revision}:{.spec.replicas}:{.spec.template.spec.containers[0].image}{"\n"}{end}"#,
    )
    .await;
    let mut v: Vec<String> = out.lines().map(str::to_string).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_rolls_out_rolls_back_and_pauses() {
    let c = cluster().await;
    let _kubelet = ReadyLoop::start(&c).await;
    let f = c.write("d.yaml", DEPLOY);
    c.ok(&["apply", "-f", &f]).await;
    let out = c
        .ok(&["rollout", "status", "deploy/web", "--timeout=60s"])
        .await;
    assert!(out.contains("successfully rolled out"), "{out}");
    assert_eq!(replicasets(&c).await, ["1:3:nginx:1.26"]);
    let pod_hash = jsonpath(
        &c,
        &["get", "pods", "-l", "app=web"],
        "{.items[0].metadata.labels.pod-template-hash}",
    )
    .await;
    assert!(!pod_hash.is_empty());

    // A new image rolls out to a new ReplicaSet; the old one scales to zero.
    c.ok(&["set", "image", "deploy/web", "nginx=nginx:1.27"])
        .await;
    c.ok(&[
        "annotate",
        "deploy/web",
        "kubernetes.io/change-cause=second",
        "--overwrite",
    ])
    .await;
    let out = c
        .ok(&["rollout", "status", "deploy/web", "--timeout=60s"])
        .await;
    assert!(out.contains("successfully rolled out"), "{out}");
    eventually("rolled", || async {
        (replicasets(&c).await == ["1:0:nginx:1.26", "2:3:nginx:1.27"]).then_some(())
    })
    .await;
    let history = c.ok(&["rollout", "history", "deploy/web"]).await;
    assert!(history.contains("1         first"), "{history}");
    let cond = jsonpath(&c, &["get", "deploy", "web"], r#"{.status.conditions[?(@.type=="Progressing")].reason} {.status.conditions[?(@.type=="Available")].status} {.status.updatedReplicas}/{.status.availableReplicas}"#).await;
    assert_eq!(cond, "NewReplicaSetAvailable True 3/3");

    // Rollback brings revision 1's ReplicaSet back as revision 3.
    c.ok(&["rollout", "undo", "deploy/web"]).await;
    c.ok(&["rollout", "status", "deploy/web", "--timeout=60s"])
        .await;
    eventually("rolled back", || async {
        (replicasets(&c).await == ["2:0:nginx:1.27", "3:3:nginx:1.26"]).then_some(())
    })
    .await;

    // Paused: template changes wait; scaling does not.
    c.ok(&["rollout", "pause", "deploy/web"]).await;
    c.ok(&["set", "image", "deploy/web", "nginx=nginx:1.28"])
        .await;
    c.ok(&["scale", "deploy/web", "--replicas=4"]).await;
    eventually("scaled while paused", || async {
        (replicasets(&c).await == ["2:0:nginx:1.27", "3:4:nginx:1.26"]).then_some(())
    })
    .await;
    let reason = jsonpath(
        &c,
        &["get", "deploy", "web"],
        r#"{.status.conditions[?(@.type=="Progressing")].reason}"#,
    )
    .await;
    assert_eq!(reason, "DeploymentPaused");
    c.ok(&["rollout", "resume", "deploy/web"]).await;
    c.ok(&["rollout", "status", "deploy/web", "--timeout=60s"])
        .await;
    eventually("resumed", || async {
        (replicasets(&c).await == ["2:0:nginx:1.27", "3:0:nginx:1.26", "4:4:nginx:1.28"])
            .then_some(())
    })
    .await;
    let pods_now = pods(&c, "app=web").await;
    assert_eq!(pods_now.len(), 4, "{pods_now:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_recreate_and_revision_history_limit() {
    let c = cluster().await;
    let _kubelet = ReadyLoop::start(&c).await;
    let manifest = DEPLOY.replace(
        "replicas: 3",
        "replicas: 2\n  revisionHistoryLimit: 1\n  strategy: {type: Recreate}",
    );
    let f = c.write("d.yaml", &manifest);
    c.ok(&["apply", "-f", &f]).await;
    c.ok(&["rollout", "status", "deploy/web", "--timeout=60s"])
        .await;
    for v in ["1.27", "1.28", "1.29"] {
        c.ok(&["set", "image", "deploy/web", &format!("nginx=nginx:{v}")])
            .await;
        c.ok(&["rollout", "status", "deploy/web", "--timeout=60s"])
            .await;
    }
    // One old ReplicaSet is kept besides the current one.
    eventually("history limit", || async {
        (replicasets(&c).await == ["3:0:nginx:1.28", "4:2:nginx:1.29"]).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_collector_cascades_orphans_and_waits_in_the_foreground() {
    let c = cluster().await;
    let f = c.write("d.yaml", DEPLOY);
    c.ok(&["apply", "-f", &f]).await;
    eventually("3 pods", || async {
        (pods(&c, "app=web").await.len() == 3).then_some(())
    })
    .await;
    // Background (kubectl's default): the deployment goes at once, its ReplicaSet and pods after.
    c.ok(&["delete", "deploy", "web"]).await;
    eventually("everything gone", || async {
        (replicasets(&c).await.is_empty() && pods(&c, "app=web").await.is_empty()).then_some(())
    })
    .await;

    // Orphan: the ReplicaSet stays, without its owner reference.
    c.ok(&["apply", "-f", &f]).await;
    eventually("3 pods", || async {
        (pods(&c, "app=web").await.len() == 3).then_some(())
    })
    .await;
    c.ok(&["delete", "deploy", "web", "--cascade=orphan"]).await;
    eventually("orphaned ReplicaSet", || async {
        let owners = jsonpath(
            &c,
            &["get", "rs", "-l", "app=web"],
            "{.items[*].metadata.ownerReferences}",
        )
        .await;
        let gone = !c.kubectl(&["get", "deploy", "web"]).await.status.success();
        (gone && owners.is_empty() && replicasets(&c).await.len() == 1).then_some(())
    })
    .await;
    assert_eq!(pods(&c, "app=web").await.len(), 3);
    c.ok(&["delete", "rs", "-l", "app=web"]).await;

    // Foreground: the deployment is visible, being deleted, until its dependents are gone.
    c.ok(&["apply", "-f", &f]).await;
    eventually("3 pods", || async {
        (pods(&c, "app=web").await.len() == 3).then_some(())
    })
    .await;
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(c.client().await, "default");
    let d = deployments
        .delete("web", &DeleteParams::foreground())
        .await
        .unwrap();
    let marked = d.left().expect("a foreground delete returns the object");
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert!(
        marked
            .metadata
            .finalizers
            .unwrap()
            .contains(&"foregroundDeletion".to_string())
    );
    eventually("everything gone", || async {
        let gone = !c.kubectl(&["get", "deploy", "web"]).await.status.success();
        (gone && replicasets(&c).await.is_empty() && pods(&c, "app=web").await.is_empty())
            .then_some(())
    })
    .await;
}

/// Marks pods Ready a little after they appear, so a rollout's steps can be observed.
struct SlowKubelet(tokio::task::JoinHandle<()>);

impl SlowKubelet {
    async fn start(c: &Cluster) -> SlowKubelet {
        let client = c.client().await;
        SlowKubelet(tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(400)).await;
                make_ready(&client).await;
            }
        }))
    }
}

impl Drop for SlowKubelet {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_steps_respect_max_surge_and_max_unavailable() {
    use futures::StreamExt;
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use kube::runtime::watcher;
    let c = cluster().await;
    let _kubelet = SlowKubelet::start(&c).await;
    let manifest = DEPLOY.replace(
        "replicas: 3",
        "replicas: 4\n  strategy:\n    rollingUpdate: {maxSurge: 1, maxUnavailable: 1}",
    );
    let f = c.write("d.yaml", &manifest);
    c.ok(&["apply", "-f", &f]).await;
    c.ok(&["rollout", "status", "deploy/web", "--timeout=60s"])
        .await;
    // Watch every ReplicaSet change during the rollout.
    let rss: Api<ReplicaSet> = Api::namespaced(c.client().await, "default");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let watch = tokio::spawn(async move {
        let mut s = watcher::watcher(rss, watcher::Config::default()).boxed();
        let mut state: std::collections::BTreeMap<String, (i32, i32)> = Default::default();
        while let Some(Ok(ev)) = s.next().await {
            if let watcher::Event::Apply(rs) | watcher::Event::InitApply(rs) = ev {
                let spec = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
                let avail = rs
                    .status
                    .as_ref()
                    .and_then(|s| s.available_replicas)
                    .unwrap_or(0);
                state.insert(rs.metadata.name.unwrap(), (spec, avail));
                let total: i32 = state.values().map(|v| v.0).sum();
                let available: i32 = state.values().map(|v| v.1).sum();
                let _ = tx.send((total, available));
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.ok(&["set", "image", "deploy/web", "nginx=nginx:1.27"])
        .await;
    c.ok(&["rollout", "status", "deploy/web", "--timeout=60s"])
        .await;
    watch.abort();
    let mut steps = 0;
    while let Ok((total, available)) = rx.try_recv() {
        steps += 1;
        assert!(total <= 5, "more than replicas + maxSurge: {total}");
        assert!(
            available >= 3 || total == 0,
            "fewer than replicas - maxUnavailable: {available}"
        );
    }
    assert!(steps > 4, "the rollout was not observed ({steps} changes)");
    assert_eq!(replicasets(&c).await, ["1:0:nginx:1.26", "2:4:nginx:1.27"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_manager_restarted_mid_rollout_finishes_it() {
    let c = Cluster::start(false).await;
    let _kubelet = SlowKubelet::start(&c).await;
    let client = controllers::client(c.config().await).unwrap();
    let first = tokio::spawn(controllers::run_controllers(
        client.clone(),
        Default::default(),
    ));
    let manifest = DEPLOY.replace(
        "replicas: 3",
        "replicas: 6\n  strategy:\n    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}",
    );
    let f = c.write("d.yaml", &manifest);
    c.ok(&["apply", "-f", &f]).await;
    c.ok(&["rollout", "status", "deploy/web", "--timeout=60s"])
        .await;
    c.ok(&["set", "image", "deploy/web", "nginx=nginx:1.27"])
        .await;
    // Stop it part-way (a new ReplicaSet exists, the old one still has pods).
    eventually("a rollout under way", || async {
        let rs = replicasets(&c).await;
        (rs.len() == 2 && !rs[0].starts_with("1:0:")).then_some(())
    })
    .await;
    first.abort();
    tokio::time::sleep(Duration::from_secs(1)).await;
    tokio::spawn(controllers::run_controllers(client, Default::default()));
    let out = c
        .ok(&["rollout", "status", "deploy/web", "--timeout=90s"])
        .await;
    assert!(out.contains("successfully rolled out"), "{out}");
    assert_eq!(replicasets(&c).await, ["1:0:nginx:1.26", "2:6:nginx:1.27"]);
    assert_eq!(pods(&c, "app=web").await.len(), 6);
}

const NAMESPACE_CONTENT: &str = "
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: x}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx:1.27}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: one, namespace: x}
data: {a: b}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: two, namespace: x}
data: {c: d}
---
apiVersion: v1
kind: Pod
metadata: {name: held, namespace: x, finalizers: [example.com/hold]}
spec:
  containers: [{name: c, image: busybox}]
";

/// The namespace's conditions as "type=status reason: message" lines.
async fn namespace_conditions(c: &Cluster, ns: &str) -> String {
    jsonpath(
        c,
        &["get", "ns", ns],
        r#"{.status.phase}{"\n"}{range .status.conditions[*]}{.type}={.status} {.reason}: {.message}{"\n"}{end}"#,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_namespace_deletes_its_content_then_the_namespace() {
    let c = cluster().await;
    c.ok(&["create", "namespace", "x"]).await;
    let f = c.write("content.yaml", NAMESPACE_CONTENT);
    c.ok(&["apply", "-f", &f]).await;
    eventually("the deployment's pods", || async {
        let out = c
            .ok(&["get", "pods", "-n", "x", "-l", "app=web", "-o", "name"])
            .await;
        (out.lines().count() == 2).then_some(())
    })
    .await;
    let out = c.ok(&["delete", "namespace", "x", "--wait=false"]).await;
    assert!(out.contains(r#"namespace "x" deleted"#), "{out}");
    // Everything but the pod a finalizer holds goes; the namespace says what is left.
    let conditions =
        apiserver::testing::eventually_within(60, "conditions naming the held pod", || async {
            let out = namespace_conditions(&c, "x").await;
            out.contains("NamespaceFinalizersRemaining=True")
                .then_some(out)
        })
        .await;
    assert!(conditions.starts_with("Terminating\n"), "{conditions}");
    for line in [
        "NamespaceContentRemaining=True SomeResourcesRemain: Some resources are remaining: pods. has 1 resource instances",
        "NamespaceFinalizersRemaining=True SomeFinalizersRemain: Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances",
        "NamespaceDeletionDiscoveryFailure=False ResourcesDiscovered: All resources successfully discovered",
        "NamespaceDeletionGroupVersionParsingFailure=False ParsedGroupVersions: All legacy kube types successfully parsed",
        "NamespaceDeletionContentFailure=False ContentDeleted: All content successfully deleted, may be waiting on finalization",
    ] {
        assert!(conditions.contains(line), "{line}\nnot in\n{conditions}");
    }
    let left = c
        .ok(&["get", "deploy,rs,pods,configmaps", "-n", "x", "-o", "name"])
        .await;
    assert_eq!(left.trim(), "pod/held");
    let err = c.fails(&["create", "configmap", "late", "-n", "x"]).await;
    assert!(err.contains("because it is being terminated"), "{err}");
    // Still held: the namespace stays.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        namespace_conditions(&c, "x")
            .await
            .starts_with("Terminating")
    );
    c.ok(&[
        "patch",
        "pod",
        "held",
        "-n",
        "x",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ])
    .await;
    apiserver::testing::eventually_within(60, "the namespace to go", || async {
        let out = c.kubectl(&["get", "ns", "x"]).await;
        String::from_utf8_lossy(&out.stderr)
            .contains(r#"namespaces "x" not found"#)
            .then_some(())
    })
    .await;
    // `kubectl delete ns --wait` (the default) returns once the namespace is gone.
    c.ok(&["create", "namespace", "y"]).await;
    c.ok(&["create", "configmap", "c", "-n", "y", "--from-literal=a=b"])
        .await;
    let started = std::time::Instant::now();
    let out = c.ok(&["delete", "ns", "y", "--timeout=60s"]).await;
    assert!(out.contains(r#"namespace "y" deleted"#), "{out}");
    let err = c.fails(&["get", "ns", "y"]).await;
    assert!(err.contains("not found"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(60));
    // A namespace of that name starts empty.
    c.ok(&["create", "namespace", "y"]).await;
    let out = c.ok(&["get", "configmaps", "-n", "y", "-o", "name"]).await;
    assert_eq!(out.trim(), "");
}

const REFUSED: &str = "
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: prio}
spec:
  replicas: 2
  selector: {matchLabels: {app: prio}}
  template:
    metadata: {labels: {app: prio}}
    spec:
      priorityClassName: later
      containers: [{name: c, image: busybox}]
---
apiVersion: v1
kind: ReplicationController
metadata: {name: prio-rc}
spec:
  replicas: 2
  selector: {app: prio-rc}
  template:
    metadata: {labels: {app: prio-rc}}
    spec:
      priorityClassName: later
      containers: [{name: c, image: busybox}]
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_failure_condition_reports_refused_pods_until_they_are_created() {
    let c = cluster().await;
    let f = c.write("refused.yaml", REFUSED);
    c.ok(&["apply", "-f", &f]).await;
    for (kind, name) in [("rs", "prio"), ("rc", "prio-rc")] {
        let cond = eventually("a ReplicaFailure condition", || async {
            let out = jsonpath(
                &c,
                &["get", kind, name],
                r#"{.status.conditions[?(@.type=="ReplicaFailure")].status} {.status.conditions[?(@.type=="ReplicaFailure")].reason} {.status.conditions[?(@.type=="ReplicaFailure")].message}"#,
            )
            .await;
            (!out.trim().is_empty()).then_some(out)
        })
        .await;
        assert!(
            cond.starts_with(&format!(r#"True FailedCreate pods "{name}-"#))
                && cond.ends_with(" is forbidden: no PriorityClass with name later was found"),
            "{cond}"
        );
        let event = eventually("a FailedCreate event", || async {
            let out = jsonpath(
                &c,
                &[
                    "get",
                    "events",
                    "--field-selector",
                    &format!("reason=FailedCreate,involvedObject.name={name}"),
                ],
                "{.items[0].type} {.items[0].message}",
            )
            .await;
            (!out.trim().is_empty()).then_some(out)
        })
        .await;
        assert!(
            event.starts_with(&format!(r#"Warning Error creating: pods "{name}-"#))
                && event.ends_with("no PriorityClass with name later was found"),
            "{event}"
        );
    }
    // Once the class exists the pods are created and the condition goes.
    c.ok(&["create", "priorityclass", "later", "--value=1000"])
        .await;
    for (kind, name) in [("rs", "prio"), ("rc", "prio-rc")] {
        eventually("the replicas, and no ReplicaFailure", || async {
            let out = jsonpath(
                &c,
                &["get", kind, name],
                "{.status.replicas} {.status.conditions}",
            )
            .await;
            (out.trim() == "2").then_some(())
        })
        .await;
    }
}
