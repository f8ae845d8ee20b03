//! Unit tests of the StatefulSet controller's rules.

use super::*;

fn set(extra: Value) -> StatefulSet {
    let mut v = json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "set-uid"},
        "spec": {
            "replicas": 3,
            "serviceName": "nginx",
            "selector": {"matchLabels": {"app": "nginx"}},
            "template": {"metadata": {"labels": {"app": "nginx"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}],
                    "volumes": [{"name": "cache", "emptyDir": {}}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "www", "labels": {"tier": "data"}},
                "spec": {"accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}}}}]
        }
    });
    if let (Some(spec), Some(extra)) = (v["spec"].as_object_mut(), extra.as_object()) {
        for (k, x) in extra {
            spec.insert(k.clone(), x.clone());
        }
    }
    serde_json::from_value(v).unwrap()
}

#[test]
fn names_encode_the_parent_and_ordinal() {
    assert_eq!(parent_and_ordinal("web-0"), Some(("web", 0)));
    assert_eq!(parent_and_ordinal("my-web-12"), Some(("my-web", 12)));
    assert_eq!(parent_and_ordinal("web-x"), None);
    assert_eq!(parent_and_ordinal("web-"), None);
    assert_eq!(parent_and_ordinal("web"), None);
    assert_eq!(parent_and_ordinal("web-99999999999"), None);
    assert_eq!(claim_name("www", "web", 2), "www-web-2");
}

#[test]
fn pods_have_a_stable_identity_and_their_claims() {
    let s = set(json!({}));
    let pod = new_pod(&s, &template_of(&s), 2, "web-abc");
    assert_eq!(pod.metadata.name.as_deref(), Some("web-2"));
    assert_eq!(pod.metadata.namespace.as_deref(), Some("default"));
    let labels = pod.metadata.labels.as_ref().unwrap();
    assert_eq!(labels[POD_NAME_LABEL], "web-2");
    assert_eq!(labels[POD_INDEX_LABEL], "2");
    assert_eq!(labels[REVISION_HASH], "web-abc");
    assert_eq!(labels["app"], "nginx");
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(spec.hostname.as_deref(), Some("web-2"));
    assert_eq!(spec.subdomain.as_deref(), Some("nginx"));
    let volumes = spec.volumes.as_ref().unwrap();
    assert_eq!(volumes.len(), 2);
    assert_eq!(volumes[0].name, "www");
    assert_eq!(
        volumes[0]
            .persistent_volume_claim
            .as_ref()
            .unwrap()
            .claim_name,
        "www-web-2"
    );
    assert_eq!(volumes[1].name, "cache");
    let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("StatefulSet", "set-uid")
    );
    assert!(identity_matches(&s, &pod));
    assert!(storage_matches(&s, &pod));
    let mut relabelled = pod.clone();
    relabelled
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .remove(POD_NAME_LABEL);
    assert!(!identity_matches(&s, &relabelled));

    let claims = claims_for(&s, 2);
    assert_eq!(claims.len(), 1);
    let (template, claim) = &claims[0];
    assert_eq!(template, "www");
    assert_eq!(claim.metadata.name.as_deref(), Some("www-web-2"));
    let labels = claim.metadata.labels.as_ref().unwrap();
    assert_eq!(
        (labels["app"].as_str(), labels["tier"].as_str()),
        ("nginx", "data")
    );
}

#[test]
fn the_partition_decides_which_revision_a_new_pod_gets() {
    let s = set(json!({"updateStrategy": {"type": "RollingUpdate",
        "rollingUpdate": {"partition": 2}}}));
    assert!(at_current_revision(&s, 1));
    assert!(!at_current_revision(&s, 2));
    let s = set(json!({"ordinals": {"start": 5},
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}}));
    assert!(at_current_revision(&s, 5));
    assert!(!at_current_revision(&s, 6));
    let s = set(json!({"updateStrategy": {"type": "OnDelete"}}));
    assert!(!at_current_revision(&s, 0));
}

#[test]
fn max_unavailable_rounds_down_but_is_at_least_one() {
    assert_eq!(max_unavailable(&IntOrString::Int(2), 5), 2);
    assert_eq!(max_unavailable(&IntOrString::String("50%".into()), 5), 2);
    assert_eq!(max_unavailable(&IntOrString::String("10%".into()), 5), 1);
    assert_eq!(max_unavailable(&IntOrString::Int(0), 5), 1);
}

fn claim(refs: Value) -> PersistentVolumeClaim {
    serde_json::from_value(json!({"metadata": {"name": "www-web-1", "ownerReferences": refs}}))
        .unwrap()
}

#[test]
fn claim_owners_follow_the_retention_policy() {
    let policy = |deleted: &str, scaled: &str| {
        set(json!({"persistentVolumeClaimRetentionPolicy":
            {"whenDeleted": deleted, "whenScaled": scaled}}))
    };
    let pod = pod_owner("web-1", "pod-uid");
    let none = claim(json!([]));
    // Retain / Retain: no owners.
    let s = policy("Retain", "Retain");
    assert!(claim_owners_up_to_date(&none, &s, &pod, false));
    assert!(claim_owners_up_to_date(&none, &s, &pod, true));
    // Delete with the set: the set owns the claim, scaled down or not.
    let s = policy("Delete", "Retain");
    assert!(!claim_owners_up_to_date(&none, &s, &pod, false));
    let refs = claim_owner_refs(&none, &s, &pod, false);
    assert_eq!(refs.len(), 1);
    assert_eq!(
        (refs[0].kind.as_str(), refs[0].controller),
        ("StatefulSet", Some(true))
    );
    let owned = claim(json!(refs));
    assert!(claim_owners_up_to_date(&owned, &s, &pod, false));
    // Delete on scale-down: the pod owns the claim once it is out of range.
    let s = policy("Retain", "Delete");
    assert!(claim_owners_up_to_date(&none, &s, &pod, false));
    assert!(!claim_owners_up_to_date(&none, &s, &pod, true));
    let refs = claim_owner_refs(&none, &s, &pod, true);
    assert_eq!((refs.len(), refs[0].kind.as_str()), (1, "Pod"));
    // Both: the set in range, the pod out of it.
    let s = policy("Delete", "Delete");
    let in_range = claim(json!(claim_owner_refs(&none, &s, &pod, false)));
    assert_eq!(refs_kinds(&in_range), ["StatefulSet"]);
    assert!(!claim_owners_up_to_date(&in_range, &s, &pod, true));
    let scaled = claim(json!(claim_owner_refs(&in_range, &s, &pod, true)));
    assert_eq!(refs_kinds(&scaled), ["Pod"]);
    assert!(claim_owners_up_to_date(&scaled, &s, &pod, true));
    // Back to Retain: the references go again.
    let s = policy("Retain", "Retain");
    assert!(!claim_owners_up_to_date(&scaled, &s, &pod, true));
    assert!(claim_owner_refs(&scaled, &s, &pod, true).is_empty());
    // A reference to an earlier pod of that name: not ours to touch, and it blocks.
    let stale = claim(json!([{"apiVersion": "v1", "kind": "Pod", "name": "web-1",
        "uid": "old-uid", "controller": true}]));
    let s = policy("Retain", "Delete");
    assert!(claim_owners_up_to_date(&stale, &s, &pod, false));
    assert!(has_stale_ref(&stale, &pod_owner("web-1", "")));
}

fn refs_kinds(c: &PersistentVolumeClaim) -> Vec<&str> {
    refs(c).iter().map(|r| r.kind.as_str()).collect()
}

fn pod(name: &str, revision: &str, ready: bool) -> Arc<Pod> {
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {REVISION_HASH: revision}},
            "status": {"phase": if ready { "Running" } else { "Pending" },
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
        }))
        .unwrap(),
    )
}

#[test]
fn status_counts_and_rolling_update_completion() {
    let s = set(json!({}));
    let pods = [
        pod("web-0", "web-old", true),
        pod("web-1", "web-new", true),
        pod("web-2", "web-new", false),
    ];
    let c = count(&pods, 0, Timestamp::now(), "web-old", "web-new");
    assert_eq!(
        c,
        Counts {
            replicas: 3,
            ready: 2,
            available: 2,
            current: 1,
            updated: 2
        }
    );
    let mut st = SetStatus {
        counts: c,
        current_revision: "web-old".into(),
        update_revision: "web-new".into(),
        collision_count: 0,
    };
    st.complete_rolling_update(&s);
    assert_eq!(st.current_revision, "web-old");
    let pods = [
        pod("web-0", "web-new", true),
        pod("web-1", "web-new", true),
        pod("web-2", "web-new", true),
    ];
    st.counts = count(&pods, 0, Timestamp::now(), "web-old", "web-new");
    st.complete_rolling_update(&s);
    assert_eq!(
        (st.current_revision.as_str(), st.counts.current),
        ("web-new", 3)
    );
}

#[tokio::test]
async fn ordered_runs_stop_at_the_first_blocker_and_parallel_runs_do_all() {
    use std::sync::Mutex;
    let seen = Mutex::new(Vec::new());
    let stop = run_for_all(5, true, |i| {
        let seen = &seen;
        async move {
            seen.lock().unwrap().push(i);
            Ok(i == 1)
        }
    })
    .await
    .unwrap();
    assert!(stop);
    assert_eq!(*seen.lock().unwrap(), [0, 1]);
    seen.lock().unwrap().clear();
    let stop = run_for_all(5, false, |i| {
        let seen = &seen;
        async move {
            seen.lock().unwrap().push(i);
            Ok(true)
        }
    })
    .await
    .unwrap();
    assert!(!stop);
    assert_eq!(seen.lock().unwrap().len(), 5);
    let failed = run_for_all(7, false, |i| async move {
        if i == 2 {
            anyhow::bail!("boom")
        }
        Ok(false)
    })
    .await;
    assert!(failed.is_err());
}
