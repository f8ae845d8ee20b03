//! The storage controllers (PersistentVolume binder, local-path provisioner, PVC / PV
//! protection, ephemeral volumes) alone against a real API server, driven through the API
//! and the real kubectl. No scheduler or kubelet runs: the test sets a claim's selected node
//! as the scheduler would, and puts pods on nodes by `spec.nodeName`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test step should panic

use std::time::Duration;

use apiserver::testing::{Cluster, eventually};
use client_go::informer::Informer;
use controllers::volume;
use k8s_openapi::api::core::v1::{Event, Node, PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

/// A cluster with only the storage controllers running, resyncing every second.
async fn start() -> (Cluster, Client) {
    let c = Cluster::start(false).await;
    let client = controllers::client(c.config().await).unwrap();
    let pods = Informer::<Pod>::start(Api::all(client.clone()));
    let claims = Informer::<PersistentVolumeClaim>::start(Api::all(client.clone()));
    let nodes = Informer::<Node>::start(Api::all(client.clone()));
    let options = volume::Options {
        sync_period: Duration::from_secs(1),
        ..Default::default()
    };
    tokio::spawn(volume::run(client.clone(), pods, claims, nodes, options));
    (c, client)
}

async fn create<K>(api: &Api<K>, obj: Value) -> K
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let obj: K = serde_json::from_value(obj).unwrap();
    api.create(&PostParams::default(), &obj).await.unwrap()
}

fn static_pv(name: &str, size: &str, policy: &str, source: Value) -> Value {
    let mut spec = json!({"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
                          "persistentVolumeReclaimPolicy": policy});
    for (k, v) in source.as_object().unwrap() {
        spec[k] = v.clone();
    }
    json!({"metadata": {"name": name}, "spec": spec})
}

fn claim(name: &str, size: &str, extra_spec: Value) -> Value {
    let mut spec =
        json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}});
    for (k, v) in extra_spec.as_object().unwrap() {
        spec[k] = v.clone();
    }
    json!({"metadata": {"name": name}, "spec": spec})
}

fn phase_of_pv(pv: &PersistentVolume) -> String {
    pv.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default()
}

fn phase_of_claim(c: &PersistentVolumeClaim) -> String {
    c.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default()
}

/// Waits until claim `name` is Bound and returns it.
async fn bound_claim(claims: &Api<PersistentVolumeClaim>, name: &str) -> PersistentVolumeClaim {
    eventually(&format!("claim {name} Bound"), || async {
        let c = claims.get(name).await.ok()?;
        (phase_of_claim(&c) == "Bound").then_some(c)
    })
    .await
}

async fn pv_phase_becomes(
    pvs: &Api<PersistentVolume>,
    name: &str,
    phase: &str,
) -> PersistentVolume {
    eventually(&format!("volume {name} {phase}"), || async {
        let v = pvs.get(name).await.ok()?;
        (phase_of_pv(&v) == phase).then_some(v)
    })
    .await
}

async fn gone<K>(api: &Api<K>, name: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    eventually(&format!("{name} gone"), || async {
        api.get_opt(name).await.unwrap().is_none().then_some(())
    })
    .await;
}

/// Waits for an event about `object` with `reason`, returning its message.
async fn event(client: &Client, ns: &str, object: &str, reason: &str) -> String {
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    eventually(&format!("{reason} event on {object}"), || async {
        let lp = ListParams::default().fields(&format!("involvedObject.name={object}"));
        let list = events.list(&lp).await.ok()?;
        list.items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some(reason))
            .and_then(|e| e.message)
    })
    .await
}

fn annotation<'a>(
    meta: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    key: &str,
) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

fn has_finalizer(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    f: &str,
) -> bool {
    meta.finalizers.iter().flatten().any(|x| x == f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_volumes_bind_the_smallest_fit_and_are_reclaimed_by_policy() {
    let (c, client) = start().await;
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let tmp = |n: &str| json!({"hostPath": {"path": format!("/tmp/rkube-volume-test/{n}")}});
    create(&pvs, static_pv("pv-small", "1Gi", "Retain", tmp("small"))).await;
    create(&pvs, static_pv("pv-medium", "5Gi", "Retain", tmp("medium"))).await;
    create(&pvs, static_pv("pv-large", "10Gi", "Retain", tmp("large"))).await;
    for pv in ["pv-small", "pv-medium", "pv-large"] {
        pv_phase_becomes(&pvs, pv, "Available").await;
    }

    // The smallest volume that fits; both sides Bound and annotated as upstream.
    create(&claims, claim("c1", "3Gi", json!({"storageClassName": ""}))).await;
    let c1 = bound_claim(&claims, "c1").await;
    assert_eq!(
        c1.spec.as_ref().unwrap().volume_name.as_deref(),
        Some("pv-medium")
    );
    assert_eq!(
        annotation(&c1.metadata, "pv.kubernetes.io/bind-completed"),
        Some("yes")
    );
    assert_eq!(
        annotation(&c1.metadata, "pv.kubernetes.io/bound-by-controller"),
        Some("yes")
    );
    let status = c1.status.clone().unwrap();
    assert_eq!(status.capacity.unwrap()["storage"].0, "5Gi");
    assert_eq!(
        status.access_modes.unwrap(),
        vec!["ReadWriteOnce".to_string()]
    );
    let medium = pv_phase_becomes(&pvs, "pv-medium", "Bound").await;
    let claim_ref = medium.spec.as_ref().unwrap().claim_ref.clone().unwrap();
    assert_eq!(claim_ref.name.as_deref(), Some("c1"));
    assert_eq!(claim_ref.uid, c1.metadata.uid);
    assert_eq!(
        annotation(&medium.metadata, "pv.kubernetes.io/bound-by-controller"),
        Some("yes")
    );
    // What kubectl shows.
    let out = c
        .ok(&[
            "get",
            "pv",
            "pv-medium",
            "-o",
            "jsonpath={.status.phase} {.spec.claimRef.name}",
        ])
        .await;
    assert_eq!(out, "Bound c1");
    let out = c
        .ok(&[
            "get",
            "pvc",
            "c1",
            "-o",
            "jsonpath={.status.phase} {.spec.volumeName}",
        ])
        .await;
    assert_eq!(out, "Bound pv-medium");
    // Protection finalizers were added (admission did not).
    eventually("protection finalizers", || async {
        let claim = claims.get("c1").await.ok()?;
        let pv = pvs.get("pv-medium").await.ok()?;
        (has_finalizer(&claim.metadata, "kubernetes.io/pvc-protection")
            && has_finalizer(&pv.metadata, "kubernetes.io/pv-protection"))
        .then_some(())
    })
    .await;

    // Retain: Released, and kept.
    claims.delete("c1", &DeleteParams::default()).await.unwrap();
    pv_phase_becomes(&pvs, "pv-medium", "Released").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        phase_of_pv(&pvs.get("pv-medium").await.unwrap()),
        "Released"
    );

    // Delete (hostPath under /tmp, upstream's in-tree deleter): the volume object goes.
    create(&pvs, static_pv("pv-tmp", "2Gi", "Delete", tmp("tmp"))).await;
    pv_phase_becomes(&pvs, "pv-tmp", "Available").await;
    create(&claims, claim("c2", "2Gi", json!({"storageClassName": ""}))).await;
    let c2 = bound_claim(&claims, "c2").await;
    assert_eq!(
        c2.spec.as_ref().unwrap().volume_name.as_deref(),
        Some("pv-tmp")
    );
    claims.delete("c2", &DeleteParams::default()).await.unwrap();
    gone(&pvs, "pv-tmp").await;

    // Delete with no deleter (a static local volume): Failed, with upstream's words.
    let local = json!({"local": {"path": "/mnt/disk"}, "nodeAffinity": {"required": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["n1"]}]}]}}});
    create(&pvs, static_pv("pv-disk", "4Gi", "Delete", local)).await;
    pv_phase_becomes(&pvs, "pv-disk", "Available").await;
    create(&claims, claim("c3", "4Gi", json!({"storageClassName": ""}))).await;
    assert_eq!(
        bound_claim(&claims, "c3")
            .await
            .spec
            .unwrap()
            .volume_name
            .as_deref(),
        Some("pv-disk")
    );
    claims.delete("c3", &DeleteParams::default()).await.unwrap();
    let failed = pv_phase_becomes(&pvs, "pv-disk", "Failed").await;
    let why = "error getting deleter volume plugin for volume \"pv-disk\": no deletable volume plugin matched";
    assert_eq!(failed.status.unwrap().message.as_deref(), Some(why));
    assert_eq!(
        event(&client, "default", "pv-disk", "VolumeFailedDelete").await,
        why
    );

    // Recycle: Failed, no recycler.
    create(
        &pvs,
        static_pv("pv-recycle", "3Gi", "Recycle", tmp("recycle")),
    )
    .await;
    pv_phase_becomes(&pvs, "pv-recycle", "Available").await;
    create(&claims, claim("c7", "3Gi", json!({"storageClassName": ""}))).await;
    bound_claim(&claims, "c7").await;
    claims.delete("c7", &DeleteParams::default()).await.unwrap();
    pv_phase_becomes(&pvs, "pv-recycle", "Failed").await;
    assert!(
        event(&client, "default", "pv-recycle", "VolumeFailedRecycle")
            .await
            .starts_with("No recycler plugin found for the volume!")
    );

    // Pre-binding by the claim (volumeName), even to a bigger volume than needed.
    create(
        &claims,
        claim(
            "c4",
            "1Gi",
            json!({"storageClassName": "", "volumeName": "pv-large"}),
        ),
    )
    .await;
    let c4 = bound_claim(&claims, "c4").await;
    assert_eq!(
        c4.spec.as_ref().unwrap().volume_name.as_deref(),
        Some("pv-large")
    );
    // ... so the controller did not set bound-by-controller on either side.
    assert_eq!(
        annotation(&c4.metadata, "pv.kubernetes.io/bound-by-controller"),
        None
    );
    pv_phase_becomes(&pvs, "pv-large", "Bound").await;

    // Pre-binding by the volume (claimRef without uid): the reserved volume, not a smaller one.
    let mut reserved = static_pv("pv-reserved", "20Gi", "Retain", tmp("reserved"));
    reserved["spec"]["claimRef"] = json!({"namespace": "default", "name": "c5"});
    create(&pvs, reserved).await;
    create(&claims, claim("c5", "1Gi", json!({"storageClassName": ""}))).await;
    let c5 = bound_claim(&claims, "c5").await;
    assert_eq!(
        c5.spec.as_ref().unwrap().volume_name.as_deref(),
        Some("pv-reserved")
    );
    let reserved = pv_phase_becomes(&pvs, "pv-reserved", "Bound").await;
    assert_eq!(
        reserved.spec.unwrap().claim_ref.unwrap().uid,
        c5.metadata.uid
    );

    // Nothing fits and no class: Pending, with upstream's event.
    create(
        &claims,
        claim("c6", "100Gi", json!({"storageClassName": ""})),
    )
    .await;
    assert_eq!(
        event(&client, "default", "c6", "FailedBinding").await,
        "no persistent volumes available for this claim and no storage class is set"
    );
    assert_eq!(phase_of_claim(&claims.get("c6").await.unwrap()), "Pending");
    assert_eq!(
        phase_of_pv(&pvs.get("pv-small").await.unwrap()),
        "Available"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_for_first_consumer_claim_is_provisioned_by_local_path_on_its_node() {
    let (c, client) = start().await;
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let nodes: Api<Node> = Api::all(client.clone());
    // The default class as shipped, and a node saying where it keeps local volumes.
    let file = c.write(
        "local-path.yaml",
        volume::localpath::storageclass::STORAGE_CLASS_YAML,
    );
    c.ok(&["apply", "-f", &file]).await;
    create(
        &nodes,
        json!({"metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"},
               "annotations": {"rkube.io/local-storage-path": "/data/rkube/storage"}}}),
    )
    .await;

    // No class asked for: the default one is given; nothing happens until a consumer runs.
    create(&claims, claim("data", "1Gi", json!({}))).await;
    assert_eq!(
        event(&client, "default", "data", "WaitForFirstConsumer").await,
        "waiting for first consumer to be created before binding"
    );
    let pending = claims.get("data").await.unwrap();
    assert_eq!(
        pending.spec.as_ref().unwrap().storage_class_name.as_deref(),
        Some("local-path")
    );
    assert_eq!(phase_of_claim(&pending), "Pending");
    // A pod using it, not yet scheduled.
    create(
        &pods,
        json!({"metadata": {"name": "web"}, "spec": {"containers": [{"name": "c", "image": "busybox"}],
               "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}}),
    )
    .await;
    assert_eq!(
        event(&client, "default", "data", "WaitForPodScheduled").await,
        "waiting for pod web to be scheduled"
    );
    assert!(
        pvs.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(
        phase_of_claim(&claims.get("data").await.unwrap()),
        "Pending"
    );

    // The scheduler's choice: provisioned there and bound.
    let patch = json!({"metadata": {"annotations": {"volume.kubernetes.io/selected-node": "n1"}}});
    claims
        .patch("data", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let data = bound_claim(&claims, "data").await;
    let uid = data.metadata.uid.clone().unwrap();
    let pv_name = format!("pvc-{uid}");
    assert_eq!(
        data.spec.as_ref().unwrap().volume_name.as_deref(),
        Some(pv_name.as_str())
    );
    assert_eq!(
        annotation(&data.metadata, "volume.kubernetes.io/storage-provisioner"),
        Some("rancher.io/local-path")
    );
    assert_eq!(
        annotation(
            &data.metadata,
            "volume.beta.kubernetes.io/storage-provisioner"
        ),
        Some("rancher.io/local-path")
    );
    let pv = pv_phase_becomes(&pvs, &pv_name, "Bound").await;
    let v = serde_json::to_value(&pv).unwrap();
    assert_eq!(
        v["spec"]["local"]["path"],
        format!("/data/rkube/storage/{pv_name}_default_data")
    );
    assert_eq!(
        v["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"],
        json!(["n1"])
    );
    assert_eq!(v["spec"]["capacity"]["storage"], "1Gi");
    assert_eq!(v["spec"]["persistentVolumeReclaimPolicy"], "Delete");
    assert_eq!(v["spec"]["storageClassName"], "local-path");
    assert_eq!(
        v["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"],
        "rancher.io/local-path"
    );
    assert!(
        event(&client, "default", "data", "ExternalProvisioning")
            .await
            .starts_with("Waiting for a volume to be created either by the external provisioner 'rancher.io/local-path'")
    );
    assert_eq!(
        event(&client, "default", "data", "ProvisioningSucceeded").await,
        format!("Successfully provisioned volume {pv_name}")
    );
    let out = c
        .ok(&[
            "get",
            "pvc",
            "data",
            "-o",
            "jsonpath={.status.phase} {.spec.storageClassName}",
        ])
        .await;
    assert_eq!(out, "Bound local-path");

    // Claim deleted (its pod first): Released, then deleted (reclaim policy Delete).
    pods.delete(
        "web",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    claims
        .delete("data", &DeleteParams::default())
        .await
        .unwrap();
    gone(&claims, "data").await;
    gone(&pvs, &pv_name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_in_use_and_a_bound_volume_are_kept_until_released() {
    let (_c, client) = start().await;
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    create(
        &pvs,
        static_pv(
            "pv-1",
            "1Gi",
            "Retain",
            json!({"hostPath": {"path": "/tmp/rkube-volume-test/1"}}),
        ),
    )
    .await;
    create(
        &claims,
        claim("used", "1Gi", json!({"storageClassName": ""})),
    )
    .await;
    bound_claim(&claims, "used").await;
    create(
        &pods,
        json!({"metadata": {"name": "user"}, "spec": {"nodeName": "n1",
               "containers": [{"name": "c", "image": "busybox"}],
               "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "used"}}]}}),
    )
    .await;
    eventually("claim finalizer", || async {
        let claim = claims.get("used").await.ok()?;
        has_finalizer(&claim.metadata, "kubernetes.io/pvc-protection").then_some(())
    })
    .await;
    eventually("volume finalizer", || async {
        let pv = pvs.get("pv-1").await.ok()?;
        has_finalizer(&pv.metadata, "kubernetes.io/pv-protection").then_some(())
    })
    .await;

    // The volume is deleted while bound: it stays (Terminating) and Bound.
    pvs.delete("pv-1", &DeleteParams::default()).await.unwrap();
    // The claim is deleted while a pod uses it: it stays too.
    claims
        .delete("used", &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let claim = claims.get("used").await.unwrap();
    assert!(claim.metadata.deletion_timestamp.is_some());
    assert!(has_finalizer(
        &claim.metadata,
        "kubernetes.io/pvc-protection"
    ));
    let pv = pvs.get("pv-1").await.unwrap();
    assert!(pv.metadata.deletion_timestamp.is_some());
    assert_eq!(phase_of_pv(&pv), "Bound");

    // The pod goes: the claim goes, the volume is Released and goes too.
    pods.delete(
        "user",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    gone(&claims, "used").await;
    gone(&pvs, "pv-1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ephemeral_volume_gets_a_claim_owned_by_its_pod() {
    let (_c, client) = start().await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod = create(
        &pods,
        json!({"metadata": {"name": "web"}, "spec": {"containers": [{"name": "c", "image": "busybox"}],
               "volumes": [{"name": "scratch", "ephemeral": {"volumeClaimTemplate": {
                   "metadata": {"labels": {"app": "web"}},
                   "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "fast",
                            "resources": {"requests": {"storage": "2Gi"}}}}}}]}}),
    )
    .await;
    let claim = eventually("the ephemeral claim", || async {
        claims.get_opt("web-scratch").await.unwrap()
    })
    .await;
    let owner = &claim.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("Pod", "web"));
    assert_eq!(Some(&owner.uid), pod.metadata.uid.as_ref());
    assert_eq!(owner.controller, Some(true));
    assert_eq!(owner.block_owner_deletion, Some(true));
    assert_eq!(claim.metadata.labels.unwrap()["app"], "web");
    let spec = claim.spec.unwrap();
    assert_eq!(spec.storage_class_name.as_deref(), Some("fast"));
    assert_eq!(
        spec.resources.unwrap().requests.unwrap()["storage"].0,
        "2Gi"
    );

    // A claim of that name the pod does not own is never used: FailedBinding on the pod.
    create(&claims, claim_json("other-scratch")).await;
    create(
        &pods,
        json!({"metadata": {"name": "other"}, "spec": {"containers": [{"name": "c", "image": "busybox"}],
               "volumes": [{"name": "scratch", "ephemeral": {"volumeClaimTemplate": {
                   "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}}}]}}),
    )
    .await;
    assert_eq!(
        event(&client, "default", "other", "FailedBinding").await,
        "ephemeral volume scratch: PVC default/other-scratch was not created for pod default/other (pod is not owner)"
    );
}

fn claim_json(name: &str) -> Value {
    claim(name, "1Gi", json!({"storageClassName": ""}))
}

/// Bind decision rate of the PV controller's matcher with 5,000 volumes and 5,000 claims
/// (function level, no API server): each decision is one best-match search over the index,
/// and a bound volume goes back into the index as the controller's own write would.
/// `cargo test --release -p rkube-controllers --test volume_controllers -- --ignored --nocapture`
#[test]
#[ignore = "a benchmark: run by hand"]
fn bind_decision_rate_with_5000_volumes_and_5000_claims() {
    use std::sync::Arc;
    use std::time::Instant;
    use volume::persistentvolume::index::VolumeIndex;

    // A small deterministic generator (no rand dependency here).
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let classes = ["", "gold", "silver"];
    let modes = |r: u64| -> Vec<&'static str> {
        match r {
            0..=6 => vec!["ReadWriteOnce"],
            7 | 8 => vec!["ReadWriteOnce", "ReadOnlyMany"],
            _ => vec!["ReadWriteOnce", "ReadWriteMany"],
        }
    };
    let volumes: Vec<Arc<PersistentVolume>> = (0..5000)
        .map(|i| {
            let v = json!({
                "metadata": {"name": format!("pv-{i:05}"), "resourceVersion": "1",
                             "labels": {"tier": if next(2) == 0 { "fast" } else { "slow" }}},
                "spec": {"capacity": {"storage": format!("{}Gi", next(100) + 1)},
                         "accessModes": modes(next(10)),
                         "storageClassName": classes[next(3) as usize],
                         "hostPath": {"path": format!("/tmp/pv-{i}")}},
                "status": {"phase": "Available"}
            });
            Arc::new(serde_json::from_value(v).unwrap())
        })
        .collect();
    let claims: Vec<PersistentVolumeClaim> = (0..5000)
        .map(|i| {
            let mut spec = json!({"accessModes": if next(10) < 8 { vec!["ReadWriteOnce"] } else { vec!["ReadWriteMany"] },
                                  "storageClassName": classes[next(3) as usize],
                                  "resources": {"requests": {"storage": format!("{}Gi", next(100) + 1)}}});
            if next(4) == 0 {
                spec["selector"] = json!({"matchLabels": {"tier": "fast"}});
            }
            serde_json::from_value(json!({
                "metadata": {"name": format!("c-{i:05}"), "namespace": "default", "uid": format!("uid-{i}")},
                "spec": spec
            }))
            .unwrap()
        })
        .collect();

    let mut index = VolumeIndex::default();
    let started = Instant::now();
    for v in &volumes {
        index.store(v.clone());
    }
    let fill = started.elapsed();

    let started = Instant::now();
    let mut bound = 0;
    for c in &claims {
        if let Some(v) = index.find_best_match(c, false) {
            // The controller's bind, as its cache sees it: claimRef set, phase Bound, newer.
            let mut v = (*v).clone();
            v.spec.as_mut().unwrap().claim_ref =
                Some(k8s_openapi::api::core::v1::ObjectReference {
                    namespace: c.metadata.namespace.clone(),
                    name: c.metadata.name.clone(),
                    uid: c.metadata.uid.clone(),
                    ..Default::default()
                });
            v.status.as_mut().unwrap().phase = Some("Bound".into());
            v.metadata.resource_version = Some("2".into());
            assert!(index.store(Arc::new(v)));
            bound += 1;
        }
    }
    let decide = started.elapsed();

    // Worst case: nothing fits, every search visits every volume of the claim's groups.
    let mut index = VolumeIndex::default();
    for v in &volumes {
        index.store(v.clone());
    }
    let huge: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": "huge", "namespace": "default", "uid": "u"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Ti"}}}
    }))
    .unwrap();
    let started = Instant::now();
    for _ in 0..1000 {
        assert!(index.find_best_match(&huge, false).is_none());
    }
    let miss = started.elapsed();

    println!(
        "5,000 volumes indexed in {:.1} ms",
        fill.as_secs_f64() * 1e3
    );
    println!(
        "5,000 claims decided ({bound} bound) in {:.1} ms: {:.0} decisions/s, {:.1} µs each",
        decide.as_secs_f64() * 1e3,
        5000.0 / decide.as_secs_f64(),
        decide.as_secs_f64() * 1e6 / 5000.0
    );
    println!(
        "no fit among 5,000 Available volumes: {:.1} µs per decision ({:.0}/s)",
        miss.as_secs_f64() * 1e6 / 1000.0,
        1000.0 / miss.as_secs_f64()
    );
}
