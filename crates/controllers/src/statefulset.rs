//! The StatefulSet controller (Kubernetes' `pkg/controller/statefulset`): pods with stable
//! identities `<set>-<ordinal>` (hostname, `subdomain` = serviceName, pod-name and pod-index
//! labels), one PersistentVolumeClaim per claim template and ordinal that outlives its pod
//! (unless persistentVolumeClaimRetentionPolicy says Delete, done through owner references
//! for the garbage collector, as upstream), OrderedReady or Parallel pod management,
//! RollingUpdate (partition, maxUnavailable) or OnDelete, ControllerRevisions for `kubectl
//! rollout history/undo sts`, and the status `kubectl rollout status sts` reads.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::apps::v1::{
    ControllerRevision, RollingUpdateStatefulSetStrategy, StatefulSet,
};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::history::{self, REVISION_HASH};
use crate::pods;
use client_go::controller_ref::{ControllerRefManager, owner_not_deleting};
use client_go::events::Recorder;
use client_go::expectations::Expectations;
use client_go::informer::{Change, Informer, controller_of, key_of};
use client_go::queue::{WorkQueue, run_workers};

/// The label with a StatefulSet pod's name (what a per-pod Service selects).
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The label with a StatefulSet pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
/// Most pods acted on at once in Parallel mode (Kubernetes' MaxBatchSize).
const MAX_BATCH: usize = 500;
/// Revision names tried per sync before giving up until the next one.
const MAX_COLLISIONS: i32 = 10;

/// The parent name and ordinal a pod's name encodes, as upstream's `(.*)-([0-9]+)$`.
pub fn parent_and_ordinal(name: &str) -> Option<(&str, i32)> {
    let (parent, ordinal) = name.rsplit_once('-')?;
    if ordinal.is_empty() || !ordinal.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((parent, ordinal.parse().ok()?))
}

/// The name of the claim of template `template` for ordinal `ordinal` of set `set`.
pub fn claim_name(template: &str, set: &str, ordinal: i32) -> String {
    format!("{template}-{set}-{ordinal}")
}

fn name_of(set: &StatefulSet) -> &str {
    set.metadata.name.as_deref().unwrap_or_default()
}

fn namespace_of(set: &StatefulSet) -> &str {
    set.metadata.namespace.as_deref().unwrap_or_default()
}

fn spec_replicas(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1)
        .max(0)
}

fn start_ordinal(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.ordinals.as_ref())
        .and_then(|o| o.start)
        .unwrap_or(0)
        .max(0)
}

fn min_ready_seconds(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

fn is_parallel(set: &StatefulSet) -> bool {
    set.spec
        .as_ref()
        .and_then(|s| s.pod_management_policy.as_deref())
        == Some("Parallel")
}

fn strategy_type(set: &StatefulSet) -> &str {
    set.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        .unwrap_or("RollingUpdate")
}

fn rolling_update(set: &StatefulSet) -> Option<&RollingUpdateStatefulSetStrategy> {
    set.spec
        .as_ref()?
        .update_strategy
        .as_ref()?
        .rolling_update
        .as_ref()
}

fn template_of(set: &StatefulSet) -> PodTemplateSpec {
    set.spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default()
}

fn claim_templates(set: &StatefulSet) -> &[PersistentVolumeClaim] {
    set.spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.as_deref())
        .unwrap_or_default()
}

fn pod_name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or_default()
}

fn ordinal_of(pod: &Pod) -> Option<i32> {
    parent_and_ordinal(pod_name(pod)).map(|(_, o)| o)
}

fn revision_of(pod: &Pod) -> Option<&str> {
    pod.metadata
        .labels
        .as_ref()?
        .get(REVISION_HASH)
        .map(String::as_str)
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.phase.as_deref()
}

fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

fn is_running_and_ready(pod: &Pod) -> bool {
    phase(pod) == Some("Running") && pods::is_ready(pod)
}

fn is_unavailable(pod: &Pod, min_ready: i32, now: Timestamp) -> bool {
    !pods::is_available(pod, min_ready, now) || is_terminating(pod)
}

/// What to do with a pod's claims when the set is deleted or scaled down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Retention {
    Retain,
    Delete,
}

/// `(whenDeleted, whenScaled)`; anything but Delete is Retain (upstream's fallback).
fn retention(set: &StatefulSet) -> (Retention, Retention) {
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
fn claims_for(set: &StatefulSet, ordinal: i32) -> Vec<(String, PersistentVolumeClaim)> {
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

/// A pod of the set for `ordinal` from `template` (the template of revision `revision`):
/// stable name, hostname and subdomain, identity labels, and a volume per claim template.
pub fn new_pod(set: &StatefulSet, template: &PodTemplateSpec, ordinal: i32, revision: &str) -> Pod {
    let name = format!("{}-{ordinal}", name_of(set));
    let owner = pods::controller_ref("apps/v1", "StatefulSet", &set.metadata);
    let mut pod = pods::from_template(template, "", owner);
    pod.metadata.generate_name = None;
    pod.metadata.name = Some(name.clone());
    pod.metadata.namespace = Some(namespace_of(set).to_string());
    let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    labels.insert(REVISION_HASH.into(), revision.to_string());
    let spec = pod.spec.get_or_insert_with(Default::default);
    // Set only at creation: both are immutable afterwards.
    spec.hostname = Some(name);
    spec.subdomain = set
        .spec
        .as_ref()
        .and_then(|s| s.service_name.clone())
        .filter(|s| !s.is_empty());
    let claims = claims_for(set, ordinal);
    let mut volumes: Vec<Volume> = claims
        .iter()
        .map(|(template, claim)| Volume {
            name: template.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.metadata.name.clone().unwrap_or_default(),
                read_only: None,
            }),
            ..Default::default()
        })
        .collect();
    // A template volume named like a claim template is replaced by the claim.
    volumes.extend(
        spec.volumes
            .take()
            .unwrap_or_default()
            .into_iter()
            .filter(|v| !claims.iter().any(|(t, _)| *t == v.name)),
    );
    spec.volumes = (!volumes.is_empty()).then_some(volumes);
    pod
}

/// Whether a pod has the set's identity (name, namespace, pod-name label).
fn identity_matches(set: &StatefulSet, pod: &Pod) -> bool {
    let name = pod_name(pod);
    parent_and_ordinal(name).is_some_and(|(parent, ordinal)| {
        parent == name_of(set)
            && name == format!("{parent}-{ordinal}")
            && pod.metadata.namespace.as_deref() == Some(namespace_of(set))
            && pod
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(POD_NAME_LABEL))
                .map(String::as_str)
                == Some(name)
    })
}

/// Whether a pod mounts every claim its ordinal should.
fn storage_matches(set: &StatefulSet, pod: &Pod) -> bool {
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

/// Whether the pod at `ordinal` is made from the current revision rather than the update
/// revision: below the partition, or (RollingUpdate without parameters) among the current
/// replicas.
fn at_current_revision(set: &StatefulSet, ordinal: i32) -> bool {
    let start = start_ordinal(set);
    match rolling_update(set) {
        Some(ru) => ordinal < start + ru.partition.unwrap_or(0),
        None => {
            let current = set
                .status
                .as_ref()
                .and_then(|s| s.current_replicas)
                .unwrap_or(0);
            strategy_type(set) == "RollingUpdate" && ordinal < start + current
        }
    }
}

/// maxUnavailable as a number of pods (a percentage rounds down), at least 1.
fn max_unavailable(v: &IntOrString, replicas: usize) -> usize {
    let n = match v {
        IntOrString::Int(n) => (*n).max(0) as usize,
        IntOrString::String(s) => {
            let pct: f64 = s.trim_end_matches('%').parse().unwrap_or(0.0);
            (pct * replicas as f64 / 100.0).floor() as usize
        }
    };
    n.max(1)
}

/// An owner of a claim, as the owner references name it.
struct Owner<'a> {
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

fn set_owner(set: &StatefulSet) -> Owner<'_> {
    Owner {
        api_version: "apps/v1",
        kind: "StatefulSet",
        name: name_of(set),
        uid: set.metadata.uid.as_deref().unwrap_or_default(),
    }
}

fn pod_owner<'a>(name: &'a str, uid: &'a str) -> Owner<'a> {
    Owner {
        api_version: "v1",
        kind: "Pod",
        name,
        uid,
    }
}

fn refs(claim: &PersistentVolumeClaim) -> &[OwnerReference] {
    claim
        .metadata
        .owner_references
        .as_deref()
        .unwrap_or_default()
}

fn has_ref(claim: &PersistentVolumeClaim, owner: &Owner) -> bool {
    !owner.uid.is_empty() && refs(claim).iter().any(|r| r.uid == owner.uid)
}

/// A reference naming `owner` with another uid: left by an earlier object of that name.
fn has_stale_ref(claim: &PersistentVolumeClaim, owner: &Owner) -> bool {
    refs(claim)
        .iter()
        .find(|r| owner.named_by(r))
        .is_some_and(|r| r.uid != owner.uid)
}

/// Another controller of the claim, or a stale reference to the set or pod (then the claim
/// is left alone). Irrelevant when everything is retained.
fn has_unexpected_controller(
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
fn claim_owners_up_to_date(
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
fn claim_owner_refs(
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

/// Status counts over the set's pods.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    replicas: i32,
    ready: i32,
    available: i32,
    current: i32,
    updated: i32,
}

fn count(pods: &[Arc<Pod>], min_ready: i32, now: Timestamp, current: &str, update: &str) -> Counts {
    let mut c = Counts::default();
    for p in pods {
        c.replicas += 1;
        if is_running_and_ready(p) {
            c.ready += 1;
            if pods::is_available(p, min_ready, now) {
                c.available += 1;
            }
        }
        if !is_terminating(p) {
            let rev = revision_of(p);
            if rev == Some(current) {
                c.current += 1;
            }
            if rev == Some(update) {
                c.updated += 1;
            }
        }
    }
    c
}

/// The status to write.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SetStatus {
    counts: Counts,
    current_revision: String,
    update_revision: String,
    collision_count: i32,
}

impl SetStatus {
    /// A RollingUpdate is complete once every replica is updated and ready: the update
    /// revision becomes the current one (upstream's `completeRollingUpdate`).
    fn complete_rolling_update(&mut self, set: &StatefulSet) {
        let want = spec_replicas(set);
        let c = &mut self.counts;
        if strategy_type(set) == "RollingUpdate"
            && c.updated == want
            && c.ready == want
            && c.replicas == want
        {
            c.current = c.updated;
            self.current_revision = self.update_revision.clone();
        }
    }
}

/// A replica slot: the pod there, or the one to create.
enum Slot {
    Live(Arc<Pod>),
    Missing(Box<Pod>),
}

impl Slot {
    fn pod(&self) -> &Pod {
        match self {
            Slot::Live(p) => p,
            Slot::Missing(p) => p,
        }
    }
}

/// Runs `f` on `0..n`: in order, stopping at the first that asks to (OrderedReady), or all
/// of them in growing batches, stopping at a batch with an error (Parallel). Returns whether
/// to stop the sync here.
async fn run_for_all<F, Fut>(n: usize, monotonic: bool, f: F) -> anyhow::Result<bool>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    if monotonic {
        for i in 0..n {
            if f(i).await? {
                return Ok(true);
            }
        }
        return Ok(false);
    }
    let (mut done, mut batch) = (0, 1);
    while done < n {
        let size = batch.min(n - done);
        let results = futures::future::join_all((done..done + size).map(&f)).await;
        if let Some(e) = results.into_iter().find_map(Result::err) {
            return Err(e);
        }
        done += size;
        batch = (batch * 2).min(MAX_BATCH);
    }
    Ok(false)
}

pub struct StatefulSetController {
    client: Client,
    sets: Informer<StatefulSet>,
    pods: Informer<Pod>,
    claims: Informer<PersistentVolumeClaim>,
    revisions: Informer<ControllerRevision>,
    queue: Arc<WorkQueue>,
    expectations: Expectations,
    recorder: Recorder,
}

impl StatefulSetController {
    pub fn new(
        client: Client,
        sets: Informer<StatefulSet>,
        pods: Informer<Pod>,
        claims: Informer<PersistentVolumeClaim>,
        revisions: Informer<ControllerRevision>,
    ) -> Arc<Self> {
        let c = Arc::new(StatefulSetController {
            recorder: Recorder::new(client.clone(), "statefulset-controller"),
            client,
            sets,
            pods,
            claims,
            revisions,
            queue: WorkQueue::new(),
            expectations: Expectations::default(),
        });
        let me = c.clone();
        c.sets.on_change(move |ch: &Change<StatefulSet>| {
            if let Some(set) = ch.object() {
                let key = key_of(set.as_ref());
                if ch.new.is_none() {
                    me.expectations.forget(&key);
                }
                me.queue.add(key);
            }
        });
        let me = c.clone();
        c.pods.on_change(move |ch: &Change<Pod>| me.pod_changed(ch));
        // A claim appearing or going may unblock a pod (a stale claim must go first).
        let me = c.clone();
        c.claims
            .on_change(move |ch: &Change<PersistentVolumeClaim>| me.claim_changed(ch));
        c
    }

    /// The set (in the cache, with that uid) a pod's controller reference names.
    fn owner_of(&self, pod: &Pod) -> Option<String> {
        let r = controller_of(pod).filter(|r| r.kind == "StatefulSet")?;
        let set = self.sets.get(pod.metadata.namespace.as_deref(), &r.name)?;
        (set.metadata.uid.as_deref() == Some(r.uid.as_str())).then(|| key_of(set.as_ref()))
    }

    /// Sets that would adopt an orphan pod.
    fn enqueue_adopters(&self, pod: &Pod) {
        let Some((parent, _)) = parent_and_ordinal(pod_name(pod)) else {
            return;
        };
        let labels = pods::labels(&pod.metadata);
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        if let Some(set) = self.sets.get(Some(ns), parent)
            && set
                .spec
                .as_ref()
                .is_some_and(|s| pods::selects_some(&s.selector, &labels))
        {
            self.queue.add(key_of(set.as_ref()));
        }
    }

    fn pod_changed(&self, ch: &Change<Pod>) {
        fn uid(p: &Pod) -> String {
            p.metadata.uid.clone().unwrap_or_default()
        }
        match (&ch.old, &ch.new) {
            (None, Some(new)) => match self.owner_of(new) {
                Some(owner) => {
                    self.expectations.creation_observed(&owner);
                    if is_terminating(new) {
                        self.expectations.deletion_observed(&owner, &uid(new));
                    }
                    self.queue.add(owner);
                }
                None if controller_of(new.as_ref()).is_none() => self.enqueue_adopters(new),
                None => {}
            },
            (Some(old), Some(new)) => {
                match self.owner_of(new) {
                    Some(owner) => {
                        if is_terminating(new) && !is_terminating(old) {
                            // Being deleted counts as deleted; the final removal comes later.
                            self.expectations.deletion_observed(&owner, &uid(new));
                        }
                        self.queue.add(owner);
                    }
                    None if controller_of(new.as_ref()).is_none() => self.enqueue_adopters(new),
                    None => {}
                }
                // Released or handed over: the old owner recounts.
                if let Some(owner) = self.owner_of(old) {
                    self.queue.add(owner);
                }
            }
            (Some(old), None) => {
                if let Some(owner) = self.owner_of(old) {
                    self.expectations.deletion_observed(&owner, &uid(old));
                    self.queue.add(owner);
                }
            }
            (None, None) => {}
        }
    }

    fn claim_changed(&self, ch: &Change<PersistentVolumeClaim>) {
        let Some(claim) = ch.object() else { return };
        let name = claim.metadata.name.as_deref().unwrap_or_default();
        let ns = claim.metadata.namespace.as_deref().unwrap_or_default();
        for set in self.sets.list_namespace(ns) {
            let ours = claim_templates(&set).iter().any(|t| {
                let prefix = format!(
                    "{}-{}-",
                    t.metadata.name.as_deref().unwrap_or_default(),
                    name_of(&set)
                );
                name.strip_prefix(&prefix)
                    .is_some_and(|o| !o.is_empty() && o.bytes().all(|b| b.is_ascii_digit()))
            });
            if ours {
                self.queue.add(key_of(set.as_ref()));
            }
        }
    }

    pub async fn run(self: Arc<Self>, workers: usize) {
        self.sets.wait_synced().await;
        self.pods.wait_synced().await;
        self.claims.wait_synced().await;
        self.revisions.wait_synced().await;
        let me = self.clone();
        run_workers("statefulset", self.queue.clone(), workers, move |key| {
            let me = me.clone();
            async move { me.sync(&key).await }
        })
        .await;
    }

    async fn sync(&self, key: &str) -> anyhow::Result<Option<Duration>> {
        let Some(set) = self.sets.get_key(key) else {
            self.expectations.forget(key);
            return Ok(None);
        };
        let ns = namespace_of(&set).to_string();
        let uid = set.metadata.uid.clone().unwrap_or_default();
        let deleting = set.metadata.deletion_timestamp.is_some();
        if !deleting {
            self.adopt_orphan_revisions(&set).await?;
        }
        let pods = self.claim_pods(&set).await?;
        let owned = history::owned(&self.revisions, &ns, &uid);
        let (current, update, collision_count) = self.revisions_for(&set, &owned).await?;
        let current_name = current.metadata.name.clone().unwrap_or_default();
        let update_name = update.metadata.name.clone().unwrap_or_default();
        let min_ready = min_ready_seconds(&set);
        let mut status = SetStatus {
            counts: count(
                &pods,
                min_ready,
                Timestamp::now(),
                &current_name,
                &update_name,
            ),
            current_revision: current_name,
            update_revision: update_name,
            collision_count,
        };
        // A set being deleted only reports; one waiting for its last requests to show in the
        // cache reports what it sees and acts on the next sync.
        let result = if deleting {
            Ok(())
        } else if !self.expectations.satisfied(key) {
            tracing::debug!(statefulset = %key, "waiting for earlier pod changes to be observed");
            Ok(())
        } else {
            self.update_set(key, &set, &current, &pods, &mut status)
                .await
        };
        status.complete_rolling_update(&set);
        // Status and history are kept up to date even when acting failed.
        let written = self.write_status(&set, &status).await;
        let truncated = self.truncate_history(&set, &owned, &pods, &status).await;
        result?;
        written?;
        truncated?;
        let again = min_ready > 0 && status.counts.available != spec_replicas(&set);
        Ok(again.then(|| Duration::from_secs(min_ready as u64)))
    }

    /// The set's pods after adoption and release (upstream's ControllerRefManager, with
    /// membership by name): matching orphans named `<set>-<n>` are adopted; owned pods that
    /// stop matching are released.
    async fn claim_pods(&self, set: &StatefulSet) -> anyhow::Result<Vec<Arc<Pod>>> {
        let ns = namespace_of(set);
        let uid = set.metadata.uid.clone().unwrap_or_default();
        let selector = set.spec.as_ref().map(|s| &s.selector);
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let sets: Api<StatefulSet> = Api::namespaced(self.client.clone(), ns);
        let r = pods::controller_ref("apps/v1", "StatefulSet", &set.metadata);
        ControllerRefManager::new(&set.metadata, r)
            .claim(
                &api,
                self.pods.list_namespace(ns),
                |pod| {
                    let member =
                        parent_and_ordinal(pod_name(pod)).is_some_and(|(p, _)| p == name_of(set));
                    member
                        && selector
                            .is_some_and(|s| pods::selects_some(s, &pods::labels(&pod.metadata)))
                },
                || owner_not_deleting(&sets, name_of(set), &uid),
            )
            .await
    }

    /// Orphaned revisions the selector matches become the set's (after an orphaning delete
    /// and re-create, the history comes back).
    async fn adopt_orphan_revisions(&self, set: &StatefulSet) -> anyhow::Result<()> {
        let Some(selector) = set.spec.as_ref().map(|s| &s.selector) else {
            return Ok(());
        };
        let ns = namespace_of(set);
        let api: Api<ControllerRevision> = Api::namespaced(self.client.clone(), ns);
        let sets: Api<StatefulSet> = Api::namespaced(self.client.clone(), ns);
        let uid = set.metadata.uid.clone().unwrap_or_default();
        let owner = pods::controller_ref("apps/v1", "StatefulSet", &set.metadata);
        ControllerRefManager::new(&set.metadata, owner)
            .claim(
                &api,
                self.revisions.list_namespace(ns),
                |r| pods::selects_some(selector, &pods::labels(&r.metadata)),
                || owner_not_deleting(&sets, name_of(set), &uid),
            )
            .await?;
        Ok(())
    }

    /// The current and update revisions and the collision count (upstream's
    /// `getStatefulSetRevisions`): the set's template is the update revision, created if
    /// new, renumbered newest if an older revision has it (a rollback); the current one is
    /// the status' currentRevision, or the update revision for a new set.
    async fn revisions_for(
        &self,
        set: &StatefulSet,
        owned: &[Arc<ControllerRevision>],
    ) -> anyhow::Result<(ControllerRevision, ControllerRevision, i32)> {
        let ns = namespace_of(set);
        let uid = set.metadata.uid.clone().unwrap_or_default();
        let api: Api<ControllerRevision> = Api::namespaced(self.client.clone(), ns);
        let template = template_of(set);
        let data = history::template_patch(&template);
        let first = set
            .status
            .as_ref()
            .and_then(|s| s.collision_count)
            .unwrap_or(0);
        let mut collision_count = first;
        let same = |r: &ControllerRevision| r.data.as_ref().map(|d| &d.0) == Some(&data);
        let update = loop {
            let want = self.new_revision(set, &template, &data, collision_count);
            match history::make_newest(&api, owned, &uid, same, want).await? {
                Some(r) => break r,
                None if collision_count < first + MAX_COLLISIONS => {
                    tracing::info!(statefulset = %name_of(set), collision_count, "ControllerRevision name collision");
                    collision_count += 1;
                }
                None => {
                    anyhow::bail!(
                        "no free ControllerRevision name for StatefulSet {ns}/{}",
                        name_of(set)
                    )
                }
            }
        };
        let status_current = set
            .status
            .as_ref()
            .and_then(|s| s.current_revision.as_deref());
        let current = owned
            .iter()
            .find(|r| r.metadata.name.is_some() && r.metadata.name.as_deref() == status_current)
            .map(|r| r.as_ref().clone())
            .unwrap_or_else(|| update.clone());
        Ok((current, update, collision_count))
    }

    /// A revision of the set's template: named `<set>-<hash of its data>`, labelled with the
    /// template's labels (what `kubectl rollout history` selects by) and the hash, annotated
    /// as the set (change-cause).
    fn new_revision(
        &self,
        set: &StatefulSet,
        template: &PodTemplateSpec,
        data: &Value,
        collision_count: i32,
    ) -> ControllerRevision {
        let bytes = serde_json::to_vec(data).unwrap_or_default();
        let hash = history::safe_hash(&bytes, Some(collision_count));
        let mut labels = template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        labels.insert(REVISION_HASH.into(), hash.clone());
        ControllerRevision {
            metadata: ObjectMeta {
                name: Some(format!("{}-{hash}", name_of(set))),
                namespace: Some(namespace_of(set).to_string()),
                labels: Some(labels),
                annotations: set.metadata.annotations.clone(),
                owner_references: Some(vec![pods::controller_ref(
                    "apps/v1",
                    "StatefulSet",
                    &set.metadata,
                )]),
                ..Default::default()
            },
            data: Some(RawExtension(data.clone())),
            revision: 0,
        }
    }

    /// Drives the pods toward the spec (upstream's `updateStatefulSet`): replicas in
    /// ordinal order (created, replaced when failed, waited for when OrderedReady), then the
    /// condemned (ordinals out of range) from the highest, then the rolling update.
    async fn update_set(
        &self,
        key: &str,
        set: &StatefulSet,
        current: &ControllerRevision,
        pods: &[Arc<Pod>],
        status: &mut SetStatus,
    ) -> anyhow::Result<()> {
        let start = start_ordinal(set);
        let replicas = spec_replicas(set);
        let min_ready = min_ready_seconds(set);
        let now = Timestamp::now();
        let current_template = history::template_of(current).unwrap_or_else(|| template_of(set));
        let update_template = template_of(set);
        let mut live: Vec<Option<Arc<Pod>>> = vec![None; replicas as usize];
        let mut condemned = Vec::new();
        for p in pods {
            let Some(ordinal) = ordinal_of(p) else {
                continue;
            };
            if ordinal >= start && ordinal - start < replicas {
                live[(ordinal - start) as usize] = Some(p.clone());
            } else {
                condemned.push(p.clone());
            }
        }
        let slots: Vec<Slot> = live
            .into_iter()
            .enumerate()
            .map(|(i, p)| match p {
                Some(p) => Slot::Live(p),
                None => {
                    let ordinal = start + i as i32;
                    let pod = if at_current_revision(set, ordinal) {
                        new_pod(set, &current_template, ordinal, &status.current_revision)
                    } else {
                        new_pod(set, &update_template, ordinal, &status.update_revision)
                    };
                    Slot::Missing(Box::new(pod))
                }
            })
            .collect();
        condemned.sort_by_key(|p| Reverse(ordinal_of(p)));
        // The first unavailable pod may go even when OrderedReady waits on it.
        let first_unavailable: Option<String> = slots
            .iter()
            .map(Slot::pod)
            .chain(condemned.iter().rev().map(|p| p.as_ref()))
            .find(|p| is_unavailable(p, min_ready, now))
            .map(|p| pod_name(p).to_string());
        let monotonic = !is_parallel(set);

        let stop = run_for_all(slots.len(), monotonic, |i| {
            self.process_replica(key, set, monotonic, &slots[i], now)
        })
        .await?;
        if stop {
            return Ok(());
        }
        let condemned = &condemned;
        let stop = run_for_all(condemned.len(), monotonic, |i| async move {
            self.fix_claims(set, &condemned[i], true).await?;
            Ok(false)
        })
        .await?;
        if stop {
            return Ok(());
        }
        let stop = run_for_all(condemned.len(), monotonic, |i| {
            self.process_condemned(
                key,
                set,
                monotonic,
                &condemned[i],
                first_unavailable.as_deref(),
                now,
            )
        })
        .await?;
        if stop || strategy_type(set) == "OnDelete" {
            // OnDelete: pods are replaced only when someone deletes them.
            return Ok(());
        }
        self.rolling_update(key, set, &slots, status, now).await
    }

    /// One replica slot (upstream's `processReplica`); `Ok(true)` stops an OrderedReady sync.
    async fn process_replica(
        &self,
        key: &str,
        set: &StatefulSet,
        monotonic: bool,
        slot: &Slot,
        now: Timestamp,
    ) -> anyhow::Result<bool> {
        let pod = match slot {
            Slot::Missing(pod) => {
                if self.claim_is_stale(set, pod) {
                    tracing::debug!(pod = %pod_name(pod), "waiting for a stale claim to go");
                    return Ok(true);
                }
                self.create_pod(key, set, pod).await?;
                return Ok(monotonic);
            }
            Slot::Live(pod) => pod,
        };
        if matches!(phase(pod), Some("Failed" | "Succeeded")) {
            // Replaced whatever the exit code: a StatefulSet pod is meant to run.
            if !is_terminating(pod) {
                tracing::info!(pod = %pod_name(pod), phase = ?phase(pod), "replacing a finished StatefulSet pod");
                self.delete_pod(key, set, pod).await?;
            }
            return Ok(true);
        }
        if phase(pod) == Some("Pending") {
            self.create_claims(set, pod_name(pod), ordinal_of(pod).unwrap_or_default())
                .await?;
            self.fix_claims(set, pod, false).await?;
        }
        let min_ready = min_ready_seconds(set);
        if monotonic
            && (is_terminating(pod)
                || !is_running_and_ready(pod)
                || !pods::is_available(pod, min_ready, now))
        {
            tracing::debug!(pod = %pod_name(pod), "OrderedReady: waiting for the pod to be running, ready and available");
            return Ok(true);
        }
        let claims_ok = self.claims_up_to_date(set, pod, false);
        if identity_matches(set, pod) && storage_matches(set, pod) && claims_ok {
            return Ok(false);
        }
        self.update_pod(set, pod).await?;
        Ok(false)
    }

    /// One pod beyond the replicas (upstream's `processCondemned`): deleted from the highest
    /// ordinal, one at a time and only when the others are healthy unless Parallel.
    async fn process_condemned(
        &self,
        key: &str,
        set: &StatefulSet,
        monotonic: bool,
        pod: &Pod,
        first_unavailable: Option<&str>,
        now: Timestamp,
    ) -> anyhow::Result<bool> {
        if is_terminating(pod) {
            return Ok(monotonic);
        }
        let first = first_unavailable == Some(pod_name(pod));
        let min_ready = min_ready_seconds(set);
        if monotonic
            && !first
            && (!is_running_and_ready(pod) || !pods::is_available(pod, min_ready, now))
        {
            tracing::debug!(pod = ?first_unavailable, "OrderedReady: waiting for a pod before scaling down");
            return Ok(true);
        }
        tracing::info!(pod = %pod_name(pod), statefulset = %name_of(set), "deleting a pod to scale down");
        self.delete_pod(key, set, pod).await?;
        Ok(true)
    }

    /// Replaces pods not at the update revision, from the highest ordinal down to the
    /// partition: one at a time, each after the ones above are available again; with
    /// maxUnavailable, up to that many unavailable at once.
    async fn rolling_update(
        &self,
        key: &str,
        set: &StatefulSet,
        slots: &[Slot],
        status: &mut SetStatus,
        now: Timestamp,
    ) -> anyhow::Result<()> {
        let min_ready = min_ready_seconds(set);
        let ru = rolling_update(set);
        let partition = ru.and_then(|r| r.partition).unwrap_or(0).max(0) as usize;
        let update = status.update_revision.clone();
        let outdated = |p: &Pod| revision_of(p) != Some(update.as_str()) && !is_terminating(p);
        if let Some(max) = ru.and_then(|r| r.max_unavailable.as_ref()) {
            let max = max_unavailable(max, slots.len());
            let unavailable = slots
                .iter()
                .filter(|s| is_unavailable(s.pod(), min_ready, now))
                .count();
            let mut budget = max.saturating_sub(unavailable);
            for slot in slots.iter().skip(partition).rev() {
                if budget == 0 {
                    break;
                }
                if let Slot::Live(p) = slot
                    && outdated(p)
                {
                    self.delete_pod(key, set, p).await?;
                    status.counts.current -= 1;
                    budget -= 1;
                }
            }
            return Ok(());
        }
        for slot in slots.iter().skip(partition).rev() {
            let pod = slot.pod();
            if let Slot::Live(p) = slot
                && outdated(p)
            {
                tracing::info!(pod = %pod_name(p), revision = %update, "deleting a pod to update it");
                self.delete_pod(key, set, p).await?;
                status.counts.current -= 1;
                return Ok(());
            }
            if is_unavailable(pod, min_ready, now) {
                tracing::debug!(pod = %pod_name(pod), "rolling update: waiting for the pod");
                return Ok(());
            }
        }
        Ok(())
    }

    fn record_pod(&self, set: &StatefulSet, verb: &str, pod: &str, error: Option<&str>) {
        let title = format!("{}{}", verb[..1].to_uppercase(), &verb[1..]);
        let set_name = name_of(set);
        match error {
            None => self.recorder.record(
                set,
                false,
                &format!("Successful{title}"),
                format!("{verb} Pod {pod} in StatefulSet {set_name} successful"),
            ),
            Some(e) => self.recorder.record(
                set,
                true,
                &format!("Failed{title}"),
                format!("{verb} Pod {pod} in StatefulSet {set_name} failed error: {e}"),
            ),
        }
    }

    /// Creates the pod's claims, then the pod, then fixes the claims' owners.
    async fn create_pod(&self, key: &str, set: &StatefulSet, pod: &Pod) -> anyhow::Result<()> {
        let name = pod_name(pod).to_string();
        let ordinal = ordinal_of(pod).unwrap_or_default();
        if let Err(e) = self.create_claims(set, &name, ordinal).await {
            self.record_pod(set, "create", &name, Some(&format!("{e:#}")));
            return Err(e);
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace_of(set));
        self.expectations.raise(key, 1, []);
        match api.create(&PostParams::default(), pod).await {
            Ok(created) => {
                tracing::info!(pod = %name, statefulset = %name_of(set), "created a pod");
                if let Err(e) = self.fix_claims(set, &created, false).await {
                    self.record_pod(set, "update", &name, Some(&format!("{e:#}")));
                    return Err(e);
                }
                self.record_pod(set, "create", &name, None);
                Ok(())
            }
            Err(e) => {
                self.expectations.creation_observed(key);
                // An existing pod of that name is no news (upstream records nothing).
                if !matches!(&e, kube::Error::Api(s) if s.code == 409) {
                    self.record_pod(set, "create", &name, Some(&e.to_string()));
                }
                Err(e).with_context(|| format!("creating pod {name}"))
            }
        }
    }

    /// Deletes a pod (only that pod: a uid precondition spares a successor of that name).
    async fn delete_pod(&self, key: &str, set: &StatefulSet, pod: &Pod) -> anyhow::Result<()> {
        let name = pod_name(pod).to_string();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace_of(set));
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        self.expectations.raise(key, 0, [uid.clone()]);
        match api.delete(&name, &dp).await {
            Ok(_) => {
                self.record_pod(set, "delete", &name, None);
                Ok(())
            }
            // Already gone, or replaced: nothing left to delete.
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {
                self.expectations.deletion_observed(key, &uid);
                Ok(())
            }
            Err(e) => {
                self.expectations.deletion_observed(key, &uid);
                self.record_pod(set, "delete", &name, Some(&e.to_string()));
                Err(e).with_context(|| format!("deleting pod {name}"))
            }
        }
    }

    /// Creates the claims of `ordinal` that do not exist.
    async fn create_claims(
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
    fn claim_is_stale(&self, set: &StatefulSet, pod: &Pod) -> bool {
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

    fn claims_up_to_date(&self, set: &StatefulSet, pod: &Pod, scaled_down: bool) -> bool {
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
    async fn fix_claims(
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

    /// Restores a pod's identity labels and claims (its volumes cannot change).
    async fn update_pod(&self, set: &StatefulSet, pod: &Pod) -> anyhow::Result<()> {
        let name = pod_name(pod).to_string();
        let ordinal = ordinal_of(pod).unwrap_or_default();
        if !storage_matches(set, pod) {
            // Volumes are immutable: only the missing claims can be made.
            tracing::warn!(pod = %name, "pod does not mount its StatefulSet claims");
            self.create_claims(set, &name, ordinal).await?;
        }
        self.fix_claims(set, pod, false).await?;
        if identity_matches(set, pod) {
            return Ok(());
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace_of(set));
        let patch = json!({"metadata": {"labels": {
            POD_NAME_LABEL: name,
            POD_INDEX_LABEL: ordinal.to_string(),
        }}});
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => {
                self.record_pod(set, "update", &name, None);
                Ok(())
            }
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => {
                self.record_pod(set, "update", &name, Some(&e.to_string()));
                Err(e).with_context(|| format!("updating pod {name}"))
            }
        }
    }

    async fn write_status(&self, set: &StatefulSet, s: &SetStatus) -> anyhow::Result<()> {
        let want = json!({
            "observedGeneration": set.metadata.generation,
            "replicas": s.counts.replicas,
            "readyReplicas": s.counts.ready,
            "currentReplicas": s.counts.current,
            "updatedReplicas": s.counts.updated,
            "availableReplicas": s.counts.available,
            "currentRevision": s.current_revision,
            "updateRevision": s.update_revision,
            "collisionCount": s.collision_count,
        });
        let have = serde_json::to_value(&set.status).unwrap_or_default();
        let changed = want
            .as_object()
            .into_iter()
            .flatten()
            .any(|(k, v)| have.get(k).unwrap_or(&json!(0)) != v);
        if !changed {
            return Ok(());
        }
        let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), namespace_of(set));
        match api
            .patch_status(
                name_of(set),
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": want })),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e).context("updating StatefulSet status"),
        }
    }

    /// Deletes the oldest revisions beyond revisionHistoryLimit, never the current or update
    /// revision nor one a pod still runs.
    async fn truncate_history(
        &self,
        set: &StatefulSet,
        owned: &[Arc<ControllerRevision>],
        pods: &[Arc<Pod>],
        status: &SetStatus,
    ) -> anyhow::Result<()> {
        let limit = set
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(10);
        if limit < 0 {
            return Ok(());
        }
        let mut live: HashSet<&str> = pods.iter().filter_map(|p| revision_of(p)).collect();
        live.insert(&status.current_revision);
        live.insert(&status.update_revision);
        let api: Api<ControllerRevision> = Api::namespaced(self.client.clone(), namespace_of(set));
        history::truncate(
            &api,
            owned,
            |r| live.contains(r.metadata.name.as_deref().unwrap_or_default()),
            limit as usize,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
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
}
