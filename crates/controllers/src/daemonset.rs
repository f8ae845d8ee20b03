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
use client_go::queue::WorkQueue;
use client_go::reconciler::{self, Action, Reconciler};
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

/// The tolerations Kubernetes adds to every daemon pod (upstream's
/// AddOrUpdateDaemonPodTolerations): not-ready and unreachable NoExecute for good (no
/// `tolerationSeconds`), so node trouble never evicts a daemon; the condition taints'
/// NoSchedule, so a cordoned or pressured node still gets its daemons. A not-ready or
/// unreachable NoSchedule taint is not tolerated: such a node gets no new daemon pod.
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

/// Adds `want` to `tolerations` as upstream's AddOrUpdateTolerationInPodSpec does: a
/// toleration with the same key, operator, value and effect is replaced by it (so a
/// template's `tolerationSeconds` on not-ready:NoExecute does not survive), unless one is
/// already exactly `want`.
fn add_or_update_toleration(tolerations: &mut Vec<Toleration>, want: Toleration) {
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    let same = |t: &Toleration| {
        s(&t.key) == s(&want.key)
            && s(&t.operator) == s(&want.operator)
            && s(&t.value) == s(&want.value)
            && s(&t.effect) == s(&want.effect)
    };
    let exact = |t: &Toleration| same(t) && t.toleration_seconds == want.toleration_seconds;
    if tolerations.iter().any(exact) {
        return;
    }
    let mut replaced = false;
    for t in tolerations.iter_mut().filter(|t| same(t)) {
        *t = want.clone();
        replaced = true;
    }
    if !replaced {
        tolerations.push(want);
    }
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
        add_or_update_toleration(tolerations, t);
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

/// Upstream's NodeShouldRunDaemonPod for the daemon pod as any node would judge it (the
/// template with the daemon tolerations): `(should_run, should_continue_running)`.
/// `should_run`: a pod is to be created on `node` when it has none — the template's
/// nodeName, nodeSelector and required node affinity admit it and every NoSchedule and
/// NoExecute taint is tolerated. `should_continue_running`: a pod already there stays —
/// the same, except that only untolerated NoExecute taints count, so a node that turned
/// NotReady (not-ready:NoSchedule) keeps its daemons.
fn node_should_run_daemon_pod(template_pod: &Pod, node: &Node) -> (bool, bool) {
    let name = node.metadata.name.as_deref().unwrap_or_default();
    let spec = template_pod.spec.as_ref();
    if let Some(pinned) = spec
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
        && pinned != name
    {
        return (false, false);
    }
    let labels = node.metadata.labels.clone().unwrap_or_default();
    if !scheduling::node_matches(template_pod, &labels, name) {
        return (false, false);
    }
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default();
    let tolerations = spec
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default();
    if scheduling::untolerated(taints, tolerations).is_none() {
        return (true, true);
    }
    let untolerated_no_execute = taints.iter().any(|taint| {
        taint.effect == "NoExecute" && !tolerations.iter().any(|t| scheduling::tolerates(t, taint))
    });
    (false, !untolerated_no_execute)
}

/// Upstream's podByCreationTimestampAndPhase: bound pods first, then the oldest, then by
/// name; the first is the one a node keeps and the one its status counts.
fn sort_daemon_pods(pods: &mut [Arc<Pod>]) {
    pods.sort_by(|a, b| {
        let bound = |p: &Pod| {
            p.spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_some_and(|n| !n.is_empty())
        };
        let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
        bound(b)
            .cmp(&bound(a))
            .then_with(|| created(a).cmp(&created(b)))
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
}

fn phase(p: &Pod) -> Option<&str> {
    p.status.as_ref().and_then(|s| s.phase.as_deref())
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
        reconciler::run(
            &self,
            &self.queue,
            &[&self.daemonsets, &self.nodes, &self.pods, &self.revisions],
            workers,
        )
        .await;
    }
}

impl Reconciler for DaemonSetController {
    const NAME: &'static str = "daemonset";

    async fn reconcile(self: &Arc<Self>, key: &str) -> anyhow::Result<Action> {
        let Some(ds) = self.daemonsets.get_key(key) else {
            self.expectations.forget(key);
            return Ok(Action::Done);
        };
        let template = ds
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        let collision = ds.status.as_ref().and_then(|s| s.collision_count);
        let hash = deployment::template_hash(&template, collision);
        if ds.metadata.deletion_timestamp.is_some() {
            return Ok(Action::Done);
        }
        self.sync_revisions(&ds, &template, &hash).await?;

        // A pod with the template as it would run anywhere, for the node checks.
        let probe = pod_for_node(&ds, &template, &hash, None);
        let nodes = self.nodes.list();
        if self.expectations.satisfied(key) {
            let (create_on, mut delete, desired) = self.plan(&ds, &probe, &nodes);
            self.rolling_update(&ds, &hash, &nodes, desired, &mut delete);
            self.manage(key, &ds, &template, &hash, &create_on, &delete)
                .await?;
        }
        Ok(self.update_status(&ds, &hash, &probe, &nodes).await?.into())
    }
}

impl DaemonSetController {
    /// The DaemonSet's pods by the node they are for, terminating ones included (as
    /// upstream's getNodesToDaemonPods: a node whose pod is still terminating gets no new
    /// one until it is gone).
    fn daemon_pods_by_node(&self, ds: &DaemonSet) -> HashMap<String, Vec<Arc<Pod>>> {
        let ns = ds.metadata.namespace.as_deref().unwrap_or_default();
        let uid = ds.metadata.uid.as_deref().unwrap_or_default();
        let mut by_node: HashMap<String, Vec<Arc<Pod>>> = HashMap::new();
        for p in self.pods.list_namespace(ns) {
            if controller_of(p.as_ref()).is_some_and(|r| r.uid == uid)
                && let Some(n) = target_node(&p)
            {
                by_node.entry(n).or_default().push(p);
            }
        }
        by_node
    }

    /// What each node needs (upstream's podsShouldBeOnNode): the nodes to create a pod on,
    /// the pods to delete, and how many nodes should run the daemon.
    fn plan(
        &self,
        ds: &DaemonSet,
        probe: &Pod,
        nodes: &[Arc<Node>],
    ) -> (Vec<String>, Vec<Arc<Pod>>, usize) {
        let ns = ds.metadata.namespace.as_deref().unwrap_or_default();
        let mut by_node = self.daemon_pods_by_node(ds);
        let mut create_on = Vec::new();
        let mut delete = Vec::new();
        let mut desired = 0usize;
        let live = |p: &Arc<Pod>| p.metadata.deletion_timestamp.is_none();
        for node in nodes {
            let name = node.metadata.name.clone().unwrap_or_default();
            let here = by_node.remove(&name).unwrap_or_default();
            let (should_run, should_continue_running) = node_should_run_daemon_pod(probe, node);
            if should_run {
                desired += 1;
            }
            if should_run && here.is_empty() {
                create_on.push(name);
            } else if should_continue_running {
                // Finished pods go (their replacement comes with the sync their deletion
                // causes); of several running pods the first in upstream's order stays.
                let mut running = Vec::new();
                for p in here.into_iter().filter(live) {
                    let pod = format!("{ns}/{}", p.metadata.name.as_deref().unwrap_or_default());
                    match phase(&p) {
                        Some("Failed") => {
                            self.recorder.record(
                                ds,
                                true,
                                "FailedDaemonPod",
                                format!(
                                    "Found failed daemon pod {pod} on node {name}, will try to kill it"
                                ),
                            );
                            delete.push(p);
                        }
                        Some("Succeeded") => {
                            self.recorder.record(
                                ds,
                                false,
                                "SucceededDaemonPod",
                                format!(
                                    "Found succeeded daemon pod {pod} on node {name}, will try to delete it"
                                ),
                            );
                            delete.push(p);
                        }
                        _ => running.push(p),
                    }
                }
                if running.len() > 1 {
                    sort_daemon_pods(&mut running);
                    delete.extend(running.drain(1..));
                }
            } else {
                // Not admitted any more, or an untolerated NoExecute taint.
                delete.extend(here.into_iter().filter(live));
            }
        }
        // Pods for nodes that no longer exist (upstream leaves the bound ones to the pod
        // garbage collector, which rkube does not have).
        for (_, rest) in by_node {
            delete.extend(rest.into_iter().filter(live));
        }
        (create_on, delete, desired)
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
        let ns = ds.metadata.namespace.clone().unwrap_or_default();
        let min_ready = ds
            .spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0);
        let now = Timestamp::now();
        let mut by_node = self.daemon_pods_by_node(ds);
        let (mut desired, mut current, mut misscheduled) = (0, 0, 0);
        let (mut ready, mut available, mut updated) = (0, 0, 0);
        let mut waiting_for_available = false;
        for node in nodes {
            let name = node.metadata.name.clone().unwrap_or_default();
            // As upstream: a node counts as scheduled once it has a pod, bound or not.
            let mut here = by_node.remove(&name).unwrap_or_default();
            let scheduled = !here.is_empty();
            if node_should_run_daemon_pod(probe, node).0 {
                desired += 1;
                if scheduled {
                    current += 1;
                }
                sort_daemon_pods(&mut here);
                if let Some(p) = here.first() {
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

    fn ds(template_spec: serde_json::Value) -> DaemonSet {
        serde_json::from_value(json!({
            "metadata": {"name": "agent", "namespace": "kube-system", "uid": "u1"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                "template": {"metadata": {"labels": {"app": "agent"}}, "spec": template_spec}}
        }))
        .unwrap()
    }

    fn node(labels: serde_json::Value, taints: &[(&str, &str)]) -> Node {
        let taints: Vec<_> = taints
            .iter()
            .map(|(k, e)| json!({"key": k, "effect": e}))
            .collect();
        serde_json::from_value(json!({"metadata": {"name": "n1", "labels": labels},
            "spec": {"taints": taints}}))
        .unwrap()
    }

    fn tolerations(pod: &Pod) -> Vec<(String, String, Option<i64>)> {
        let mut v: Vec<_> = pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|t| {
                (
                    t.key.unwrap_or_default(),
                    t.effect.unwrap_or_default(),
                    t.toleration_seconds,
                )
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn daemon_pods_are_pinned_and_tolerate_node_trouble() {
        let ds = ds(json!({"containers": [{"name": "a", "image": "busybox"}],
            "nodeSelector": {"role": "worker"},
            // The default replaces a template's own not-ready:NoExecute with a limit.
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "dedicated", "operator": "Equal", "value": "x", "effect": "NoSchedule"}]}));
        let t = ds.spec.as_ref().unwrap().template.clone();
        let pod = pod_for_node(&ds, &t, "abc", Some("n1"));
        assert_eq!(target_node(&pod).as_deref(), Some("n1"));
        assert_eq!(pod.metadata.labels.as_ref().unwrap()[REVISION_HASH], "abc");
        let want = |k: &str, e: &str| (k.to_string(), e.to_string(), None);
        assert_eq!(
            tolerations(&pod),
            vec![
                want("dedicated", "NoSchedule"),
                want("node.kubernetes.io/disk-pressure", "NoSchedule"),
                want("node.kubernetes.io/memory-pressure", "NoSchedule"),
                want("node.kubernetes.io/not-ready", "NoExecute"),
                want("node.kubernetes.io/pid-pressure", "NoSchedule"),
                want("node.kubernetes.io/unreachable", "NoExecute"),
                want("node.kubernetes.io/unschedulable", "NoSchedule"),
            ]
        );
        // Host-network daemons also tolerate network-unavailable.
        let host = self::ds(json!({"containers": [{"name": "a", "image": "busybox"}],
            "hostNetwork": true}));
        let ht = host.spec.as_ref().unwrap().template.clone();
        let hp = pod_for_node(&host, &ht, "abc", Some("n1"));
        assert!(tolerations(&hp).contains(&want(
            "node.kubernetes.io/network-unavailable",
            "NoSchedule"
        )));
        assert!(
            !tolerations(&pod)
                .iter()
                .any(|t| t.0 == "node.kubernetes.io/network-unavailable")
        );
    }

    #[test]
    fn taints_decide_creation_and_continued_running_apart() {
        let ds = ds(json!({"containers": [{"name": "a", "image": "busybox"}],
            "nodeSelector": {"role": "worker"}}));
        let t = ds.spec.as_ref().unwrap().template.clone();
        let probe = pod_for_node(&ds, &t, "abc", None);
        let w = || json!({"role": "worker"});
        let run = |n: &Node| node_should_run_daemon_pod(&probe, n);
        assert_eq!(run(&node(w(), &[])), (true, true));
        assert_eq!(run(&node(json!({}), &[])), (false, false));
        // Untolerated NoSchedule: no new pod, but the one there stays.
        assert_eq!(
            run(&node(w(), &[("dedicated", "NoSchedule")])),
            (false, true)
        );
        // A NotReady / unreachable node: the NoExecute variants are tolerated, the
        // NoSchedule ones are not.
        let not_ready = [
            ("node.kubernetes.io/not-ready", "NoSchedule"),
            ("node.kubernetes.io/not-ready", "NoExecute"),
        ];
        assert_eq!(run(&node(w(), &not_ready)), (false, true));
        let unreachable = [
            ("node.kubernetes.io/unreachable", "NoSchedule"),
            ("node.kubernetes.io/unreachable", "NoExecute"),
        ];
        assert_eq!(run(&node(w(), &unreachable)), (false, true));
        // Untolerated NoExecute: the pod goes.
        assert_eq!(
            run(&node(w(), &[("dedicated", "NoExecute")])),
            (false, false)
        );
        // Cordoned and pressured nodes still run daemons.
        for key in [
            "node.kubernetes.io/unschedulable",
            "node.kubernetes.io/memory-pressure",
            "node.kubernetes.io/disk-pressure",
            "node.kubernetes.io/pid-pressure",
        ] {
            assert_eq!(
                run(&node(w(), &[(key, "NoSchedule")])),
                (true, true),
                "{key}"
            );
        }
        // Network-unavailable only for host-network daemons.
        let na = [("node.kubernetes.io/network-unavailable", "NoSchedule")];
        assert_eq!(run(&node(w(), &na)), (false, true));
        // PreferNoSchedule never matters.
        assert_eq!(
            run(&node(w(), &[("dedicated", "PreferNoSchedule")])),
            (true, true)
        );
        // A template naming another node runs nowhere else.
        let pinned = self::ds(json!({"containers": [{"name": "a", "image": "busybox"}],
            "nodeName": "n2"}));
        let pt = pinned.spec.as_ref().unwrap().template.clone();
        let pp = pod_for_node(&pinned, &pt, "abc", None);
        assert_eq!(
            node_should_run_daemon_pod(&pp, &node(w(), &[])),
            (false, false)
        );
    }

    #[test]
    fn the_bound_then_oldest_pod_comes_first() {
        let pod = |name: &str, created: i64, node: Option<&str>| -> Arc<Pod> {
            let t = Timestamp::from_second(created).unwrap().to_string();
            Arc::new(
                serde_json::from_value(json!({"metadata": {"name": name,
                    "creationTimestamp": t}, "spec": {"containers": [], "nodeName": node}}))
                .unwrap(),
            )
        };
        let mut pods = vec![
            pod("c", 10, None),
            pod("b", 20, Some("n1")),
            pod("a", 20, Some("n1")),
            pod("d", 30, Some("n1")),
        ];
        sort_daemon_pods(&mut pods);
        let names: Vec<_> = pods
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["a", "b", "d", "c"]);
    }
}
