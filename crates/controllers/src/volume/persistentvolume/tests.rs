//! Table tests of the matching rules (upstream's findBestMatchForClaim cases), the claim
//! checks for a requested volume, the default class, events' words and the reclaim matrix.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use serde_json::{Value, json};

use super::index::VolumeIndex;
use super::matching::{NodeInfo, find_matching_volume};
use super::provision::{default_class, in_tree_failure, waiting_event};
use super::reclaim::delete_storage;
use super::sync_claim::check_volume_satisfies_claim;

/// An Available volume `name` of `size` with access modes `modes`, changed by `extra`
/// (merged into its JSON).
fn pv(name: &str, size: &str, modes: &[&str], extra: Value) -> Arc<PersistentVolume> {
    let mut v = json!({
        "metadata": {"name": name, "resourceVersion": "1"},
        "spec": {"capacity": {"storage": size}, "accessModes": modes,
                 "hostPath": {"path": format!("/tmp/{name}")}},
        "status": {"phase": "Available"}
    });
    merge(&mut v, extra);
    Arc::new(serde_json::from_value(v).unwrap())
}

/// A claim `default/claim` (uid `uid-1`) asking for `size` with `modes`, changed by `extra`.
fn pvc(size: &str, modes: &[&str], extra: Value) -> PersistentVolumeClaim {
    let mut c = json!({
        "metadata": {"name": "claim", "namespace": "default", "uid": "uid-1"},
        "spec": {"accessModes": modes, "resources": {"requests": {"storage": size}}}
    });
    merge(&mut c, extra);
    serde_json::from_value(c).unwrap()
}

fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, e) => *b = e,
    }
}

const RWO: &str = "ReadWriteOnce";
const RWX: &str = "ReadWriteMany";
const ROX: &str = "ReadOnlyMany";

fn index(volumes: &[Arc<PersistentVolume>]) -> VolumeIndex {
    let mut idx = VolumeIndex::default();
    for v in volumes {
        assert!(idx.store(v.clone()));
    }
    idx
}

fn best(
    volumes: &[Arc<PersistentVolume>],
    claim: &PersistentVolumeClaim,
    delay: bool,
) -> Option<String> {
    index(volumes)
        .find_best_match(claim, delay)
        .map(|v| v.metadata.name.clone().unwrap())
}

/// (case, volumes, claim, delay binding, expected volume)
type Case = (
    &'static str,
    Vec<Arc<PersistentVolume>>,
    PersistentVolumeClaim,
    bool,
    Option<&'static str>,
);

#[test]
fn matching_rules() {
    let plain = || {
        vec![
            pv("small", "1Gi", &[RWO], json!({})),
            pv("medium", "5Gi", &[RWO], json!({})),
            pv("large", "10Gi", &[RWO], json!({})),
        ]
    };
    let cases: Vec<Case> = vec![
        (
            "smallest that fits",
            plain(),
            pvc("3Gi", &[RWO], json!({})),
            false,
            Some("medium"),
        ),
        (
            "exact size",
            plain(),
            pvc("5Gi", &[RWO], json!({})),
            false,
            Some("medium"),
        ),
        (
            "equal quantities in other units",
            plain(),
            pvc("5120Mi", &[RWO], json!({})),
            false,
            Some("medium"),
        ),
        (
            "nothing big enough",
            plain(),
            pvc("20Gi", &[RWO], json!({})),
            false,
            None,
        ),
        (
            "no request fits the smallest",
            plain(),
            pvc("0", &[RWO], json!({})),
            false,
            Some("small"),
        ),
        (
            "access modes: only volumes offering all",
            vec![
                pv("rwo", "5Gi", &[RWO], json!({})),
                pv("rwx", "10Gi", &[RWO, RWX], json!({})),
            ],
            pvc("1Gi", &[RWX], json!({})),
            false,
            Some("rwx"),
        ),
        (
            "access modes: fewest modes first, even if bigger",
            vec![
                pv("both", "5Gi", &[RWO, RWX], json!({})),
                pv("rwo", "10Gi", &[RWO], json!({})),
            ],
            pvc("1Gi", &[RWO], json!({})),
            false,
            Some("rwo"),
        ),
        (
            "access modes: a wider group when the closest has nothing big enough",
            vec![
                pv("rwo", "1Gi", &[RWO], json!({})),
                pv("wide", "10Gi", &[RWO, ROX, RWX], json!({})),
            ],
            pvc("5Gi", &[RWO], json!({})),
            false,
            Some("wide"),
        ),
        (
            "class: only the claim's class",
            vec![
                pv("none", "5Gi", &[RWO], json!({})),
                pv(
                    "gold",
                    "10Gi",
                    &[RWO],
                    json!({"spec": {"storageClassName": "gold"}}),
                ),
            ],
            pvc("1Gi", &[RWO], json!({"spec": {"storageClassName": "gold"}})),
            false,
            Some("gold"),
        ),
        (
            "class: a claim without one gets only volumes without one",
            vec![pv(
                "gold",
                "10Gi",
                &[RWO],
                json!({"spec": {"storageClassName": "gold"}}),
            )],
            pvc("1Gi", &[RWO], json!({})),
            false,
            None,
        ),
        (
            "class: the beta annotation counts",
            vec![pv(
                "gold",
                "10Gi",
                &[RWO],
                json!({"metadata": {"annotations": {"volume.beta.kubernetes.io/storage-class": "gold"}}}),
            )],
            pvc("1Gi", &[RWO], json!({"spec": {"storageClassName": "gold"}})),
            false,
            Some("gold"),
        ),
        (
            "selector: only selected volumes",
            vec![
                pv("plain", "5Gi", &[RWO], json!({})),
                pv(
                    "fast",
                    "10Gi",
                    &[RWO],
                    json!({"metadata": {"labels": {"tier": "fast"}}}),
                ),
            ],
            pvc(
                "1Gi",
                &[RWO],
                json!({"spec": {"selector": {"matchLabels": {"tier": "fast"}}}}),
            ),
            false,
            Some("fast"),
        ),
        (
            "selector: expressions",
            vec![
                pv(
                    "a",
                    "5Gi",
                    &[RWO],
                    json!({"metadata": {"labels": {"zone": "a"}}}),
                ),
                pv(
                    "b",
                    "10Gi",
                    &[RWO],
                    json!({"metadata": {"labels": {"zone": "b"}}}),
                ),
            ],
            pvc(
                "1Gi",
                &[RWO],
                json!({"spec": {"selector": {"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}}}),
            ),
            false,
            Some("b"),
        ),
        (
            "volumeMode: Block only from Block volumes",
            vec![
                pv("fs", "5Gi", &[RWO], json!({})),
                pv(
                    "block",
                    "10Gi",
                    &[RWO],
                    json!({"spec": {"volumeMode": "Block"}}),
                ),
            ],
            pvc("1Gi", &[RWO], json!({"spec": {"volumeMode": "Block"}})),
            false,
            Some("block"),
        ),
        (
            "volumeMode: unset on either side is Filesystem",
            vec![
                pv(
                    "block",
                    "5Gi",
                    &[RWO],
                    json!({"spec": {"volumeMode": "Block"}}),
                ),
                pv(
                    "fs",
                    "10Gi",
                    &[RWO],
                    json!({"spec": {"volumeMode": "Filesystem"}}),
                ),
            ],
            pvc("1Gi", &[RWO], json!({})),
            false,
            Some("fs"),
        ),
        (
            "claimRef pre-binding wins over a smaller volume",
            vec![
                pv("free", "5Gi", &[RWO], json!({})),
                pv(
                    "reserved",
                    "10Gi",
                    &[RWO],
                    json!({"spec": {"claimRef": {"namespace": "default", "name": "claim"}}}),
                ),
            ],
            pvc("1Gi", &[RWO], json!({})),
            false,
            Some("reserved"),
        ),
        (
            "claimRef pre-binding ignores class and selector",
            vec![pv(
                "reserved",
                "10Gi",
                &[RWO],
                json!({"spec": {"storageClassName": "other", "claimRef": {"namespace": "default", "name": "claim"}}}),
            )],
            pvc(
                "1Gi",
                &[RWO],
                json!({"spec": {"selector": {"matchLabels": {"x": "y"}}}}),
            ),
            false,
            Some("reserved"),
        ),
        (
            "claimRef pre-binding still needs the size",
            vec![pv(
                "reserved",
                "1Gi",
                &[RWO],
                json!({"spec": {"claimRef": {"namespace": "default", "name": "claim"}}}),
            )],
            pvc("5Gi", &[RWO], json!({})),
            false,
            None,
        ),
        (
            "a volume reserved for another claim is skipped",
            vec![
                pv(
                    "theirs",
                    "5Gi",
                    &[RWO],
                    json!({"spec": {"claimRef": {"namespace": "default", "name": "other"}}}),
                ),
                pv("free", "10Gi", &[RWO], json!({})),
            ],
            pvc("1Gi", &[RWO], json!({})),
            false,
            Some("free"),
        ),
        (
            "a volume bound to an earlier claim of the same name is skipped",
            vec![pv(
                "old",
                "5Gi",
                &[RWO],
                json!({"spec": {"claimRef": {"namespace": "default", "name": "claim", "uid": "uid-0"}}, "status": {"phase": "Released"}}),
            )],
            pvc("1Gi", &[RWO], json!({})),
            false,
            None,
        ),
        (
            "a volume bound to this claim's uid is found",
            vec![pv(
                "mine",
                "5Gi",
                &[RWO],
                json!({"spec": {"claimRef": {"namespace": "default", "name": "claim", "uid": "uid-1"}}, "status": {"phase": "Bound"}}),
            )],
            pvc("1Gi", &[RWO], json!({})),
            false,
            Some("mine"),
        ),
        (
            "only Available volumes",
            vec![
                pv(
                    "pending",
                    "5Gi",
                    &[RWO],
                    json!({"status": {"phase": "Pending"}}),
                ),
                pv(
                    "failed",
                    "6Gi",
                    &[RWO],
                    json!({"status": {"phase": "Failed"}}),
                ),
                pv("ok", "10Gi", &[RWO], json!({})),
            ],
            pvc("1Gi", &[RWO], json!({})),
            false,
            Some("ok"),
        ),
        (
            "volumes being deleted are skipped",
            vec![
                pv(
                    "going",
                    "5Gi",
                    &[RWO],
                    json!({"metadata": {"deletionTimestamp": "2025-01-01T00:00:00Z"}}),
                ),
                pv("ok", "10Gi", &[RWO], json!({})),
            ],
            pvc("1Gi", &[RWO], json!({})),
            false,
            Some("ok"),
        ),
        (
            "WaitForFirstConsumer: unbound volumes are the scheduler's",
            plain(),
            pvc("1Gi", &[RWO], json!({})),
            true,
            None,
        ),
        (
            "WaitForFirstConsumer: a pre-bound volume is still bound",
            vec![
                pv("free", "5Gi", &[RWO], json!({})),
                pv(
                    "provisioned",
                    "5Gi",
                    &[RWO],
                    json!({"spec": {"claimRef": {"namespace": "default", "name": "claim", "uid": "uid-1"}}, "status": {"phase": "Pending"}}),
                ),
            ],
            pvc("5Gi", &[RWO], json!({})),
            true,
            Some("provisioned"),
        ),
        (
            "equal sizes: the first by name",
            vec![
                pv("b", "5Gi", &[RWO], json!({})),
                pv("a", "5Gi", &[RWO], json!({})),
            ],
            pvc("1Gi", &[RWO], json!({})),
            false,
            Some("a"),
        ),
    ];
    for (case, volumes, claim, delay, want) in cases {
        assert_eq!(best(&volumes, &claim, delay).as_deref(), want, "{case}");
    }
}

#[test]
fn scheduler_path_checks_node_affinity_access_modes_and_exclusions() {
    let pinned = |name: &str, host: &str| {
        pv(
            name,
            "5Gi",
            &[RWO],
            json!({"spec": {"nodeAffinity": {"required": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": [host]}]}]}}}}),
        )
    };
    let volumes = vec![
        pinned("on-a", "a"),
        pinned("on-b", "b"),
        pv("rox", "1Gi", &[ROX], json!({})),
    ];
    let labels: BTreeMap<String, String> =
        [("kubernetes.io/hostname".to_string(), "b".to_string())].into();
    let node = NodeInfo {
        name: "b",
        labels: &labels,
    };
    let claim = pvc("1Gi", &[RWO], json!({}));
    let found = find_matching_volume(&claim, &volumes, Some(node), None, true);
    assert_eq!(found.and_then(|v| v.metadata.name.as_deref()), Some("on-b"));
    let excluded: HashSet<String> = ["on-b".to_string()].into();
    assert!(find_matching_volume(&claim, &volumes, Some(node), Some(&excluded), true).is_none());
    // A claim pre-bound to a volume on another node has no volume on this one.
    let reserved = pinned("reserved", "a");
    let mut reserved = (*reserved).clone();
    reserved.spec.as_mut().unwrap().claim_ref =
        serde_json::from_value(json!({"namespace": "default", "name": "claim"})).unwrap();
    let volumes = vec![Arc::new(reserved), pinned("on-b", "b")];
    assert!(find_matching_volume(&claim, &volumes, Some(node), None, true).is_none());
}

#[test]
fn an_older_version_never_replaces_a_newer_one() {
    let mut idx = VolumeIndex::default();
    assert!(idx.store(pv(
        "v",
        "1Gi",
        &[RWO],
        json!({"metadata": {"resourceVersion": "5"}})
    )));
    assert!(!idx.store(pv(
        "v",
        "1Gi",
        &[RWO],
        json!({"metadata": {"resourceVersion": "4"}})
    )));
    // Same version again (a resync) is accepted; a new access mode moves it to another group.
    assert!(idx.store(pv(
        "v",
        "1Gi",
        &[RWO, RWX],
        json!({"metadata": {"resourceVersion": "5"}})
    )));
    assert_eq!(idx.len(), 1);
    assert!(
        idx.find_best_match(&pvc("1Gi", &[RWX], json!({})), false)
            .is_some()
    );
    assert!(idx.remove("v").is_some());
    assert!(idx.is_empty());
}

#[test]
fn a_requested_volume_must_suit_the_claim() {
    let claim = pvc("5Gi", &[RWO], json!({"spec": {"storageClassName": "gold"}}));
    let gold = json!({"spec": {"storageClassName": "gold"}});
    let cases = [
        (pv("ok", "5Gi", &[RWO], gold.clone()), Ok(())),
        (
            pv("small", "1Gi", &[RWO], gold.clone()),
            Err("requested PV is too small".to_string()),
        ),
        (
            pv("plain", "5Gi", &[RWO], json!({})),
            Err("storageClassName does not match".into()),
        ),
        (
            pv(
                "block",
                "5Gi",
                &[RWO],
                json!({"spec": {"storageClassName": "gold", "volumeMode": "Block"}}),
            ),
            Err("incompatible volumeMode".into()),
        ),
        (
            pv("rox", "5Gi", &[ROX], gold.clone()),
            Err("incompatible accessMode".into()),
        ),
        (
            pv(
                "going",
                "5Gi",
                &[RWO],
                json!({"spec": {"storageClassName": "gold"}, "metadata": {"deletionTimestamp": "2025-01-01T00:00:00Z"}}),
            ),
            Err("the volume is marked for deletion \"going\"".into()),
        ),
    ];
    for (volume, want) in cases {
        assert_eq!(
            check_volume_satisfies_claim(&volume, &claim),
            want,
            "{:?}",
            volume.metadata.name
        );
    }
}

#[test]
fn the_newest_default_class_is_the_default() {
    let class = |name: &str, created: &str, default: Option<&str>| -> Arc<StorageClass> {
        let mut c =
            json!({"metadata": {"name": name, "creationTimestamp": created}, "provisioner": "x"});
        if let Some(d) = default {
            c["metadata"]["annotations"] =
                json!({"storageclass.kubernetes.io/is-default-class": d});
        }
        Arc::new(serde_json::from_value(c).unwrap())
    };
    let classes = vec![
        class("old", "2024-01-01T00:00:00Z", Some("true")),
        class("new", "2025-01-01T00:00:00Z", Some("true")),
        class("newest-not-default", "2026-01-01T00:00:00Z", Some("false")),
        class("plain", "2026-01-01T00:00:00Z", None),
    ];
    let name = |c: Option<&Arc<StorageClass>>| c.and_then(|c| c.metadata.name.clone());
    assert_eq!(name(default_class(&classes)).as_deref(), Some("new"));
    let tied = vec![
        class("b", "2025-01-01T00:00:00Z", Some("true")),
        class("a", "2025-01-01T00:00:00Z", Some("true")),
    ];
    assert_eq!(name(default_class(&tied)).as_deref(), Some("a"));
    assert_eq!(name(default_class(&classes[2..])), None);
}

#[test]
fn events_in_upstreams_words() {
    assert_eq!(
        waiting_event(&[]),
        (
            "WaitForFirstConsumer",
            "waiting for first consumer to be created before binding".to_string()
        )
    );
    assert_eq!(
        waiting_event(&["web-0".into()]).1,
        "waiting for pod web-0 to be scheduled"
    );
    assert_eq!(
        waiting_event(&["a".into(), "b".into()]),
        (
            "WaitForPodScheduled",
            "waiting for pods a,b to be scheduled".to_string()
        )
    );
    assert_eq!(in_tree_failure("rancher.io/local-path"), None);
    assert_eq!(
        in_tree_failure("kubernetes.io/no-provisioner").as_deref(),
        Some("no volume plugin matched name: kubernetes.io/no-provisioner")
    );
}

#[test]
fn who_deletes_a_released_volume() {
    let provisioned =
        |by: &str| json!({"metadata": {"annotations": {"pv.kubernetes.io/provisioned-by": by}}});
    // (volume, expected): Ok(true) deleted here, Ok(false) by its provisioner, Err nobody.
    assert_eq!(
        delete_storage(&pv("tmp", "1Gi", &[RWO], json!({}))),
        Ok(true)
    );
    assert_eq!(
        delete_storage(&pv(
            "local",
            "1Gi",
            &[RWO],
            provisioned("rancher.io/local-path")
        )),
        Ok(false)
    );
    assert_eq!(
        delete_storage(&pv(
            "srv",
            "1Gi",
            &[RWO],
            json!({"spec": {"hostPath": {"path": "/srv/data"}}})
        )),
        Err("host_path deleter only supports /tmp/.+ but received provided /srv/data".into())
    );
    let local: PersistentVolume = serde_json::from_value(json!({
        "metadata": {"name": "disk"},
        "spec": {"local": {"path": "/mnt/disk"}, "capacity": {"storage": "1Gi"}}
    }))
    .unwrap();
    assert_eq!(
        delete_storage(&local),
        Err("error getting deleter volume plugin for volume \"disk\": no deletable volume plugin matched".into())
    );
    assert_eq!(
        delete_storage(&pv(
            "gce",
            "1Gi",
            &[RWO],
            provisioned("kubernetes.io/gce-pd")
        )),
        Err("no volume plugin matched name: kubernetes.io/gce-pd".into())
    );
    let csi: PersistentVolume = serde_json::from_value(json!({
        "metadata": {"name": "csi"},
        "spec": {"csi": {"driver": "d", "volumeHandle": "h"}}
    }))
    .unwrap();
    assert_eq!(delete_storage(&csi), Ok(false));
}
