//! The disruption controller and the API server's eviction subresource together: the whole
//! controller manager against a real API server, PodDisruptionBudgets and workloads made with
//! the real kubectl. No scheduler or kubelet runs: pods are marked Running and Ready through
//! the status subresource, as a kubelet would (unbound pods are deleted at once).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

use std::time::Duration;

use apiserver::testing::{Cluster, eventually, eventually_within};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use kube::api::{ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

/// A cluster running every controller, keeping events long enough to look at.
async fn cluster() -> Cluster {
    let c = Cluster::start_with(false, Duration::from_secs(600)).await;
    let client = controllers::client(c.config().await).unwrap();
    tokio::spawn(controllers::run(client, "cm".to_string()));
    c
}

/// A client that shows a 429 as it comes (kube's default client retries 429s with back-off
/// for minutes, as a kubelet-less test cannot wait for).
async fn client(c: &Cluster) -> Client {
    let mut config = c.config().await;
    config.default_retry = false;
    Client::try_from(config).unwrap()
}

/// POSTs an Eviction of `pod` (with `delete_options`, if any): the status and body.
async fn evict(
    client: &Client,
    ns: &str,
    pod: &str,
    delete_options: Option<Value>,
) -> (u16, String) {
    let mut body = json!({"apiVersion": "policy/v1", "kind": "Eviction",
                          "metadata": {"name": pod, "namespace": ns}});
    if let Some(o) = delete_options {
        body["deleteOptions"] = o;
    }
    let req = http::Request::post(format!("/api/v1/namespaces/{ns}/pods/{pod}/eviction"))
        .header("Content-Type", "application/json")
        .body(serde_json::to_vec(&body).unwrap())
        .unwrap();
    let resp = client
        .send(req.map(kube::client::Body::from))
        .await
        .unwrap();
    let code = resp.status().as_u16();
    let bytes = resp.into_body().collect_bytes().await.unwrap();
    (code, String::from_utf8(bytes.to_vec()).unwrap())
}

const CREATED: &str =
    r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success","code":201}"#;

fn too_many(pdb: &str, needs: i32, has: i32) -> String {
    format!(
        r#"{{"kind":"Status","apiVersion":"v1","metadata":{{}},"status":"Failure","message":"Cannot evict pod as it would violate the pod's disruption budget.","reason":"TooManyRequests","details":{{"causes":[{{"reason":"DisruptionBudget","message":"The disruption budget {pdb} needs {needs} healthy pods and has {has} currently"}}]}},"code":429}}"#
    )
}

/// Marks a pod Running and Ready (or Running and not Ready), as its kubelet would.
async fn set_ready(pods: &Api<Pod>, name: &str, ready: bool) {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let status = if ready { "True" } else { "False" };
    pods.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": status, "lastTransitionTime": now}
        ]}})),
    )
    .await
    .unwrap();
}

/// The names of the pods labelled `app=<app>` not being deleted, sorted.
async fn pod_names(pods: &Api<Pod>, app: &str) -> Vec<String> {
    let mut names: Vec<String> = pods
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap()
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| p.metadata.name.unwrap())
        .collect();
    names.sort();
    names
}

/// Waits for `n` pods of `app` and marks them all Ready.
async fn ready_pods(pods: &Api<Pod>, app: &str, n: usize) -> Vec<String> {
    let names = eventually(&format!("{n} pods of {app}"), || async {
        Some(pod_names(pods, app).await).filter(|p| p.len() == n)
    })
    .await;
    for name in &names {
        set_ready(pods, name, true).await;
    }
    names
}

/// Waits until the budget's status satisfies `check`.
async fn status_where(
    pdbs: &Api<PodDisruptionBudget>,
    name: &str,
    what: &str,
    check: impl Fn(&PodDisruptionBudgetStatus) -> bool,
) -> PodDisruptionBudgetStatus {
    eventually(what, || async {
        let s = pdbs.get(name).await.ok()?.status?;
        check(&s).then_some(s)
    })
    .await
}

/// `(expectedPods, currentHealthy, desiredHealthy, disruptionsAllowed)`.
fn numbers(s: &PodDisruptionBudgetStatus) -> (i32, i32, i32, i32) {
    (
        s.expected_pods,
        s.current_healthy,
        s.desired_healthy,
        s.disruptions_allowed,
    )
}

fn condition(s: &PodDisruptionBudgetStatus) -> (String, String, String) {
    let c = s
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "DisruptionAllowed")
        .expect("a DisruptionAllowed condition");
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

fn replica_set(name: &str, replicas: i32) -> String {
    format!(
        "apiVersion: apps/v1
kind: ReplicaSet
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: app, image: app:1}}]
"
    )
}

fn budget(name: &str, app: &str, rule: &str) -> String {
    format!(
        "apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {{name: {name}}}
spec:
  {rule}
  selector: {{matchLabels: {{app: {app}}}}}
"
    )
}

/// The events about an object: `(type, reason, message)`.
async fn events_of(client: &Client, name: &str) -> Vec<(String, String, String)> {
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    events
        .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
        .await
        .unwrap()
        .into_iter()
        .map(|e| {
            (
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.message.unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_available_refuses_an_eviction_until_a_pod_is_spare() {
    let c = cluster().await;
    let client = client(&c).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");
    c.ok(&["apply", "-f", &c.write("rs.yaml", &replica_set("web", 2))])
        .await;
    let names = ready_pods(&pods, "web", 2).await;
    c.ok(&[
        "apply",
        "-f",
        &c.write("pdb.yaml", &budget("web-pdb", "web", "minAvailable: 2")),
    ])
    .await;

    let s = status_where(&pdbs, "web-pdb", "the budget counted", |s| {
        s.expected_pods == 2
    })
    .await;
    assert_eq!(numbers(&s), (2, 2, 2, 0));
    assert_eq!(s.observed_generation, Some(1));
    assert_eq!(
        condition(&s),
        ("False".into(), "InsufficientPods".into(), String::new())
    );

    // Both pods are needed: the eviction is refused in upstream's words.
    let (code, body) = evict(&client, "default", &names[0], None).await;
    assert_eq!(
        (code, body.trim_end()),
        (429, too_many("web-pdb", 2, 2).as_str())
    );

    // A third ready pod makes one spare.
    c.ok(&["scale", "rs", "web", "--replicas=3"]).await;
    let names = ready_pods(&pods, "web", 3).await;
    let s = status_where(&pdbs, "web-pdb", "one disruption allowed", |s| {
        s.disruptions_allowed == 1
    })
    .await;
    assert_eq!(numbers(&s), (3, 3, 2, 1));
    assert_eq!(
        condition(&s),
        ("True".into(), "SufficientPods".into(), String::new())
    );

    // Watch the budget and the pods to see the eviction's own writes, which the controller
    // soon replaces (the pod is gone, so it leaves disruptedPods).
    let rv = pdbs
        .get("web-pdb")
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut budget_events = pdbs
        .watch(&WatchParams::default().fields("metadata.name=web-pdb"), &rv)
        .await
        .unwrap()
        .boxed();
    let pod_rv = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut pod_events = pods
        .watch(&WatchParams::default().labels("app=web"), &pod_rv)
        .await
        .unwrap()
        .boxed();

    let victim = names[0].clone();
    let (code, body) = evict(&client, "default", &victim, None).await;
    assert_eq!((code, body.trim_end()), (201, CREATED));
    eventually("the evicted pod gone", || async {
        match pods.get_opt(&victim).await.unwrap() {
            None => Some(()),
            Some(p) => p.metadata.deletion_timestamp.map(|_| ()),
        }
    })
    .await;

    // The eviction took the disruption and listed the pod with the time.
    let taken = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(ev)) = budget_events.next().await {
            if let WatchEvent::Modified(p) = ev {
                let s = p.status.unwrap();
                if s.disrupted_pods
                    .as_ref()
                    .is_some_and(|d| d.contains_key(&victim))
                {
                    return s;
                }
            }
        }
        panic!("the budget watch ended");
    })
    .await
    .expect("the eviction's write to the budget");
    assert_eq!(taken.disruptions_allowed, 0);
    assert_eq!(condition(&taken).1, "InsufficientPods");
    // The pod was marked as a disruption target before it went.
    let gone = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(ev)) = pod_events.next().await {
            if let WatchEvent::Deleted(p) = ev
                && p.metadata.name.as_deref() == Some(victim.as_str())
            {
                return p;
            }
        }
        panic!("the pod watch ended");
    })
    .await
    .expect("the evicted pod's deletion");
    let target = gone
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "DisruptionTarget")
        .expect("a DisruptionTarget condition");
    assert_eq!(
        (
            target.status.as_str(),
            target.reason.as_deref(),
            target.message.as_deref()
        ),
        (
            "True",
            Some("EvictionByEvictionAPI"),
            Some("Eviction API: evicting")
        )
    );

    // The replacement the ReplicaSet makes is not ready: nothing spare again, and the
    // controller has dropped the deleted pod from disruptedPods.
    let s = status_where(&pdbs, "web-pdb", "the replacement counted", |s| {
        s.expected_pods == 3 && s.disrupted_pods.is_none()
    })
    .await;
    assert_eq!(numbers(&s), (3, 2, 2, 0));

    // A second budget over the same pods: the eviction subresource refuses to choose.
    c.ok(&[
        "apply",
        "-f",
        &c.write("pdb2.yaml", &budget("web-pdb2", "web", "maxUnavailable: 1")),
    ])
    .await;
    let (code, body) = evict(&client, "default", &names[1], None).await;
    assert_eq!(
        (code, body.trim_end()),
        (
            500,
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.","code":500}"#
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_unavailable_percentage_scales_from_the_deployment() {
    let c = cluster().await;
    let client = client(&c).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");
    c.ok(&[
        "create",
        "deployment",
        "api",
        "--image=app:1",
        "--replicas=3",
    ])
    .await;
    ready_pods(&pods, "api", 3).await;
    c.ok(&[
        "apply",
        "-f",
        &c.write("pdb.yaml", &budget("api", "api", "maxUnavailable: 50%")),
    ])
    .await;
    // 50% of the Deployment's 3 replicas, rounded up, may be down: 1 must stay healthy.
    let s = status_where(&pdbs, "api", "the budget counted", |s| s.expected_pods == 3).await;
    assert_eq!(numbers(&s), (3, 3, 1, 2));

    // Scaling the Deployment moves the expectation before any pod is ready.
    c.ok(&["scale", "deployment", "api", "--replicas=5"]).await;
    let s = status_where(&pdbs, "api", "the new scale", |s| s.expected_pods == 5).await;
    assert_eq!(s.desired_healthy, 2);
    ready_pods(&pods, "api", 5).await;
    let s = status_where(&pdbs, "api", "five healthy", |s| s.current_healthy == 5).await;
    assert_eq!(numbers(&s), (5, 5, 2, 3));

    // A dry run takes nothing and deletes nothing.
    let name = pod_names(&pods, "api").await.remove(0);
    let (code, body) = evict(&client, "default", &name, Some(json!({"dryRun": ["All"]}))).await;
    assert_eq!((code, body.trim_end()), (201, CREATED));
    assert!(pods.get_opt(&name).await.unwrap().is_some());
    assert!(
        pdbs.get("api")
            .await
            .unwrap()
            .status
            .unwrap()
            .disrupted_pods
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budgets_without_pods_or_with_unscalable_owners() {
    let c = cluster().await;
    let client = client(&c).await;
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");

    // Nothing matches: no pods expected, nothing allowed, a NoPods event.
    c.ok(&[
        "apply",
        "-f",
        &c.write("none.yaml", &budget("none", "nothing", "minAvailable: 1")),
    ])
    .await;
    let s = status_where(&pdbs, "none", "the empty budget counted", |s| {
        s.observed_generation == Some(1)
    })
    .await;
    assert_eq!(numbers(&s), (0, 0, 1, 0));
    assert_eq!(condition(&s).1, "InsufficientPods");
    eventually("the NoPods event", || async {
        let events = events_of(&client, "none").await;
        events
            .contains(&(
                "Normal".into(),
                "NoPods".into(),
                "No matching pods found".into(),
            ))
            .then_some(())
    })
    .await;

    // A pod whose controller has no scale subresource cannot be counted as a share.
    let cronjob = c
        .ok(&[
            "create",
            "cronjob",
            "nightly",
            "--image=app:1",
            "--schedule=0 0 1 1 *",
            "-o",
            "jsonpath={.metadata.uid}",
        ])
        .await;
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "owned", "labels": {"app": "owned"}, "ownerReferences": [
            {"apiVersion": "batch/v1", "kind": "CronJob", "name": "nightly", "uid": cronjob, "controller": true}
        ]},
        "spec": {"containers": [{"name": "app", "image": "app:1"}]},
    });
    c.ok(&["apply", "-f", &c.write("owned.json", &pod.to_string())])
        .await;
    c.ok(&[
        "apply",
        "-f",
        &c.write(
            "owned-pdb.yaml",
            &budget("owned", "owned", "maxUnavailable: 1"),
        ),
    ])
    .await;
    let s = status_where(&pdbs, "owned", "the sync failure", |s| {
        s.conditions
            .iter()
            .flatten()
            .any(|c| c.reason == "SyncFailed")
    })
    .await;
    assert_eq!(s.disruptions_allowed, 0);
    assert_eq!(
        condition(&s),
        (
            "False".into(),
            "SyncFailed".into(),
            "cronjobs.batch does not implement the scale subresource".into()
        )
    );
    eventually("the CalculateExpectedPodCountFailed event", || async {
        let events = events_of(&client, "owned").await;
        events
            .iter()
            .any(|(t, r, m)| {
                t == "Warning"
                    && r == "CalculateExpectedPodCountFailed"
                    && m == "Failed to calculate the number of expected pods: cronjobs.batch does not implement the scale subresource"
            })
            .then_some(())
    })
    .await;

    // A pod with no controller at all is left out of a percentage, with a warning.
    let bare = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "bare", "labels": {"app": "bare"}},
        "spec": {"containers": [{"name": "app", "image": "app:1"}]},
    });
    c.ok(&["apply", "-f", &c.write("bare.json", &bare.to_string())])
        .await;
    c.ok(&[
        "apply",
        "-f",
        &c.write(
            "bare-pdb.yaml",
            &budget("bare", "bare", "minAvailable: 50%"),
        ),
    ])
    .await;
    let s = status_where(&pdbs, "bare", "the unmanaged budget counted", |s| {
        s.observed_generation == Some(1)
    })
    .await;
    assert_eq!(numbers(&s), (0, 0, 0, 0));
    eventually("the UnmanagedPods event", || async {
        events_of(&client, "bare")
            .await
            .iter()
            .any(|(t, r, m)| t == "Warning" && r == "UnmanagedPods" && m.starts_with(
                "Pods selected by this PodDisruptionBudget (selector: &LabelSelector{MatchLabels:map[string]string{app: bare,},MatchExpressions:[]LabelSelectorRequirement{},}) were found to be unmanaged."))
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_and_unhealthy_pods_go_as_upstream_lets_them() {
    let c = cluster().await;
    let client = client(&c).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");
    c.ok(&["apply", "-f", &c.write("rs.yaml", &replica_set("web", 2))])
        .await;
    let names = eventually("two pods", || async {
        Some(pod_names(&pods, "web").await).filter(|p| p.len() == 2)
    })
    .await;
    c.ok(&[
        "apply",
        "-f",
        &c.write("pdb.yaml", &budget("web", "web", "minAvailable: 2")),
    ])
    .await;
    status_where(&pdbs, "web", "the budget counted", |s| s.expected_pods == 2).await;

    // A Pending pod disrupts nothing by going: the budget is not asked.
    let (code, body) = evict(&client, "default", &names[0], None).await;
    assert_eq!((code, body.trim_end()), (201, CREATED));
    eventually("the pending pod gone", || async {
        pods.get_opt(&names[0])
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;

    // One ready pod and one running but unready: the budget (2) is not met, so by default
    // the unready one stays.
    let names = eventually("the replacement", || async {
        Some(pod_names(&pods, "web").await).filter(|p| p.len() == 2)
    })
    .await;
    set_ready(&pods, &names[0], true).await;
    set_ready(&pods, &names[1], false).await;
    status_where(&pdbs, "web", "one healthy", |s| s.current_healthy == 1).await;
    let (code, body) = evict(&client, "default", &names[1], None).await;
    assert_eq!(
        (code, body.trim_end()),
        (429, too_many("web", 2, 1).as_str())
    );

    // AlwaysAllow lets an unhealthy pod go whatever the budget says.
    pdbs.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"unhealthyPodEvictionPolicy": "AlwaysAllow"}})),
    )
    .await
    .unwrap();
    let (code, body) = evict(&client, "default", &names[1], None).await;
    assert_eq!((code, body.trim_end()), (201, CREATED));
    // ... but not a healthy one.
    let (code, _) = evict(&client, "default", &names[0], None).await;
    assert_eq!(code, 429);

    // The eviction names its pod and is refused for another.
    let req = http::Request::post(format!(
        "/api/v1/namespaces/default/pods/{}/eviction",
        names[0]
    ))
    .header("Content-Type", "application/json")
    .body(
        serde_json::to_vec(
            &json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "other"}}),
        )
        .unwrap(),
    )
    .unwrap();
    let err = client.request_text(req).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("name in URL does not match name in Eviction object"),
        "{err}"
    );
}

/// Discovery lists `pods/eviction` as upstream does (kubectl drain looks for it there).
async fn assert_discovery(c: &Cluster) {
    let out = c.ok(&["get", "--raw", "/api/v1"]).await;
    let list: Value = serde_json::from_str(&out).unwrap();
    let eviction = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "pods/eviction")
        .cloned()
        .expect("pods/eviction listed");
    assert_eq!(
        eviction,
        json!({"name": "pods/eviction", "singularName": "", "namespaced": true, "group": "policy",
               "version": "v1", "kind": "Eviction", "verbs": ["create"]})
    );
}

/// `kubectl drain` evicts a node's pods through the budget, retrying while it refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_drain_waits_for_the_budget() {
    let c = cluster().await;
    assert_discovery(&c).await;
    let client = client(&c).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}});
    c.ok(&["apply", "-f", &c.write("node.json", &node.to_string())])
        .await;
    c.ok(&["apply", "-f", &c.write("rs.yaml", &replica_set("web", 2))])
        .await;
    let names = eventually("two pods", || async {
        Some(pod_names(&pods, "web").await).filter(|p| p.len() == 2)
    })
    .await;
    // Bound to the node, as the scheduler would.
    for name in &names {
        let binding = json!({"apiVersion": "v1", "kind": "Binding",
                             "metadata": {"name": name}, "target": {"kind": "Node", "name": "n1"}});
        let req = http::Request::post(format!("/api/v1/namespaces/default/pods/{name}/binding"))
            .header("Content-Type", "application/json")
            .body(serde_json::to_vec(&binding).unwrap())
            .unwrap();
        client.request_text(req).await.unwrap();
        set_ready(&pods, name, true).await;
    }
    c.ok(&[
        "apply",
        "-f",
        &c.write("pdb.yaml", &budget("web", "web", "minAvailable: 1")),
    ])
    .await;
    status_where(&pdbs, "web", "one spare", |s| s.disruptions_allowed == 1).await;

    // The first eviction goes through, the second waits for the replacement to be ready.
    let kubeconfig = c.kubeconfig();
    let drain = tokio::task::spawn_blocking(move || {
        std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["drain", "n1", "--grace-period=0", "--timeout=60s", "-v=6"])
            .output()
            .unwrap()
    });
    let replacement = eventually_within(30, "the replacement", || async {
        pod_names(&pods, "web")
            .await
            .into_iter()
            .find(|n| !names.contains(n))
    })
    .await;
    set_ready(&pods, &replacement, true).await;
    let out = drain.await.unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "kubectl drain failed:\n{stdout}\n{stderr}"
    );
    for name in &names {
        assert!(
            stdout.contains(&format!("pod/{name} evicted")),
            "{stdout}\n{stderr}"
        );
    }
    assert!(stdout.contains("node/n1 drained"), "{stdout}");
    assert!(
        stderr.contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "{stderr}"
    );
}
