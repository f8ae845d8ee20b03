//! The DaemonSet controller: one pod on every node that should run it (node selector, node
//! affinity, taints the pods do not tolerate), placed by the scheduler through a node
//! affinity on the node's name, as Kubernetes does since 1.12; RollingUpdate (maxUnavailable)
//! and OnDelete; ControllerRevisions for `kubectl rollout history/undo`; status counts for
//! `kubectl rollout status`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{
    Node, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodTemplateSpec, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use crate::{deployment, history, pods};
use client_go::events::Recorder;
use client_go::expectations::Expectations;
use client_go::informer::{Change, Informer, controller_of, key_of};
use client_go::queue::{WorkQueue, run_workers};
use common::scheduling;

pub use crate::history::REVISION_HASH;
const BURST: usize = 250;

pub struct DaemonSetController {
    client: Client,
    daemonsets: Informer<DaemonSet>,
    nodes: Informer<Node>,
    pods: Informer<Pod>,
    revisions: Informer<ControllerRevision>,
    queue: Arc<WorkQueue>,
    expectations: Expectations,
    recorder: Recorder,
}

/// The tolerations Kubernetes adds to every daemon pod, so node trouble does not evict it.
fn daemon_tolerations(host_network: bool) -> Vec<Toleration> {
    let t = |key: &str, effect: &str| Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Default::default()
    };
    let mut v = vec![
        t("node.kubernetes.io/not-ready", "NoExecute"),
        t("node.kubernetes.io/unreachable", "NoExecute"),
        t("node.kubernetes.io/disk-pressure", "NoSchedule"),
        t("node.kubernetes.io/memory-pressure", "NoSchedule"),
        t("node.kubernetes.io/pid-pressure", "NoSchedule"),
        t("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if host_network {
        v.push(t("node.kubernetes.io/network-unavailable", "NoSchedule"));
    }
    v
}

/// The pod a DaemonSet runs on `node`: its template, pinned to the node by a required node
/// affinity on `metadata.name` (no pin for `None`: the pod as any node would judge it), with
/// the daemon tolerations.
pub fn pod_for_node(
    ds: &DaemonSet,
    template: &PodTemplateSpec,
    hash: &str,
    node: Option<&str>,
) -> Pod {
    let name = ds.metadata.name.clone().unwrap_or_default();
    let owner = pods::controller_ref("apps/v1", "DaemonSet", &ds.metadata);
    let mut pod = pods::from_template(template, &format!("{name}-"), owner);
    pod.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(REVISION_HASH.into(), hash.into());
    let spec = pod.spec.get_or_insert_with(Default::default);
    if let Some(node) = node {
        let pin = NodeSelectorRequirement {
            key: "metadata.name".into(),
            operator: "In".into(),
            values: Some(vec![node.to_string()]),
        };
        let affinity = spec.affinity.get_or_insert_with(Default::default);
        let na = affinity.node_affinity.get_or_insert_with(Default::default);
        let required = na
            .required_during_scheduling_ignored_during_execution
            .get_or_insert_with(Default::default);
        if required.node_selector_terms.is_empty() {
            required
                .node_selector_terms
                .push(NodeSelectorTerm::default());
        }
        for term in &mut required.node_selector_terms {
            term.match_fields = Some(vec![pin.clone()]);
        }
    }
    let host_network = spec.host_network.unwrap_or(false);
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for t in daemon_tolerations(host_network) {
        if !tolerations
            .iter()
            .any(|x| x.key == t.key && x.effect == t.effect)
        {
            tolerations.push(t);
        }
    }
    pod
}

/// The node a daemon pod is for: its binding, or the name its node affinity pins.
fn target_node(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.as_ref().filter(|n| !n.is_empty()) {
        return Some(n.clone());
    }
    spec.affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|r| r.key == "metadata.name" && r.operator == "In")
        .and_then(|r| r.values.as_ref()?.first().cloned())
}

/// Whether a DaemonSet's pod should run on `node` (selector, affinity, taints).
fn should_run(template_pod: &Pod, node: &Node) -> bool {
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let name = node.metadata.name.as_deref().unwrap_or_default();
    if !scheduling::node_matches(template_pod, &labels, name) {
        return false;
    }
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default();
    let tolerations = template_pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default();
    scheduling::untolerated(taints, tolerations).is_none()
}

fn max_unavailable(ds: &DaemonSet, desired: usize) -> usize {
    let v = ds
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.rolling_update.as_ref())
        .and_then(|r| r.max_unavailable.clone())
        .unwrap_or(IntOrString::Int(1));
    let n = match v {
        IntOrString::Int(n) => n.max(0) as usize,
        IntOrString::String(s) => {
            let pct: f64 = s.trim_end_matches('%').parse().unwrap_or(0.0);
            (pct * desired as f64 / 100.0).ceil() as usize
        }
    };
    n.max(1)
}

impl DaemonSetController {
    pub fn new(
        client: Client,
        daemonsets: Informer<DaemonSet>,
        nodes: Informer<Node>,
        pods: Informer<Pod>,
        revisions: Informer<ControllerRevision>,
    ) -> Arc<Self> {
        let c = Arc::new(DaemonSetController {
            recorder: Recorder::new(client.clone(), "daemonset-controller"),
            client,
            daemonsets,
            nodes,
            pods,
            revisions,
            queue: WorkQueue::new(),
            expectations: Expectations::default(),
        });
        let me = c.clone();
        c.daemonsets.on_change(move |ch: &Change<DaemonSet>| {
            if let Some(ds) = ch.object() {
                me.queue.add(key_of(ds.as_ref()));
            }
        });
        // A node joining, leaving or changing labels/taints may change every DaemonSet.
        let me = c.clone();
        c.nodes.on_change(move |_ch: &Change<Node>| {
            for ds in me.daemonsets.list() {
                me.queue.add(key_of(ds.as_ref()));
            }
        });
        let me = c.clone();
        c.pods.on_change(move |ch: &Change<Pod>| {
            let Some(pod) = ch.object() else { return };
            let Some(owner) = me.owner_of(pod) else {
                return;
            };
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            match (&ch.old, &ch.new) {
                (None, Some(_)) => me.expectations.creation_observed(&owner),
                (_, None) => me.expectations.deletion_observed(&owner, &uid),
                (Some(old), Some(new))
                    if new.metadata.deletion_timestamp.is_some()
                        && old.metadata.deletion_timestamp.is_none() =>
                {
                    me.expectations.deletion_observed(&owner, &uid)
                }
                _ => {}
            }
            me.queue.add(owner);
        });
        c
    }

    fn owner_of(&self, pod: &Pod) -> Option<String> {
        let r = controller_of(pod).filter(|r| r.kind == "DaemonSet")?;
        let ds = self
            .daemonsets
            .get(pod.metadata.namespace.as_deref(), &r.name)?;
        (ds.metadata.uid.as_deref() == Some(r.uid.as_str())).then(|| key_of(ds.as_ref()))
    }

    pub async fn run(self: Arc<Self>, workers: usize) {
        self.daemonsets.wait_synced().await;
        self.nodes.wait_synced().await;
        self.pods.wait_synced().await;
        self.revisions.wait_synced().await;
        let me = self.clone();
        run_workers("daemonset", self.queue.clone(), workers, move |key| {
            let me = me.clone();
            async move { me.sync(&key).await }
        })
        .await;
    }

    async fn sync(&self, key: &str) -> anyhow::Result<Option<Duration>> {
        let Some(ds) = self.daemonsets.get_key(key) else {
            self.expectations.forget(key);
            return Ok(None);
        };
        let ns = ds.metadata.namespace.clone().unwrap_or_default();
        let uid = ds.metadata.uid.clone().unwrap_or_default();
        let template = ds
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        let collision = ds.status.as_ref().and_then(|s| s.collision_count);
        let hash = deployment::template_hash(&template, collision);
        if ds.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        self.sync_revisions(&ds, &template, &hash).await?;

        let mut by_node: HashMap<String, Vec<Arc<Pod>>> = HashMap::new();
        for p in self.pods.list_namespace(&ns) {
            if controller_of(p.as_ref()).is_some_and(|r| r.uid == uid)
                && p.metadata.deletion_timestamp.is_none()
                && let Some(n) = target_node(&p)
            {
                by_node.entry(n).or_default().push(p);
            }
        }
        // A pod with the template as it would run anywhere, for the node checks.
        let probe = pod_for_node(&ds, &template, &hash, None);
        let nodes = self.nodes.list();
        let mut create_on = Vec::new();
        let mut delete = Vec::new();
        let mut desired = 0usize;
        for node in &nodes {
            let name = node.metadata.name.clone().unwrap_or_default();
            let here = by_node.remove(&name).unwrap_or_default();
            if should_run(&probe, node) {
                desired += 1;
                let (failed, mut alive): (Vec<_>, Vec<_>) = here.into_iter().partition(|p| {
                    p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed")
                });
                delete.extend(failed);
                if alive.is_empty() {
                    create_on.push(name);
                } else if alive.len() > 1 {
                    // Keep the oldest; the rest are duplicates.
                    alive.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
                    delete.extend(alive.drain(1..));
                }
            } else {
                delete.extend(here);
            }
        }
        // Pods pinned to nodes that no longer exist.
        for (_, rest) in by_node {
            delete.extend(rest);
        }
        if self.expectations.satisfied(key) {
            self.rolling_update(&ds, &hash, &nodes, desired, &mut delete);
            self.manage(key, &ds, &template, &hash, &create_on, &delete)
                .await?;
        }
        self.update_status(&ds, &hash, &probe, &nodes).await
    }

    /// Old-revision pods to replace now: unavailable ones first, then as many as
    /// maxUnavailable allows (OnDelete replaces none).
    fn rolling_update(
        &self,
        ds: &DaemonSet,
        hash: &str,
        nodes: &[Arc<Node>],
        desired: usize,
        delete: &mut Vec<Arc<Pod>>,
    ) {
        let strategy = ds
            .spec
            .as_ref()
            .and_then(|s| s.update_strategy.as_ref())
            .and_then(|u| u.type_.as_deref())
            .unwrap_or("RollingUpdate");
        if strategy != "RollingUpdate" {
            return;
        }
        let uid = ds.metadata.uid.clone().unwrap_or_default();
        let min_ready = ds
            .spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0);
        let now = Timestamp::now();
        let node_names: Vec<String> = nodes
            .iter()
            .filter_map(|n| n.metadata.name.clone())
            .collect();
        let ns = ds.metadata.namespace.as_deref().unwrap_or_default();
        let ours: Vec<Arc<Pod>> = self
            .pods
            .list_namespace(ns)
            .into_iter()
            .filter(|p| controller_of(p.as_ref()).is_some_and(|r| r.uid == uid))
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| target_node(p).is_some_and(|n| node_names.contains(&n)))
            .filter(|p| !delete.iter().any(|d| d.metadata.uid == p.metadata.uid))
            .collect();
        let unavailable = ours
            .iter()
            .filter(|p| !pods::is_available(p, min_ready, now))
            .count()
            + desired.saturating_sub(ours.len());
        let mut budget = max_unavailable(ds, desired).saturating_sub(unavailable);
        let old = |p: &Arc<Pod>| {
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(REVISION_HASH))
                != Some(&hash.to_string())
        };
        let (old_unavailable, old_available): (Vec<_>, Vec<_>) = ours
            .iter()
            .filter(|p| old(p))
            .partition(|p| !pods::is_available(p, min_ready, now));
        // Already unavailable: replacing them costs nothing.
        delete.extend(old_unavailable.into_iter().cloned());
        for p in old_available {
            if budget == 0 {
                break;
            }
            delete.push(p.clone());
            budget -= 1;
        }
    }

    async fn manage(
        &self,
        key: &str,
        ds: &DaemonSet,
        template: &PodTemplateSpec,
        hash: &str,
        create_on: &[String],
        delete: &[Arc<Pod>],
    ) -> anyhow::Result<()> {
        let ns = ds.metadata.namespace.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let create_on = &create_on[..create_on.len().min(BURST)];
        let delete = &delete[..delete.len().min(BURST)];
        self.expectations.expect(
            key,
            create_on.len() as i64,
            delete
                .iter()
                .map(|p| p.metadata.uid.clone().unwrap_or_default()),
        );
        let pp = PostParams::default();
        let results = futures::future::join_all(create_on.iter().map(|node| {
            let pod = pod_for_node(ds, template, hash, Some(node));
            let api = api.clone();
            let pp = pp.clone();
            async move { api.create(&pp, &pod).await }
        }))
        .await;
        let mut first_err = None;
        for r in results {
            match r {
                Ok(p) => self.recorder.record(
                    ds,
                    false,
                    "SuccessfulCreate",
                    format!("Created pod: {}", p.metadata.name.unwrap_or_default()),
                ),
                Err(e) => {
                    self.expectations.creation_observed(key);
                    first_err.get_or_insert(e);
                }
            }
        }
        let dp = DeleteParams::default();
        for p in delete {
            let name = p.metadata.name.clone().unwrap_or_default();
            match api.delete(&name, &dp).await {
                Ok(_) => self.recorder.record(
                    ds,
                    false,
                    "SuccessfulDelete",
                    format!("Deleted pod: {name}"),
                ),
                Err(e) => {
                    self.expectations
                        .deletion_observed(key, p.metadata.uid.as_deref().unwrap_or_default());
                    if !matches!(&e, kube::Error::Api(s) if s.code == 404) {
                        first_err.get_or_insert(e);
                    }
                }
            }
        }
        match first_err {
            Some(e) => Err(e).context("managing daemon pods"),
            None => Ok(()),
        }
    }

    /// One ControllerRevision per template (what `kubectl rollout history/undo ds` reads);
    /// the current one has the highest revision; old ones beyond revisionHistoryLimit go.
    async fn sync_revisions(
        &self,
        ds: &DaemonSet,
        template: &PodTemplateSpec,
        hash: &str,
    ) -> anyhow::Result<()> {
        let ns = ds.metadata.namespace.clone().unwrap_or_default();
        let uid = ds.metadata.uid.clone().unwrap_or_default();
        let name = ds.metadata.name.clone().unwrap_or_default();
        let api: Api<ControllerRevision> = Api::namespaced(self.client.clone(), &ns);
        let ours = history::owned(&self.revisions, &ns, &uid);
        let mut labels = ds
            .spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        labels.insert(REVISION_HASH.into(), hash.into());
        let want = ControllerRevision {
            metadata: ObjectMeta {
                name: Some(format!("{name}-{hash}")),
                namespace: Some(ns.clone()),
                labels: Some(labels),
                annotations: ds.metadata.annotations.clone().map(|mut a| {
                    a.remove("kubectl.kubernetes.io/last-applied-configuration");
                    a.remove("deprecated.daemonset.template.generation");
                    a
                }),
                owner_references: Some(vec![pods::controller_ref(
                    "apps/v1",
                    "DaemonSet",
                    &ds.metadata,
                )]),
                ..Default::default()
            },
            data: Some(RawExtension(history::template_patch(template))),
            revision: 0,
        };
        // The template's hash names its revision (a collision is left for the next sync).
        let current = |r: &ControllerRevision| history::hash_of(r) == Some(hash);
        history::make_newest(&api, &ours, &uid, current, want).await?;
        let limit = ds
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(10)
            .max(0) as usize;
        history::truncate(&api, &ours, current, limit).await
    }

    async fn update_status(
        &self,
        ds: &DaemonSet,
        hash: &str,
        probe: &Pod,
        nodes: &[Arc<Node>],
    ) -> anyhow::Result<Option<Duration>> {
        let uid = ds.metadata.uid.clone().unwrap_or_default();
        let ns = ds.metadata.namespace.clone().unwrap_or_default();
        let min_ready = ds
            .spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0);
        let now = Timestamp::now();
        let mut by_node: HashMap<String, Vec<Arc<Pod>>> = HashMap::new();
        for p in self.pods.list_namespace(&ns) {
            if controller_of(p.as_ref()).is_some_and(|r| r.uid == uid)
                && p.metadata.deletion_timestamp.is_none()
                && let Some(n) = target_node(&p)
            {
                by_node.entry(n).or_default().push(p);
            }
        }
        let (mut desired, mut current, mut misscheduled) = (0, 0, 0);
        let (mut ready, mut available, mut updated) = (0, 0, 0);
        let mut waiting_for_available = false;
        for node in nodes {
            let name = node.metadata.name.clone().unwrap_or_default();
            let here = by_node.get(&name);
            let scheduled = here.is_some_and(|p| {
                p.iter()
                    .any(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some())
            });
            if should_run(probe, node) {
                desired += 1;
                if scheduled {
                    current += 1;
                }
                if let Some(p) = here.and_then(|h| h.first()) {
                    if pods::is_ready(p) {
                        ready += 1;
                        if pods::is_available(p, min_ready, now) {
                            available += 1;
                        } else {
                            waiting_for_available = true;
                        }
                    }
                    if p.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(REVISION_HASH))
                        == Some(&hash.to_string())
                    {
                        updated += 1;
                    }
                }
            } else if scheduled {
                misscheduled += 1;
            }
        }
        let want = json!({
            "currentNumberScheduled": current,
            "desiredNumberScheduled": desired,
            "numberMisscheduled": misscheduled,
            "numberReady": ready,
            "numberAvailable": available,
            "numberUnavailable": desired - available,
            "updatedNumberScheduled": updated,
            "observedGeneration": ds.metadata.generation,
        });
        let have = serde_json::to_value(&ds.status).unwrap_or_default();
        let changed = want
            .as_object()
            .into_iter()
            .flatten()
            .any(|(k, v)| have.get(k).unwrap_or(&json!(0)) != v);
        if changed {
            let api: Api<DaemonSet> = Api::namespaced(self.client.clone(), &ns);
            match api
                .patch_status(
                    ds.metadata.name.as_deref().unwrap_or_default(),
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "status": want })),
                )
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => return Ok(None),
                Err(e) => return Err(e).context("updating DaemonSet status"),
            }
        }
        Ok(waiting_for_available.then(|| Duration::from_secs(min_ready.max(1) as u64)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemon_pods_are_pinned_and_tolerate_node_trouble() {
        let ds: DaemonSet = serde_json::from_value(json!({
            "metadata": {"name": "agent", "namespace": "kube-system", "uid": "u1"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                "template": {"metadata": {"labels": {"app": "agent"}},
                    "spec": {"containers": [{"name": "a", "image": "busybox"}],
                        "nodeSelector": {"role": "worker"}}}}
        }))
        .unwrap();
        let t = ds.spec.as_ref().unwrap().template.clone();
        let pod = pod_for_node(&ds, &t, "abc", Some("n1"));
        assert_eq!(target_node(&pod).as_deref(), Some("n1"));
        assert_eq!(pod.metadata.labels.as_ref().unwrap()[REVISION_HASH], "abc");
        let tolerations = pod.spec.as_ref().unwrap().tolerations.as_ref().unwrap();
        assert!(
            tolerations
                .iter()
                .any(|t| t.key.as_deref() == Some("node.kubernetes.io/unschedulable"))
        );
        let node = |labels: serde_json::Value, taint: Option<&str>| -> Node {
            serde_json::from_value(json!({"metadata": {"name": "n1", "labels": labels},
                "spec": {"taints": taint.map(|k| vec![json!({"key": k, "effect": "NoSchedule"})]).unwrap_or_default()}}))
            .unwrap()
        };
        let probe = pod_for_node(&ds, &t, "abc", None);
        assert!(should_run(&probe, &node(json!({"role": "worker"}), None)));
        assert!(!should_run(&probe, &node(json!({}), None)));
        assert!(!should_run(
            &probe,
            &node(json!({"role": "worker"}), Some("dedicated"))
        ));
        // Cordoned nodes still run daemons (the unschedulable taint is tolerated).
        assert!(should_run(
            &probe,
            &node(
                json!({"role": "worker"}),
                Some("node.kubernetes.io/unschedulable")
            )
        ));
    }
}
