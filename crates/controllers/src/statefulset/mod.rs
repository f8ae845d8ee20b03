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
use client_go::queue::WorkQueue;
use client_go::reconciler::{self, Action, Reconciler};

mod claims;
mod revisions;
#[cfg(test)]
mod tests;

use claims::*;

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
        reconciler::run(
            &self,
            &self.queue,
            &[&self.sets, &self.pods, &self.claims, &self.revisions],
            workers,
        )
        .await;
    }
}

impl Reconciler for StatefulSetController {
    const NAME: &'static str = "statefulset";

    async fn reconcile(self: &Arc<Self>, key: &str) -> anyhow::Result<Action> {
        let Some(set) = self.sets.get_key(key) else {
            self.expectations.forget(key);
            return Ok(Action::Done);
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
        Ok(again.then(|| Duration::from_secs(min_ready as u64)).into())
    }
}

impl StatefulSetController {
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
}
