//! The ReplicaSet and ReplicationController controller (Kubernetes runs one implementation
//! for both): keep exactly `replicas` active pods from the template, adopt matching orphans
//! and release pods that stop matching, scale down the least useful pods first, and report
//! replicas / fullyLabeledReplicas / readyReplicas / availableReplicas / observedGeneration.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::pods;
use client_go::controller_ref::{ControllerRefManager, owner_not_deleting};
use client_go::events::Recorder;
use client_go::expectations::Expectations;
use client_go::informer::{Change, Informer, controller_of, key_of};
use client_go::queue::WorkQueue;
use client_go::reconciler::{self, Action, Reconciler};

/// Most pods created or deleted in one sync (Kubernetes' burstReplicas).
const BURST: usize = 500;

/// What the controller needs of a ReplicaSet or a ReplicationController.
pub trait ReplicaOwner:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + k8s_openapi::Resource
    + Clone
    + Debug
    + DeserializeOwned
    + Serialize
    + Send
    + Sync
    + 'static
{
    fn replicas(&self) -> i32;
    /// The selector as a LabelSelector (an RC's map is its matchLabels).
    fn selector(&self) -> LabelSelector;
    fn template(&self) -> Option<&PodTemplateSpec>;
    fn min_ready_seconds(&self) -> i32;
    fn status_json(&self) -> serde_json::Value;
}

impl ReplicaOwner for ReplicaSet {
    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }
    fn selector(&self) -> LabelSelector {
        self.spec
            .as_ref()
            .map(|s| s.selector.clone())
            .unwrap_or_default()
    }
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref()?.template.as_ref()
    }
    fn min_ready_seconds(&self) -> i32 {
        self.spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0)
    }
    fn status_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.status).unwrap_or_default()
    }
}

impl ReplicaOwner for ReplicationController {
    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }
    fn selector(&self) -> LabelSelector {
        // An RC without a selector selects its template's labels (the API server defaults
        // it so; this is belt and braces).
        let sel = self.spec.as_ref().and_then(|s| s.selector.clone());
        let sel = sel.or_else(|| {
            self.template()
                .and_then(|t| t.metadata.as_ref())
                .and_then(|m| m.labels.clone())
        });
        LabelSelector {
            match_labels: sel,
            match_expressions: None,
        }
    }
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref()?.template.as_ref()
    }
    fn min_ready_seconds(&self) -> i32 {
        self.spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0)
    }
    fn status_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.status).unwrap_or_default()
    }
}

pub struct ReplicaSetController<K> {
    client: Client,
    owners: Informer<K>,
    pods: Informer<Pod>,
    queue: Arc<WorkQueue>,
    expectations: Expectations,
    recorder: Recorder,
}

impl<K: ReplicaOwner> ReplicaSetController<K> {
    pub fn new(client: Client, owners: Informer<K>, pods: Informer<Pod>) -> Arc<Self> {
        let component = if K::KIND == "ReplicaSet" {
            "replicaset-controller"
        } else {
            "replication-controller"
        };
        let c = Arc::new(ReplicaSetController {
            recorder: Recorder::new(client.clone(), component),
            client,
            owners,
            pods,
            queue: WorkQueue::new(),
            expectations: Expectations::default(),
        });
        let me = c.clone();
        c.owners.on_change(move |ch: &Change<K>| {
            if let Some(o) = ch.object() {
                if ch.new.is_none() {
                    me.expectations.forget(&key_of(o.as_ref()));
                }
                me.queue.add(key_of(o.as_ref()));
            }
        });
        let me = c.clone();
        c.pods.on_change(move |ch: &Change<Pod>| me.pod_changed(ch));
        c
    }

    /// The owner (of this kind) a pod's controller reference names, if it is in the cache
    /// with that uid.
    fn owner_of(&self, pod: &Pod) -> Option<String> {
        let r = controller_of(pod)?;
        if r.kind != K::KIND {
            return None;
        }
        let ns = pod.metadata.namespace.as_deref();
        let owner = self.owners.get(ns, &r.name)?;
        (owner.meta().uid.as_deref() == Some(r.uid.as_str())).then(|| key_of(owner.as_ref()))
    }

    /// Owners in the pod's namespace whose selector matches it (adoption candidates).
    fn matching_owners(&self, pod: &Pod) -> Vec<String> {
        let labels = pods::labels(&pod.metadata);
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        self.owners
            .list_namespace(ns)
            .iter()
            .filter(|o| pods::selects_some(&o.selector(), &labels))
            .map(|o| key_of(o.as_ref()))
            .collect()
    }

    fn pod_changed(&self, ch: &Change<Pod>) {
        match (&ch.old, &ch.new) {
            (None, Some(pod)) => {
                if pod.metadata.deletion_timestamp.is_some() {
                    return self.pod_deleted(pod);
                }
                match self.owner_of(pod) {
                    Some(owner) => {
                        self.expectations.creation_observed(&owner);
                        self.queue.add(owner);
                    }
                    None if controller_of(pod.as_ref()).is_none() => {
                        for o in self.matching_owners(pod) {
                            self.queue.add(o);
                        }
                    }
                    None => {}
                }
            }
            (Some(old), Some(new)) => {
                if new.metadata.deletion_timestamp.is_some()
                    && old.metadata.deletion_timestamp.is_none()
                {
                    // Being deleted counts as deleted; the final removal comes later.
                    return self.pod_deleted(new);
                }
                let old_owner = self.owner_of(old);
                let new_owner = self.owner_of(new);
                if old_owner != new_owner
                    && let Some(o) = old_owner
                {
                    self.queue.add(o);
                }
                match new_owner {
                    Some(o) => self.queue.add(o),
                    None if controller_of(new.as_ref()).is_none() => {
                        for o in self.matching_owners(new) {
                            self.queue.add(o);
                        }
                    }
                    None => {}
                }
            }
            (Some(old), None) => self.pod_deleted(old),
            (None, None) => {}
        }
    }

    fn pod_deleted(&self, pod: &Pod) {
        if let Some(owner) = self.owner_of(pod) {
            self.expectations
                .deletion_observed(&owner, pod.metadata.uid.as_deref().unwrap_or_default());
            self.queue.add(owner);
        }
    }

    pub async fn run(self: Arc<Self>, workers: usize) {
        reconciler::run(&self, &self.queue, &[&self.owners, &self.pods], workers).await;
    }
}

impl<K: ReplicaOwner> Reconciler for ReplicaSetController<K> {
    const NAME: &'static str = K::KIND;

    async fn reconcile(self: &Arc<Self>, key: &str) -> anyhow::Result<Action> {
        let Some(owner) = self.owners.get_key(key) else {
            self.expectations.forget(key);
            return Ok(Action::Done);
        };
        let ns = owner.meta().namespace.clone().unwrap_or_default();
        let pods = self.claim_pods(&owner, &ns).await?;
        let active: Vec<&Arc<Pod>> = pods.iter().filter(|p| pods::is_active(p)).collect();
        let deleting = owner.meta().deletion_timestamp.is_some();
        let managed = if self.expectations.satisfied(key) && !deleting {
            self.manage_replicas(key, &owner, &ns, &active).await
        } else {
            Ok(())
        };
        // The status says why replicas are missing (ReplicaFailure) before the failure is
        // retried.
        let failure = managed.as_ref().err().map(|e| e.to_string());
        let again = self
            .update_status(&owner, &ns, &active, failure.as_deref())
            .await?;
        managed.map_err(anyhow::Error::from)?;
        Ok(again.into())
    }
}

impl<K: ReplicaOwner> ReplicaSetController<K> {
    /// The pods this owner controls after adoption and release (Kubernetes'
    /// ControllerRefManager): matching orphans are adopted, owned pods that no longer match
    /// are released. An owner being deleted adopts nothing.
    async fn claim_pods(&self, owner: &Arc<K>, ns: &str) -> anyhow::Result<Vec<Arc<Pod>>> {
        let selector = owner.selector();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let owners: Api<K> = Api::namespaced(self.client.clone(), ns);
        let name = owner.meta().name.clone().unwrap_or_default();
        let uid = owner.meta().uid.clone().unwrap_or_default();
        let r = pods::controller_ref(K::API_VERSION, K::KIND, owner.meta());
        ControllerRefManager::new(owner.meta(), r)
            .claim(
                &api,
                self.pods.list_namespace(ns),
                |p| pods::selects_some(&selector, &pods::labels(&p.metadata)),
                || owner_not_deleting(&owners, &name, &uid),
            )
            .await
    }

    async fn manage_replicas(
        &self,
        key: &str,
        owner: &Arc<K>,
        ns: &str,
        active: &[&Arc<Pod>],
    ) -> Result<(), ManageError> {
        let want = owner.replicas().max(0) as usize;
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let name = owner.meta().name.clone().unwrap_or_default();
        if active.len() < want {
            let Some(template) = owner.template() else {
                return Ok(());
            };
            let n = (want - active.len()).min(BURST);
            self.expectations.expect(key, n as i64, []);
            let r = pods::controller_ref(K::API_VERSION, K::KIND, owner.meta());
            let pod = pods::from_template(template, &format!("{name}-"), r);
            // Slow start (1, 2, 4, ...): a failing create (quota, invalid template) fails
            // one pod, not hundreds.
            let (mut done, mut batch) = (0, 1);
            let mut failure = None;
            while done < n && failure.is_none() {
                let size = batch.min(n - done);
                let pp = PostParams::default();
                let results =
                    futures::future::join_all((0..size).map(|_| api.create(&pp, &pod))).await;
                for r in results {
                    match r {
                        Ok(p) => self.recorder.record(
                            owner.as_ref(),
                            false,
                            "SuccessfulCreate",
                            format!("Created pod: {}", p.metadata.name.unwrap_or_default()),
                        ),
                        // A terminating namespace refuses every pod: nothing to report.
                        Err(e) if namespace_terminating(&e) => {
                            self.expectations.creation_observed(key);
                        }
                        Err(e) => {
                            self.expectations.creation_observed(key);
                            self.recorder.record(
                                owner.as_ref(),
                                true,
                                "FailedCreate",
                                format!("Error creating: {}", api_message(&e)),
                            );
                            failure.get_or_insert(e);
                        }
                    }
                }
                done += size;
                batch *= 2;
            }
            // Pods never attempted will never be observed.
            for _ in done..n {
                self.expectations.creation_observed(key);
            }
            if let Some(e) = failure {
                return Err(ManageError::Create(api_message(&e)));
            }
        } else if active.len() > want {
            let n = (active.len() - want).min(BURST);
            let mut ranked: Vec<&Arc<Pod>> = active.to_vec();
            ranked.sort_by(|a, b| pods::deletion_order(a, b));
            let victims = &ranked[..n];
            self.expectations.expect(
                key,
                0,
                victims
                    .iter()
                    .map(|p| p.metadata.uid.clone().unwrap_or_default()),
            );
            let dp = DeleteParams::default();
            let mut failure = None;
            let results = futures::future::join_all(
                victims
                    .iter()
                    .map(|p| api.delete(p.metadata.name.as_deref().unwrap_or_default(), &dp)),
            )
            .await;
            for (pod, r) in victims.iter().zip(results) {
                let pod_name = pod.metadata.name.clone().unwrap_or_default();
                match r {
                    Ok(_) => self.recorder.record(
                        owner.as_ref(),
                        false,
                        "SuccessfulDelete",
                        format!("Deleted pod: {pod_name}"),
                    ),
                    Err(kube::Error::Api(e)) if e.code == 404 => self
                        .expectations
                        .deletion_observed(key, pod.metadata.uid.as_deref().unwrap_or_default()),
                    Err(e) => {
                        self.expectations.deletion_observed(
                            key,
                            pod.metadata.uid.as_deref().unwrap_or_default(),
                        );
                        self.recorder.record(
                            owner.as_ref(),
                            true,
                            "FailedDelete",
                            format!("Error deleting: {}", api_message(&e)),
                        );
                        failure.get_or_insert(ManageError::Delete(api_message(&e)));
                    }
                }
            }
            if let Some(e) = failure {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Writes status when it changed; asks to be run again when a ready pod will become
    /// available after minReadySeconds.
    async fn update_status(
        &self,
        owner: &Arc<K>,
        ns: &str,
        active: &[&Arc<Pod>],
        failure: Option<&str>,
    ) -> anyhow::Result<Option<Duration>> {
        let now = Timestamp::now();
        let min_ready = owner.min_ready_seconds();
        let template_labels: BTreeMap<String, String> = owner
            .template()
            .and_then(|t| t.metadata.as_ref())
            .map(pods::labels)
            .unwrap_or_default();
        let fully_labeled = active
            .iter()
            .filter(|p| {
                let l = pods::labels(&p.metadata);
                template_labels.iter().all(|(k, v)| l.get(k) == Some(v))
            })
            .count();
        let ready = active.iter().filter(|p| pods::is_ready(p)).count();
        let available = active
            .iter()
            .filter(|p| pods::is_available(p, min_ready, now))
            .count();
        let mut status = owner.status_json();
        if !status.is_object() {
            status = json!({});
        }
        let mut want = status.clone();
        want["replicas"] = json!(active.len());
        want["fullyLabeledReplicas"] = json!(fully_labeled);
        want["readyReplicas"] = json!(ready);
        want["availableReplicas"] = json!(available);
        want["observedGeneration"] = json!(owner.meta().generation);
        set_replica_failure(
            &mut want,
            failure,
            active.len() as i64 - i64::from(owner.replicas()),
        );
        // Kubernetes omits zero counts (omitempty).
        if let Some(m) = want.as_object_mut() {
            m.retain(|_, v| v != &json!(0));
            m.entry("replicas").or_insert(json!(0));
        }
        if want != status {
            let api: Api<K> = Api::namespaced(self.client.clone(), ns);
            let name = owner.meta().name.clone().unwrap_or_default();
            match api
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": want_patch(&status, &want)})),
                )
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => return Ok(None),
                Err(e) => return Err(e).context("updating status"),
            }
        }
        if min_ready > 0 && ready > available {
            return Ok(Some(Duration::from_secs(min_ready as u64)));
        }
        Ok(None)
    }
}

/// Why creating or deleting pods failed; the message is the API server's (upstream's
/// manageReplicasErr, which the ReplicaFailure condition quotes).
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    #[error("{0}")]
    Create(String),
    #[error("unable to delete pods: {0}")]
    Delete(String),
}

/// An error as the API server worded it.
fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if !s.message.is_empty() => s.message.clone(),
        e => e.to_string(),
    }
}

/// Whether the API server refused a create because the namespace is being deleted.
fn namespace_terminating(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s
        .details
        .as_ref()
        .is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating")))
}

/// Upstream's calculateStatus for the ReplicaFailure condition: set (True, FailedCreate or
/// FailedDelete by which way the count was off) when managing replicas failed and it is not
/// already there; removed once a sync manages them without error.
fn set_replica_failure(status: &mut serde_json::Value, failure: Option<&str>, diff: i64) {
    let conditions: Vec<serde_json::Value> = status
        .get("conditions")
        .and_then(serde_json::Value::as_array)
        .cloned()
        .unwrap_or_default();
    let present = conditions
        .iter()
        .any(|c| c.get("type").and_then(serde_json::Value::as_str) == Some("ReplicaFailure"));
    let conditions = match (failure, present) {
        (Some(message), false) => {
            let reason = match diff {
                d if d < 0 => "FailedCreate",
                d if d > 0 => "FailedDelete",
                _ => "",
            };
            let mut cond = json!({
                "type": "ReplicaFailure",
                "status": "True",
                "lastTransitionTime": pods::now(),
                "message": message,
            });
            if !reason.is_empty() {
                cond["reason"] = json!(reason);
            }
            let mut c = conditions;
            c.push(cond);
            c
        }
        (None, true) => conditions
            .into_iter()
            .filter(|c| c.get("type").and_then(serde_json::Value::as_str) != Some("ReplicaFailure"))
            .collect(),
        _ => return,
    };
    if let Some(m) = status.as_object_mut() {
        if conditions.is_empty() {
            m.remove("conditions");
        } else {
            m.insert("conditions".into(), json!(conditions));
        }
    }
}

/// A merge patch from `old` to `new` at the top level (removed keys become null).
fn want_patch(old: &serde_json::Value, new: &serde_json::Value) -> serde_json::Value {
    let mut patch = new.clone();
    if let (Some(o), Some(p)) = (old.as_object(), patch.as_object_mut()) {
        for k in o.keys() {
            if !p.contains_key(k) {
                p.insert(k.clone(), serde_json::Value::Null);
            }
        }
    }
    patch
}
