//! The set's PersistentVolumeClaims (`volumeClaimTemplates`): the claims each ordinal uses,
//! created before its pod, and their owner references kept as
//! `persistentVolumeClaimRetentionPolicy` wants them (upstream's `stateful_pod_control.go`).

use super::*;

/// What to do with a pod's claims when the set is deleted or scaled down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Retention {
    Retain,
    Delete,
}

/// `(whenDeleted, whenScaled)`; anything but Delete is Retain (upstream's fallback).
pub(super) fn retention(set: &StatefulSet) -> (Retention, Retention) {
    let policy = set
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_claim_retention_policy.as_ref());
    let parse = |v: Option<&String>| match v.map(String::as_str) {
        Some("Delete") => Retention::Delete,
        _ => Retention::Retain,
    };
    (
        parse(policy.and_then(|p| p.when_deleted.as_ref())),
        parse(policy.and_then(|p| p.when_scaled.as_ref())),
    )
}

/// The claims a pod of `ordinal` uses, keyed by template name: the templates, renamed and
/// labelled with the set's matchLabels.
pub(super) fn claims_for(set: &StatefulSet, ordinal: i32) -> Vec<(String, PersistentVolumeClaim)> {
    let match_labels = set
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.clone())
        .unwrap_or_default();
    claim_templates(set)
        .iter()
        .map(|t| {
            let template = t.metadata.name.clone().unwrap_or_default();
            let mut labels = t.metadata.labels.clone().unwrap_or_default();
            labels.extend(match_labels.clone());
            let claim = PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(claim_name(&template, name_of(set), ordinal)),
                    namespace: Some(namespace_of(set).to_string()),
                    labels: Some(labels),
                    annotations: t.metadata.annotations.clone(),
                    finalizers: t.metadata.finalizers.clone(),
                    ..Default::default()
                },
                spec: t.spec.clone(),
                status: None,
            };
            (template, claim)
        })
        .collect()
}

/// Whether a pod mounts every claim its ordinal should.
pub(super) fn storage_matches(set: &StatefulSet, pod: &Pod) -> bool {
    let Some(ordinal) = ordinal_of(pod) else {
        return false;
    };
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default();
    claims_for(set, ordinal).iter().all(|(template, claim)| {
        volumes.iter().any(|v| {
            v.name == *template
                && v.persistent_volume_claim.as_ref().map(|c| &c.claim_name)
                    == claim.metadata.name.as_ref()
        })
    })
}

/// An owner of a claim, as the owner references name it.
pub(super) struct Owner<'a> {
    api_version: &'static str,
    kind: &'static str,
    name: &'a str,
    uid: &'a str,
}

impl Owner<'_> {
    fn named_by(&self, r: &OwnerReference) -> bool {
        r.api_version == self.api_version && r.kind == self.kind && r.name == self.name
    }

    fn controller_ref(&self) -> OwnerReference {
        OwnerReference {
            api_version: self.api_version.into(),
            kind: self.kind.into(),
            name: self.name.into(),
            uid: self.uid.into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }
}

pub(super) fn set_owner(set: &StatefulSet) -> Owner<'_> {
    Owner {
        api_version: "apps/v1",
        kind: "StatefulSet",
        name: name_of(set),
        uid: set.metadata.uid.as_deref().unwrap_or_default(),
    }
}

pub(super) fn pod_owner<'a>(name: &'a str, uid: &'a str) -> Owner<'a> {
    Owner {
        api_version: "v1",
        kind: "Pod",
        name,
        uid,
    }
}

pub(super) fn refs(claim: &PersistentVolumeClaim) -> &[OwnerReference] {
    claim
        .metadata
        .owner_references
        .as_deref()
        .unwrap_or_default()
}

pub(super) fn has_ref(claim: &PersistentVolumeClaim, owner: &Owner) -> bool {
    !owner.uid.is_empty() && refs(claim).iter().any(|r| r.uid == owner.uid)
}

/// A reference naming `owner` with another uid: left by an earlier object of that name.
pub(super) fn has_stale_ref(claim: &PersistentVolumeClaim, owner: &Owner) -> bool {
    refs(claim)
        .iter()
        .find(|r| owner.named_by(r))
        .is_some_and(|r| r.uid != owner.uid)
}

/// Another controller of the claim, or a stale reference to the set or pod (then the claim
/// is left alone). Irrelevant when everything is retained.
pub(super) fn has_unexpected_controller(
    claim: &PersistentVolumeClaim,
    set: &StatefulSet,
    pod: &Owner,
) -> bool {
    if retention(set) == (Retention::Retain, Retention::Retain) {
        return false;
    }
    let owner = set_owner(set);
    refs(claim).iter().any(|r| {
        if owner.named_by(r) {
            r.uid != owner.uid
        } else if pod.named_by(r) {
            r.uid != pod.uid
        } else {
            r.controller == Some(true)
        }
    })
}

/// Whether a claim's owner references are as the retention policy wants them: no reference
/// when retained; the set's when deleted with the set; the pod's once scaled down when
/// deleted on scale-down; one of the two when both are Delete (upstream's
/// `isClaimOwnerUpToDate`).
pub(super) fn claim_owners_up_to_date(
    claim: &PersistentVolumeClaim,
    set: &StatefulSet,
    pod: &Owner,
    scaled_down: bool,
) -> bool {
    let owner = set_owner(set);
    if has_stale_ref(claim, &owner) || has_stale_ref(claim, pod) {
        // Managed by an earlier set or pod of the same name: not ours to touch.
        return true;
    }
    if has_unexpected_controller(claim, set, pod) {
        return !(has_ref(claim, &owner) || has_ref(claim, pod));
    }
    let non_controller = refs(claim).iter().any(|r| {
        (r.uid == owner.uid || (!pod.uid.is_empty() && r.uid == pod.uid))
            && r.controller != Some(true)
    });
    if non_controller {
        return false;
    }
    let (set_ref, pod_ref) = (has_ref(claim, &owner), has_ref(claim, pod));
    match retention(set) {
        (Retention::Retain, Retention::Retain) => !set_ref && !pod_ref,
        (Retention::Delete, Retention::Retain) => set_ref && !pod_ref,
        (Retention::Retain, Retention::Delete) => !set_ref && scaled_down == pod_ref,
        (Retention::Delete, Retention::Delete) => scaled_down != set_ref && scaled_down == pod_ref,
    }
}

/// The owner references a claim should have under the retention policy (upstream's
/// `updateClaimOwnerRefForSetAndPod`): references to the set and pod are rebuilt as
/// controller references; others are kept.
pub(super) fn claim_owner_refs(
    claim: &PersistentVolumeClaim,
    set: &StatefulSet,
    pod: &Owner,
    scaled_down: bool,
) -> Vec<OwnerReference> {
    let owner = set_owner(set);
    let unexpected = has_unexpected_controller(claim, set, pod);
    let mut v: Vec<OwnerReference> = refs(claim)
        .iter()
        .filter(|r| !owner.named_by(r) && !pod.named_by(r))
        .cloned()
        .collect();
    if unexpected {
        return v;
    }
    let (when_deleted, when_scaled) = retention(set);
    let want_set =
        when_deleted == Retention::Delete && !(when_scaled == Retention::Delete && scaled_down);
    let want_pod = when_scaled == Retention::Delete && scaled_down && !pod.uid.is_empty();
    if want_set {
        v.push(owner.controller_ref());
    }
    if want_pod {
        v.push(pod.controller_ref());
    }
    v
}

impl StatefulSetController {
    /// Creates the claims of `ordinal` that do not exist.
    pub(super) async fn create_claims(
        &self,
        set: &StatefulSet,
        pod: &str,
        ordinal: i32,
    ) -> anyhow::Result<()> {
        let ns = namespace_of(set);
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), ns);
        let mut first_err = None;
        for (_, claim) in claims_for(set, ordinal) {
            let name = claim.metadata.name.clone().unwrap_or_default();
            if self.claims.get(Some(ns), &name).is_some() {
                continue;
            }
            let set_name = name_of(set);
            match api.create(&PostParams::default(), &claim).await {
                Ok(_) => {
                    tracing::info!(claim = %name, pod, "created a PersistentVolumeClaim");
                    self.recorder.record(
                        set,
                        false,
                        "SuccessfulCreate",
                        format!("create Claim {name} Pod {pod} in StatefulSet {set_name} success"),
                    );
                }
                // There already: the cache is behind.
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => {
                    self.recorder.record(
                        set,
                        true,
                        "FailedCreate",
                        format!(
                            "create Claim {name} for Pod {pod} in StatefulSet {set_name} failed error: {e}"
                        ),
                    );
                    first_err.get_or_insert(
                        anyhow::Error::new(e).context(format!("creating claim {name}")),
                    );
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// A claim that still names an earlier pod of that name as its owner (whenScaled:
    /// Delete) is about to be garbage collected: the pod waits for it to go.
    pub(super) fn claim_is_stale(&self, set: &StatefulSet, pod: &Pod) -> bool {
        if retention(set).1 == Retention::Retain {
            return false;
        }
        let owner = pod_owner(
            pod_name(pod),
            pod.metadata.uid.as_deref().unwrap_or_default(),
        );
        let ns = namespace_of(set);
        claims_for(set, ordinal_of(pod).unwrap_or_default())
            .iter()
            .filter_map(|(_, c)| self.claims.get(Some(ns), c.metadata.name.as_deref()?))
            .any(|c| has_stale_ref(&c, &owner))
    }

    pub(super) fn claims_up_to_date(
        &self,
        set: &StatefulSet,
        pod: &Pod,
        scaled_down: bool,
    ) -> bool {
        let owner = pod_owner(
            pod_name(pod),
            pod.metadata.uid.as_deref().unwrap_or_default(),
        );
        let ns = namespace_of(set);
        claims_for(set, ordinal_of(pod).unwrap_or_default())
            .iter()
            .filter_map(|(_, c)| self.claims.get(Some(ns), c.metadata.name.as_deref()?))
            .all(|c| claim_owners_up_to_date(&c, set, &owner, scaled_down))
    }

    /// Gives the pod's claims the owner references the retention policy wants (missing
    /// claims are picked up later).
    pub(super) async fn fix_claims(
        &self,
        set: &StatefulSet,
        pod: &Pod,
        scaled_down: bool,
    ) -> anyhow::Result<()> {
        let owner = pod_owner(
            pod_name(pod),
            pod.metadata.uid.as_deref().unwrap_or_default(),
        );
        let ns = namespace_of(set);
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), ns);
        for (_, want) in claims_for(set, ordinal_of(pod).unwrap_or_default()) {
            let name = want.metadata.name.clone().unwrap_or_default();
            let Some(claim) = self.claims.get(Some(ns), &name) else {
                continue;
            };
            if has_unexpected_controller(&claim, set, &owner) {
                self.recorder.record(
                    set,
                    true,
                    "ConflictingController",
                    format!("PersistentVolumeClaim {name} has a conflicting OwnerReference that acts as a manging controller, the retention policy is ignored for this claim"),
                );
            }
            if claim_owners_up_to_date(&claim, set, &owner, scaled_down) {
                continue;
            }
            let refs = claim_owner_refs(&claim, set, &owner, scaled_down);
            let refs = if refs.is_empty() {
                json!(null)
            } else {
                json!(refs)
            };
            // The resourceVersion makes a concurrent change a conflict, retried next sync.
            let patch = json!({"metadata": {
                "ownerReferences": refs,
                "resourceVersion": claim.metadata.resource_version,
            }});
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await
            {
                Ok(_) => {
                    tracing::debug!(claim = %name, "claim owners set for the retention policy")
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("could not update claim {name} for delete policy ownerRefs")
                    });
                }
            }
        }
        Ok(())
    }
}
