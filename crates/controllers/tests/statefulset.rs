//! The StatefulSet controller against a real API server, driven with the real kubectl. No
//! scheduler or kubelet runs: pods stay Pending until a test marks them Running and Ready
//! through the status subresource, as a kubelet would (unbound pods are deleted at once).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apiserver::testing::{Cluster, eventually};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use serde_json::json;

async fn cluster() -> Cluster {
    let c = Cluster::start(false).await;
    let client = controllers::client(c.config().await).unwrap();
    tokio::spawn(controllers::run(client, "cm".to_string()));
    c
}

/// Asserts `check` holds on every poll for `d`.
async fn holds_for<F, Fut>(what: &str, d: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let until = tokio::time::Instant::now() + d;
    while tokio::time::Instant::now() < until {
        assert!(check().await, "{what} stopped holding");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The set's pods by name.
async fn pods(api: &Api<Pod>) -> BTreeMap<String, Pod> {
    api.list(&ListParams::default().labels("app=nginx"))
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.metadata.name.clone().unwrap(), p))
        .collect()
}

fn revision(p: &Pod) -> String {
    p.metadata.labels.as_ref().unwrap()["controller-revision-hash"].clone()
}

fn uid(p: &Pod) -> String {
    p.metadata.uid.clone().unwrap()
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Marks a pod Running and Ready (or not Ready), as its kubelet would.
async fn set_ready(api: &Api<Pod>, name: &str, ready: bool) {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let status = if ready { "True" } else { "False" };
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": status, "lastTransitionTime": now}
        ]}})),
    )
    .await
    .unwrap();
}

/// Marks every pod of the set that is not Ready yet Ready.
async fn make_all_ready(api: &Api<Pod>) {
    for (name, p) in pods(api).await {
        if !is_ready(&p) && p.metadata.deletion_timestamp.is_none() {
            let _ = api
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": {"phase": "Running", "conditions": [
                        {"type": "Ready", "status": "True",
                         "lastTransitionTime": k8s_openapi::jiff::Timestamp::now().to_string()}
                    ]}})),
                )
                .await;
        }
    }
}

/// A kubelet stand-in that keeps every pod of the set Ready until dropped.
struct ReadyLoop(tokio::task::JoinHandle<()>);

impl ReadyLoop {
    fn start(api: &Api<Pod>) -> ReadyLoop {
        let api = api.clone();
        ReadyLoop(tokio::spawn(async move {
            loop {
                make_all_ready(&api).await;
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

/// Every pod addition and deletion of the set, in the order the API server made them.
struct PodLog {
    seen: Arc<Mutex<Vec<(String, String)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl PodLog {
    async fn start(api: &Api<Pod>) -> PodLog {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let mut events = api
            .watch(&WatchParams::default().labels("app=nginx"), "0")
            .await
            .unwrap()
            .boxed();
        let task = tokio::spawn(async move {
            while let Some(Ok(ev)) = events.next().await {
                let (what, p) = match ev {
                    WatchEvent::Added(p) => ("added", p),
                    WatchEvent::Deleted(p) => ("deleted", p),
                    _ => continue,
                };
                log.lock()
                    .unwrap()
                    .push((what.to_string(), p.metadata.name.unwrap()));
            }
        });
        PodLog { seen, task }
    }

    fn names(&self, what: &str) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(w, _)| w == what)
            .map(|(_, n)| n.clone())
            .collect()
    }
}

impl Drop for PodLog {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn jsonpath(c: &Cluster, args: &[&str], path: &str) -> String {
    let mut a: Vec<&str> = args.to_vec();
    let p = format!("jsonpath={path}");
    a.extend(["-o", &p]);
    c.ok(&a).await
}

const STS: &str = "
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: nginx
  replicas: 3
  selector: {matchLabels: {app: nginx}}
  template:
    metadata: {labels: {app: nginx}}
    spec:
      containers: [{name: nginx, image: 'nginx:1.27'}]
  volumeClaimTemplates:
  - metadata: {name: www}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_ready_creates_in_order_keeps_claims_and_scales_down_in_reverse() {
    let c = cluster().await;
    let api: Api<Pod> = Api::namespaced(c.client().await, "default");
    let log = PodLog::start(&api).await;
    let f = c.write("sts.yaml", STS);
    c.ok(&["apply", "-f", &f]).await;

    let web0 = eventually("web-0", || async { pods(&api).await.remove("web-0") }).await;
    let spec = web0.spec.as_ref().unwrap();
    assert_eq!(spec.hostname.as_deref(), Some("web-0"));
    assert_eq!(spec.subdomain.as_deref(), Some("nginx"));
    let labels = web0.metadata.labels.as_ref().unwrap();
    assert_eq!(labels["statefulset.kubernetes.io/pod-name"], "web-0");
    assert_eq!(labels["apps.kubernetes.io/pod-index"], "0");
    assert!(revision(&web0).starts_with("web-"), "{labels:?}");
    let www = spec
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == "www");
    assert_eq!(
        www.unwrap()
            .persistent_volume_claim
            .as_ref()
            .unwrap()
            .claim_name,
        "www-web-0"
    );
    eventually("the claim of web-0", || async {
        let out = c.kubectl(&["get", "pvc", "www-web-0"]).await;
        out.status.success().then_some(())
    })
    .await;

    // Events in upstream's words (checked at once: the test server keeps them 3 s).
    eventually("events", || async {
        let events = c
            .ok(&[
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=web",
            ])
            .await;
        (events.contains("create Pod web-0 in StatefulSet web successful")
            && events.contains("create Claim www-web-0 Pod web-0 in StatefulSet web success"))
        .then_some(())
    })
    .await;

    // Each pod waits for all before it to be Running and Ready.
    holds_for(
        "no web-1 while web-0 is not Ready",
        Duration::from_secs(2),
        || async { !pods(&api).await.contains_key("web-1") },
    )
    .await;
    set_ready(&api, "web-0", true).await;
    eventually("web-1", || async { pods(&api).await.remove("web-1") }).await;
    holds_for(
        "no web-2 while web-1 is not Ready",
        Duration::from_secs(1),
        || async { !pods(&api).await.contains_key("web-2") },
    )
    .await;
    set_ready(&api, "web-1", true).await;
    eventually("web-2", || async { pods(&api).await.remove("web-2") }).await;
    set_ready(&api, "web-2", true).await;
    assert_eq!(log.names("added"), ["web-0", "web-1", "web-2"]);

    let out = c
        .ok(&["rollout", "status", "sts/web", "--timeout=30s"])
        .await;
    assert!(out.contains("roll out complete"), "{out}");
    let status = eventually("status", || async {
        let s = jsonpath(&c, &["get", "sts", "web"], "{.status.replicas}/{.status.readyReplicas}/{.status.currentReplicas}/{.status.updatedReplicas}/{.status.availableReplicas} {.status.currentRevision} {.status.updateRevision}").await;
        s.starts_with("3/3/3/3/3 ").then_some(s)
    })
    .await;
    let rev = revision(&web0);
    assert_eq!(status, format!("3/3/3/3/3 {rev} {rev}"));
    // Scaling down waits while any pod is unhealthy, then goes from the highest ordinal.
    set_ready(&api, "web-0", false).await;
    c.ok(&["scale", "sts", "web", "--replicas=1"]).await;
    holds_for(
        "no deletion while web-0 is not Ready",
        Duration::from_secs(2),
        || async { pods(&api).await.len() == 3 },
    )
    .await;
    set_ready(&api, "web-0", true).await;
    eventually("only web-0 left", || async {
        let p = pods(&api).await;
        (p.keys().collect::<Vec<_>>() == ["web-0"]).then_some(())
    })
    .await;
    assert_eq!(log.names("deleted"), ["web-2", "web-1"]);
    // The claims stay (whenScaled: Retain), and a pod scaled back up gets its claim again.
    let claims = jsonpath(
        &c,
        &["get", "pvc"],
        "{range .items[*]}{.metadata.name}:{.metadata.uid} {end}",
    )
    .await;
    for n in ["www-web-0", "www-web-1", "www-web-2"] {
        assert!(claims.contains(n), "{claims}");
    }
    c.ok(&["scale", "sts", "web", "--replicas=2"]).await;
    let web1 = eventually("web-1 again", || async { pods(&api).await.remove("web-1") }).await;
    let claim = web1
        .spec
        .unwrap()
        .volumes
        .unwrap()
        .into_iter()
        .find_map(|v| v.persistent_volume_claim)
        .unwrap();
    assert_eq!(claim.claim_name, "www-web-1");
    let after = jsonpath(
        &c,
        &["get", "pvc"],
        "{range .items[*]}{.metadata.name}:{.metadata.uid} {end}",
    )
    .await;
    assert_eq!(after, claims, "no claim was made again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_creates_all_at_once_and_on_delete_leaves_pods_alone() {
    let c = cluster().await;
    let api: Api<Pod> = Api::namespaced(c.client().await, "default");
    let manifest = STS
        .replace(
            "  replicas: 3\n",
            "  replicas: 3\n  podManagementPolicy: Parallel\n  updateStrategy: {type: OnDelete}\n",
        )
        .split("  volumeClaimTemplates:")
        .next()
        .unwrap()
        .to_string();
    let f = c.write("sts.yaml", &manifest);
    c.ok(&["apply", "-f", &f]).await;
    // All at once: no pod waits for another to be Ready.
    let first = eventually("three pods", || async {
        let p = pods(&api).await;
        (p.len() == 3).then_some(p)
    })
    .await;
    assert!(first.values().all(|p| !is_ready(p)));
    let _kubelet = ReadyLoop::start(&api);
    eventually("ready", || async {
        let s = jsonpath(&c, &["get", "sts", "web"], "{.status.readyReplicas}").await;
        (s == "3").then_some(())
    })
    .await;
    let before = pods(&api).await;

    // OnDelete: a new template touches no pod...
    c.ok(&["set", "image", "sts/web", "nginx=nginx:1.28"]).await;
    let update = eventually("the new revision", || async {
        let s = jsonpath(
            &c,
            &["get", "sts", "web"],
            "{.status.currentRevision} {.status.updateRevision}",
        )
        .await;
        let (cur, upd) = s.split_once(' ')?;
        (cur != upd && !upd.is_empty()).then(|| upd.to_string())
    })
    .await;
    holds_for("pods untouched", Duration::from_secs(2), || async {
        let now = pods(&api).await;
        now.len() == 3 && now.iter().all(|(n, p)| uid(p) == uid(&before[n]))
    })
    .await;
    let err = c.fails(&["rollout", "status", "sts/web"]).await;
    assert!(err.contains("only available for RollingUpdate"), "{err}");
    // ...until one is deleted: it comes back at the new revision.
    c.ok(&["delete", "pod", "web-1", "--wait=false"]).await;
    eventually("web-1 replaced", || async {
        let now = pods(&api).await;
        let p = now.get("web-1")?;
        (uid(p) != uid(&before["web-1"]) && revision(p) == update).then_some(())
    })
    .await;
    let now = pods(&api).await;
    for n in ["web-0", "web-2"] {
        assert_eq!(uid(&now[n]), uid(&before[n]));
        assert_eq!(revision(&now[n]), revision(&before[n]));
    }
    c.ok(&["scale", "sts", "web", "--replicas=0"]).await;
    eventually("no pods", || async {
        pods(&api).await.is_empty().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_with_partition_goes_down_from_the_highest_ordinal() {
    let c = cluster().await;
    let api: Api<Pod> = Api::namespaced(c.client().await, "default");
    let manifest = STS
        .replace(
            "  replicas: 3\n",
            "  replicas: 3\n  updateStrategy:\n    type: RollingUpdate\n    rollingUpdate: {partition: 1}\n",
        )
        .split("  volumeClaimTemplates:")
        .next()
        .unwrap()
        .to_string();
    let f = c.write("sts.yaml", &manifest);
    c.ok(&["apply", "-f", &f]).await;
    eventually("three ready pods", || async {
        make_all_ready(&api).await;
        let p = pods(&api).await;
        (p.len() == 3 && p.values().all(is_ready)).then_some(())
    })
    .await;
    c.ok(&["rollout", "status", "sts/web", "--timeout=30s"])
        .await;
    let before = pods(&api).await;
    let old = revision(&before["web-0"]);
    let log = PodLog::start(&api).await;

    c.ok(&["set", "image", "sts/web", "nginx=nginx:1.28"]).await;
    let web2 = eventually("web-2 updated", || async {
        let p = pods(&api).await.remove("web-2")?;
        (revision(&p) != old).then_some(p)
    })
    .await;
    let new = revision(&web2);
    // The next one waits for the updated pod to be Ready.
    holds_for(
        "web-1 untouched while web-2 is not Ready",
        Duration::from_secs(2),
        || async {
            pods(&api)
                .await
                .get("web-1")
                .is_some_and(|p| uid(p) == uid(&before["web-1"]))
        },
    )
    .await;
    set_ready(&api, "web-2", true).await;
    eventually("web-1 updated", || async {
        let p = pods(&api).await.remove("web-1")?;
        (revision(&p) == new).then_some(())
    })
    .await;
    set_ready(&api, "web-1", true).await;
    let out = c
        .ok(&["rollout", "status", "sts/web", "--timeout=30s"])
        .await;
    assert!(
        out.contains("partitioned roll out complete: 2 new pods have been updated"),
        "{out}"
    );
    // Below the partition nothing changes.
    holds_for("web-0 kept", Duration::from_secs(1), || async {
        pods(&api)
            .await
            .get("web-0")
            .is_some_and(|p| uid(p) == uid(&before["web-0"]) && revision(p) == old)
    })
    .await;
    assert_eq!(log.names("deleted"), ["web-2", "web-1"]);
    let status = jsonpath(
        &c,
        &["get", "sts", "web"],
        "{.status.updatedReplicas} {.status.currentRevision} {.status.updateRevision}",
    )
    .await;
    assert_eq!(status, format!("2 {old} {new}"));

    // Partition 0 finishes the rollout; then `rollout undo` brings the first template back.
    let _kubelet = ReadyLoop::start(&api);
    c.ok(&[
        "patch",
        "sts",
        "web",
        "-p",
        r#"{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}"#,
    ])
    .await;
    eventually("rollout complete", || async {
        let s = jsonpath(
            &c,
            &["get", "sts", "web"],
            "{.status.updatedReplicas}/{.status.readyReplicas} {.status.currentRevision}",
        )
        .await;
        (s == format!("3/3 {new}")).then_some(())
    })
    .await;
    let history = c.ok(&["rollout", "history", "sts/web"]).await;
    assert!(
        history.contains("1 ") && history.contains("2 "),
        "{history}"
    );
    c.ok(&["rollout", "undo", "sts/web"]).await;
    eventually("rolled back", || async {
        let p = pods(&api).await;
        let image = |p: &Pod| p.spec.as_ref().unwrap().containers[0].image.clone();
        (p.len() == 3
            && p.values()
                .all(|p| revision(p) == old && image(p).as_deref() == Some("nginx:1.27")))
        .then_some(())
    })
    .await;
    // The old revision is the newest again.
    let number = jsonpath(&c, &["get", "controllerrevision", &old], "{.revision}").await;
    assert_eq!(number, "3");
}
