//! VolumeBinding against a real API server: the test plays the PV controller and the
//! provisioner (it completes the bindings the scheduler starts), and checks where pods with
//! claims go, what the scheduler writes on claims and volumes, and what it reports.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

use apiserver::testing::{Cluster, eventually};
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

async fn cluster() -> Cluster {
    let c = Cluster::start(false).await;
    let client = scheduler::client(c.config().await).unwrap();
    tokio::spawn(scheduler::run(client, "test-scheduler".into()));
    c
}

async fn create<K>(c: &Cluster, v: Value) -> K
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(c.client().await, "default");
    api.create(&PostParams::default(), &serde_json::from_value(v).unwrap())
        .await
        .unwrap()
}

async fn node(c: &Cluster, name: &str, zone: &str) {
    let nodes: Api<Node> = Api::all(c.client().await);
    let status = json!({"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True"}]});
    let n: Node = serde_json::from_value(json!({"metadata": {"name": name,
        "labels": {"kubernetes.io/hostname": name, "zone": zone}}, "status": status}))
    .unwrap();
    nodes.create(&PostParams::default(), &n).await.unwrap();
    nodes
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": status})),
        )
        .await
        .unwrap();
}

async fn class(c: &Cluster, name: &str, provisioner: &str, mode: &str, extra: Value) {
    let mut v = json!({"metadata": {"name": name}, "provisioner": provisioner,
        "volumeBindingMode": mode});
    for (k, x) in extra.as_object().cloned().unwrap_or_default() {
        v[k] = x;
    }
    let api: Api<StorageClass> = Api::all(c.client().await);
    api.create(&PostParams::default(), &serde_json::from_value(v).unwrap())
        .await
        .unwrap();
}

async fn claim(c: &Cluster, name: &str, class: &str) {
    create::<PersistentVolumeClaim>(
        c,
        json!({"metadata": {"name": name}, "spec": {"storageClassName": class,
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
    )
    .await;
}

async fn pod(c: &Cluster, name: &str, claim: &str) {
    create::<Pod>(
        c,
        json!({"metadata": {"name": name}, "spec": {
        "containers": [{"name": "c", "image": "busybox"}],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]}}),
    )
    .await;
}

async fn node_of(c: &Cluster, pod: &str) -> String {
    c.ok(&["get", "pod", pod, "-o", "jsonpath={.spec.nodeName}"])
        .await
}

async fn scheduled_message(c: &Cluster, pod: &str) -> String {
    eventually(&format!("{pod} PodScheduled=False"), || async {
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
    .await
}

/// What the PV controller does once a volume names a claim: the claim gets the volume and
/// bind-completed.
async fn complete_binding(c: &Cluster, claim: &str, volume: &str) {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(c.client().await, "default");
    claims
        .patch(
            claim,
            &PatchParams::default(),
            &Patch::Merge(json!({
            "metadata": {"annotations": {"pv.kubernetes.io/bind-completed": "yes"}},
            "spec": {"volumeName": volume}})),
        )
        .await
        .unwrap();
}

fn local_pv(
    name: &str,
    class: &str,
    host: &str,
    claim_ref: Option<&PersistentVolumeClaim>,
) -> PersistentVolume {
    let mut spec = json!({"storageClassName": class, "accessModes": ["ReadWriteOnce"],
        "capacity": {"storage": "2Gi"}, "local": {"path": format!("/mnt/{name}")},
        "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": [host]}]}]}}});
    if let Some(c) = claim_ref {
        spec["claimRef"] = json!({"namespace": "default", "name": c.metadata.name,
            "uid": c.metadata.uid});
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_decide_where_pods_go() {
    let c = cluster().await;
    node(&c, "n1", "a").await;
    node(&c, "n2", "b").await;
    let client = c.client().await;
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");

    // A missing claim, then an unbound Immediate one: never scheduled, upstream's words.
    pod(&c, "nothing", "absent").await;
    assert_eq!(
        scheduled_message(&c, "nothing").await,
        r#"0/2 nodes are available: persistentvolumeclaim "absent" not found. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."#
    );
    class(&c, "fast", "example.com/fast", "Immediate", json!({})).await;
    claim(&c, "now", "fast").await;
    pod(&c, "immediate", "now").await;
    let msg = scheduled_message(&c, "immediate").await;
    assert!(
        msg.starts_with(
            "0/2 nodes are available: pod has unbound immediate PersistentVolumeClaims."
        ),
        "{msg}"
    );

    // WaitForFirstConsumer with a provisioner limited to zone b: the scheduler picks n2,
    // annotates the claim, and binds the pod only once the claim is bound.
    class(
        &c,
        "zoned",
        "rancher.io/local-path",
        "WaitForFirstConsumer",
        json!({
        "allowedTopologies": [{"matchLabelExpressions": [{"key": "zone", "values": ["b"]}]}]}),
    )
    .await;
    claim(&c, "dyn", "zoned").await;
    pod(&c, "provisioned", "dyn").await;
    let selected = eventually("selected-node on the claim", || async {
        let cl = claims.get("dyn").await.unwrap();
        cl.metadata
            .annotations?
            .get("volume.kubernetes.io/selected-node")
            .cloned()
    })
    .await;
    assert_eq!(selected, "n2");
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(
        node_of(&c, "provisioned").await,
        "",
        "bound before its claim"
    );
    let dyn_claim = claims.get("dyn").await.unwrap();
    volumes
        .create(
            &PostParams::default(),
            &local_pv("pvc-dyn", "zoned", "n2", Some(&dyn_claim)),
        )
        .await
        .unwrap();
    complete_binding(&c, "dyn", "pvc-dyn").await;
    eventually("provisioned pod bound", || async {
        (node_of(&c, "provisioned").await == "n2").then_some(())
    })
    .await;

    // A class without a provisioner: only the node with a matching local volume fits; the
    // scheduler pre-binds the volume (claimRef) and the pod follows the completed binding.
    class(
        &c,
        "local",
        "kubernetes.io/no-provisioner",
        "WaitForFirstConsumer",
        json!({}),
    )
    .await;
    claim(&c, "static", "local").await;
    pod(&c, "nowhere", "static").await;
    let msg = scheduled_message(&c, "nowhere").await;
    assert!(
        msg.starts_with(
            "0/2 nodes are available: 2 node(s) didn't find available persistent volumes to bind."
        ),
        "{msg}"
    );
    volumes
        .create(
            &PostParams::default(),
            &local_pv("local-n1", "local", "n1", None),
        )
        .await
        .unwrap();
    // The PV controller would mark it Available.
    volumes
        .patch_status(
            "local-n1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Available"}})),
        )
        .await
        .unwrap();
    let claim_ref = eventually("claimRef on the volume", || async {
        volumes.get("local-n1").await.unwrap().spec?.claim_ref
    })
    .await;
    assert_eq!(claim_ref.name.as_deref(), Some("static"));
    let pv = volumes.get("local-n1").await.unwrap();
    assert_eq!(
        pv.metadata
            .annotations
            .unwrap_or_default()
            .get("pv.kubernetes.io/bound-by-controller")
            .map(String::as_str),
        Some("yes")
    );
    complete_binding(&c, "static", "local-n1").await;
    eventually("static pod bound", || async {
        (node_of(&c, "nowhere").await == "n1").then_some(())
    })
    .await;

    // Bound to a local volume on n1: a second pod on the same claim goes to n1 too.
    pod(&c, "again", "static").await;
    eventually("second pod bound", || async {
        (node_of(&c, "again").await == "n1").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provisioner_giving_up_sends_the_pod_back() {
    let c = cluster().await;
    node(&c, "n1", "a").await;
    let client = c.client().await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    class(
        &c,
        "local-path",
        "rancher.io/local-path",
        "WaitForFirstConsumer",
        json!({}),
    )
    .await;
    claim(&c, "data", "local-path").await;
    pod(&c, "db", "data").await;
    let selected = || async {
        let cl = claims.get("data").await.unwrap();
        cl.metadata
            .annotations?
            .get("volume.kubernetes.io/selected-node")
            .cloned()
    };
    eventually("selected-node on the claim", || async { selected().await }).await;
    // The provisioner gives up on that node, as external provisioners do: it removes the
    // annotation (the claim's only one: upstream's words for a claim left without any). The
    // scheduler stops waiting, says why, and tries again.
    claims
        .patch(
            "data",
            &PatchParams::default(),
            &Patch::Json::<()>(
                serde_json::from_value(json!([{"op": "remove",
                "path": "/metadata/annotations/volume.kubernetes.io~1selected-node"}]))
                .unwrap(),
            ),
        )
        .await
        .unwrap();
    let reason = eventually("SchedulerError", || async {
        let r = c
            .ok(&[
                "get",
                "pod",
                "db",
                "-o",
                r#"jsonpath={.status.conditions[?(@.type=="PodScheduled")].reason}"#,
            ])
            .await;
        (r == "SchedulerError").then_some(r)
    })
    .await;
    assert_eq!(reason, "SchedulerError");
    let msg = scheduled_message(&c, "db").await;
    assert_eq!(
        msg,
        r#"running PreBind plugin "VolumeBinding": binding volumes: selectedNode annotation reset for PVC "data""#
    );
    assert_eq!(node_of(&c, "db").await, "");
    eventually("selected-node set again", || async { selected().await }).await;
}
