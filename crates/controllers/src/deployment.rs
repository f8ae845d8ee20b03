//! The Deployment controller: one ReplicaSet per pod template (named by the template's
//! hash), rolled out by RollingUpdate (maxSurge / maxUnavailable) or Recreate; revisions in
//! `deployment.kubernetes.io/revision`; old ReplicaSets kept up to revisionHistoryLimit;
//! pause; and the Progressing / Available conditions `kubectl rollout status` reads.
//! Rollback needs nothing here: `kubectl rollout undo` writes an old ReplicaSet's template
//! back into the Deployment, whose ReplicaSet then becomes the new one again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec,
};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use crate::pods;
use client_go::controller_ref::{ControllerRefManager, owner_not_deleting};
use client_go::events::Recorder;
use client_go::informer::{Change, Informer, controller_of, key_of};
use client_go::queue::WorkQueue;
use client_go::reconciler::{self, Action, Reconciler};

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
pub const TEMPLATE_HASH: &str = "pod-template-hash";
/// Annotations of a Deployment that are not copied to its ReplicaSets.
const NOT_COPIED: [&str; 4] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
];

pub struct DeploymentController {
    client: Client,
    deployments: Informer<Deployment>,
    replicasets: Informer<ReplicaSet>,
    pods: Informer<Pod>,
    queue: Arc<WorkQueue>,
    recorder: Recorder,
}

/// The template's hash as Kubernetes spells it (digits mapped to "safe" characters, so a
/// name never spells words), varied by collisionCount.
pub fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let bytes = serde_json::to_vec(template).unwrap_or_default();
    crate::history::safe_hash(&bytes, collision_count)
}

/// Templates equal once the pod-template-hash label is ignored.
fn same_template(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    let strip = |t: &PodTemplateSpec| {
        let mut t = t.clone();
        if let Some(l) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            l.remove(TEMPLATE_HASH);
        }
        t
    };
    strip(a) == strip(b)
}

fn revision(rs: &ReplicaSet) -> i64 {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

fn status_of(rs: &ReplicaSet) -> (i32, i32, i32) {
    rs.status
        .as_ref()
        .map(|s| {
            (
                s.replicas,
                s.ready_replicas.unwrap_or(0),
                s.available_replicas.unwrap_or(0),
            )
        })
        .unwrap_or_default()
}

/// maxSurge and maxUnavailable as pod counts (surge rounds up, unavailable down; both zero
/// would deadlock, so unavailable becomes 1).
pub fn surge_and_unavailable(d: &Deployment) -> (i32, i32) {
    let replicas = replicas(d);
    let ru = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    let resolve = |v: Option<&IntOrString>, default: &str, up: bool| -> i32 {
        let v = v.cloned().unwrap_or(IntOrString::String(default.into()));
        match v {
            IntOrString::Int(n) => n,
            IntOrString::String(s) => {
                let pct: f64 = s.trim_end_matches('%').parse().unwrap_or(0.0);
                let exact = pct * f64::from(replicas) / 100.0;
                (if up { exact.ceil() } else { exact.floor() }) as i32
            }
        }
    };
    let surge = resolve(ru.and_then(|r| r.max_surge.as_ref()), "25%", true);
    let unavailable = resolve(ru.and_then(|r| r.max_unavailable.as_ref()), "25%", false);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable.min(replicas))
    }
}

fn replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

fn is_recreate(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        == Some("Recreate")
}

fn paused(d: &Deployment) -> bool {
    d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false)
}

impl DeploymentController {
    pub fn new(
        client: Client,
        deployments: Informer<Deployment>,
        replicasets: Informer<ReplicaSet>,
        pods: Informer<Pod>,
    ) -> Arc<Self> {
        let c = Arc::new(DeploymentController {
            recorder: Recorder::new(client.clone(), "deployment-controller"),
            client,
            deployments,
            replicasets,
            pods,
            queue: WorkQueue::new(),
        });
        let me = c.clone();
        c.deployments.on_change(move |ch: &Change<Deployment>| {
            if let Some(d) = ch.object() {
                me.queue.add(key_of(d.as_ref()));
            }
        });
        let me = c.clone();
        c.replicasets.on_change(move |ch: &Change<ReplicaSet>| {
            for rs in [&ch.old, &ch.new].into_iter().flatten() {
                match me.owner_of(rs) {
                    Some(d) => me.queue.add(d),
                    None if controller_of(rs.as_ref()).is_none() => {
                        // An orphan: the deployments that would adopt it.
                        let labels = rs
                            .spec
                            .as_ref()
                            .and_then(|s| s.template.as_ref())
                            .and_then(|t| t.metadata.as_ref())
                            .map(pods::labels)
                            .unwrap_or_default();
                        let ns = rs.metadata.namespace.as_deref().unwrap_or_default();
                        for d in me.deployments.list_namespace(ns) {
                            if pods::selects_some(&selector(&d), &labels) {
                                me.queue.add(key_of(d.as_ref()));
                            }
                        }
                    }
                    None => {}
                }
            }
        });
        // Recreate waits for old pods to be gone.
        let me = c.clone();
        c.pods.on_change(move |ch: &Change<Pod>| {
            if ch.new.is_none()
                && let Some(pod) = &ch.old
                && let Some(r) = controller_of(pod.as_ref()).filter(|r| r.kind == "ReplicaSet")
                && let Some(rs) = me
                    .replicasets
                    .get(pod.metadata.namespace.as_deref(), &r.name)
                && let Some(d) = me.owner_of(&rs)
            {
                me.queue.add(d);
            }
        });
        c
    }

    fn owner_of(&self, rs: &ReplicaSet) -> Option<String> {
        let r = controller_of(rs).filter(|r| r.kind == "Deployment")?;
        let d = self
            .deployments
            .get(rs.metadata.namespace.as_deref(), &r.name)?;
        (d.metadata.uid.as_deref() == Some(r.uid.as_str())).then(|| key_of(d.as_ref()))
    }

    pub async fn run(self: Arc<Self>, workers: usize) {
        reconciler::run(
            &self,
            &self.queue,
            &[&self.deployments, &self.replicasets, &self.pods],
            workers,
        )
        .await;
    }
}

impl Reconciler for DeploymentController {
    const NAME: &'static str = "deployment";

    async fn reconcile(self: &Arc<Self>, key: &str) -> anyhow::Result<Action> {
        let Some(d) = self.deployments.get_key(key) else {
            return Ok(Action::Done);
        };
        let ns = d.metadata.namespace.clone().unwrap_or_default();
        let rs_api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &ns);
        let mut all = self.claim_replicasets(&d, &rs_api).await?;
        if d.metadata.deletion_timestamp.is_some() {
            return Ok(self.sync_status(&d, &all, None, false).await?.into());
        }
        let template = d
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        let new_idx = all.iter().position(|rs| {
            rs.spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .is_some_and(|t| same_template(t, &template))
        });
        // A paused deployment only scales; it starts no new rollout.
        let mut created = false;
        let new_idx = match new_idx {
            Some(i) => {
                self.sync_revision(&d, &rs_api, &mut all, i).await?;
                Some(i)
            }
            None if paused(&d) => None,
            None => {
                let rs = self.create_new_rs(&d, &rs_api, &all).await?;
                created = true;
                all.push(rs);
                Some(all.len() - 1)
            }
        };
        if paused(&d) || self.is_scaling_event(&d, &all) {
            self.scale(&d, &rs_api, &mut all, new_idx).await?;
        } else if let Some(i) = new_idx {
            if is_recreate(&d) {
                self.recreate(&d, &rs_api, &mut all, i).await?;
            } else {
                self.rolling_update(&d, &rs_api, &mut all, i).await?;
            }
        }
        self.cleanup(&d, &rs_api, &all, new_idx).await?;
        Ok(self.sync_status(&d, &all, new_idx, created).await?.into())
    }
}

impl DeploymentController {
    /// ReplicaSets this deployment controls, after adopting matching orphans and releasing
    /// ReplicaSets that stopped matching.
    async fn claim_replicasets(
        &self,
        d: &Deployment,
        api: &Api<ReplicaSet>,
    ) -> anyhow::Result<Vec<ReplicaSet>> {
        let uid = d.metadata.uid.clone().unwrap_or_default();
        let sel = selector(d);
        let ns = d.metadata.namespace.as_deref().unwrap_or_default();
        let name = d.metadata.name.clone().unwrap_or_default();
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
        let r = pods::controller_ref("apps/v1", "Deployment", &d.metadata);
        let claimed = ControllerRefManager::new(&d.metadata, r)
            .claim(
                api,
                self.replicasets.list_namespace(ns),
                |rs| pods::selects_some(&sel, &pods::labels(&rs.metadata)),
                || owner_not_deleting(&deployments, &name, &uid),
            )
            .await?;
        Ok(claimed.into_iter().map(|rs| (*rs).clone()).collect())
    }

    fn max_old_revision(all: &[ReplicaSet], except: Option<usize>) -> i64 {
        all.iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != except)
            .map(|(_, rs)| revision(rs))
            .max()
            .unwrap_or(0)
    }

    /// The new ReplicaSet's revision becomes the newest (a rollback to it renumbers it),
    /// and the deployment's own revision annotation follows.
    async fn sync_revision(
        &self,
        d: &Deployment,
        api: &Api<ReplicaSet>,
        all: &mut [ReplicaSet],
        i: usize,
    ) -> anyhow::Result<()> {
        let max_old = Self::max_old_revision(all, Some(i));
        let rs = &all[i];
        let mut annotations = copied_annotations(d);
        let want_rev = if revision(rs) > max_old {
            revision(rs)
        } else {
            max_old + 1
        };
        annotations.insert(REVISION.into(), want_rev.to_string());
        let current = rs.metadata.annotations.clone().unwrap_or_default();
        let min_ready = d.spec.as_ref().and_then(|s| s.min_ready_seconds);
        let rs_min_ready = rs.spec.as_ref().and_then(|s| s.min_ready_seconds);
        if annotations.iter().any(|(k, v)| current.get(k) != Some(v))
            || min_ready.unwrap_or(0) != rs_min_ready.unwrap_or(0)
        {
            let name = rs.metadata.name.clone().unwrap_or_default();
            let patch = json!({"metadata": {"annotations": annotations}, "spec": {"minReadySeconds": min_ready.unwrap_or(0)}});
            all[i] = api
                .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .context("updating the new ReplicaSet's revision")?;
        }
        self.set_deployment_revision(d, want_rev).await
    }

    async fn set_deployment_revision(&self, d: &Deployment, rev: i64) -> anyhow::Result<()> {
        let current = d
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION));
        if current.map(String::as_str) == Some(rev.to_string().as_str()) {
            return Ok(());
        }
        let api: Api<Deployment> = Api::namespaced(
            self.client.clone(),
            d.metadata.namespace.as_deref().unwrap_or_default(),
        );
        let patch = json!({"metadata": {"annotations": {REVISION: rev.to_string()}}});
        api.patch(
            d.metadata.name.as_deref().unwrap_or_default(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await
        .context("updating the deployment's revision")?;
        Ok(())
    }

    async fn create_new_rs(
        &self,
        d: &Deployment,
        api: &Api<ReplicaSet>,
        all: &[ReplicaSet],
    ) -> anyhow::Result<ReplicaSet> {
        let spec = d.spec.clone().unwrap_or_default();
        let mut collision = d.status.as_ref().and_then(|s| s.collision_count);
        let rev = Self::max_old_revision(all, None) + 1;
        let (surge, _) = surge_and_unavailable(d);
        let want = replicas(d);
        // The new ReplicaSet starts as large as the strategy allows at once.
        let initial = if is_recreate(d) {
            let old_running = all.iter().any(|rs| spec_replicas(rs) > 0);
            if old_running { 0 } else { want }
        } else {
            let total: i32 = all.iter().map(spec_replicas).sum();
            (want + surge - total).clamp(0, want)
        };
        loop {
            let hash = template_hash(&spec.template, collision);
            let mut template = spec.template.clone();
            template
                .metadata
                .get_or_insert_with(Default::default)
                .labels
                .get_or_insert_with(Default::default)
                .insert(TEMPLATE_HASH.into(), hash.clone());
            let mut sel = spec.selector.clone();
            sel.match_labels
                .get_or_insert_with(Default::default)
                .insert(TEMPLATE_HASH.into(), hash.clone());
            let mut annotations = copied_annotations(d);
            annotations.insert(REVISION.into(), rev.to_string());
            annotations.insert(DESIRED_REPLICAS.into(), want.to_string());
            annotations.insert(MAX_REPLICAS.into(), (want + surge).to_string());
            let name = format!("{}-{hash}", d.metadata.name.as_deref().unwrap_or_default());
            let rs = ReplicaSet {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: d.metadata.namespace.clone(),
                    labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
                    annotations: Some(annotations),
                    owner_references: Some(vec![pods::controller_ref(
                        "apps/v1",
                        "Deployment",
                        &d.metadata,
                    )]),
                    ..Default::default()
                },
                spec: Some(ReplicaSetSpec {
                    replicas: Some(initial),
                    min_ready_seconds: spec.min_ready_seconds,
                    selector: sel,
                    template: Some(template),
                }),
                status: None,
            };
            match api.create(&PostParams::default(), &rs).await {
                Ok(rs) => {
                    self.recorder.record(
                        d,
                        false,
                        "ScalingReplicaSet",
                        format!("Scaled up replica set {name} from 0 to {initial}"),
                    );
                    self.set_deployment_revision(d, rev).await?;
                    return Ok(rs);
                }
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    // Same name: ours if it has our template, else a hash collision.
                    let existing = api
                        .get(&name)
                        .await
                        .context("reading a colliding ReplicaSet")?;
                    let ours = controller_of(&existing)
                        .is_some_and(|r| Some(r.uid.as_str()) == d.metadata.uid.as_deref())
                        && existing
                            .spec
                            .as_ref()
                            .and_then(|s| s.template.as_ref())
                            .is_some_and(|t| same_template(t, &spec.template));
                    if ours {
                        return Ok(existing);
                    }
                    collision = Some(collision.unwrap_or(0) + 1);
                    self.patch_status(d, json!({"collisionCount": collision}))
                        .await?;
                }
                Err(e) => return Err(e).context("creating the new ReplicaSet"),
            }
        }
    }

    /// A change of `replicas` alone (not of the template): active ReplicaSets are resized
    /// in proportion, as Kubernetes does, rather than rolled.
    fn is_scaling_event(&self, d: &Deployment, all: &[ReplicaSet]) -> bool {
        let want = replicas(d).to_string();
        all.iter().filter(|rs| spec_replicas(rs) > 0).any(|rs| {
            rs.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(DESIRED_REPLICAS))
                .is_some_and(|v| *v != want)
        })
    }

    async fn scale_rs(
        &self,
        d: &Deployment,
        api: &Api<ReplicaSet>,
        rs: &mut ReplicaSet,
        to: i32,
    ) -> anyhow::Result<()> {
        let from = spec_replicas(rs);
        let (surge, _) = surge_and_unavailable(d);
        let want = replicas(d);
        let annotations = rs.metadata.annotations.clone().unwrap_or_default();
        let stale = annotations.get(DESIRED_REPLICAS) != Some(&want.to_string())
            || annotations.get(MAX_REPLICAS) != Some(&(want + surge).to_string());
        if from == to && !stale {
            return Ok(());
        }
        let name = rs.metadata.name.clone().unwrap_or_default();
        let patch = json!({
            "metadata": {"annotations": {DESIRED_REPLICAS: want.to_string(), MAX_REPLICAS: (want + surge).to_string()}},
            "spec": {"replicas": to},
        });
        *rs = api
            .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .with_context(|| format!("scaling replica set {name}"))?;
        if from != to {
            let verb = if to > from { "up" } else { "down" };
            self.recorder.record(
                d,
                false,
                "ScalingReplicaSet",
                format!("Scaled {verb} replica set {name} from {from} to {to}"),
            );
        }
        Ok(())
    }

    /// Proportional scaling: the difference from the allowed total is shared among the
    /// active ReplicaSets by their size (the largest first takes the rounding).
    async fn scale(
        &self,
        d: &Deployment,
        api: &Api<ReplicaSet>,
        all: &mut [ReplicaSet],
        new_idx: Option<usize>,
    ) -> anyhow::Result<()> {
        let want = replicas(d);
        let active: Vec<usize> = (0..all.len())
            .filter(|i| spec_replicas(&all[*i]) > 0)
            .collect();
        // Only one active (or none): it gets everything.
        if active.len() <= 1 {
            let target = active.first().copied().or(new_idx);
            if let Some(i) = target {
                self.scale_rs(d, api, &mut all[i], want).await?;
            }
            return Ok(());
        }
        let (surge, _) = surge_and_unavailable(d);
        let allowed = if is_recreate(d) { want } else { want + surge };
        let current: i32 = all.iter().map(spec_replicas).sum();
        // With nothing to share (diff 0) every target is the current size: the annotations
        // are still brought up to date.
        let diff = allowed - current;
        let mut order = active;
        order.sort_by_key(|i| std::cmp::Reverse(spec_replicas(&all[*i])));
        let mut targets: BTreeMap<usize, i32> = BTreeMap::new();
        let mut added = 0;
        for &i in &order {
            let size = spec_replicas(&all[i]);
            let share = (f64::from(size) * f64::from(diff) / f64::from(current.max(1))) as i32;
            targets.insert(i, size + share);
            added += share;
        }
        if let Some(first) = order.first() {
            let leftover = diff - added;
            if let Some(t) = targets.get_mut(first) {
                *t = (*t + leftover).max(0);
            }
        }
        for (i, to) in targets {
            self.scale_rs(d, api, &mut all[i], to.max(0)).await?;
        }
        Ok(())
    }

    async fn rolling_update(
        &self,
        d: &Deployment,
        api: &Api<ReplicaSet>,
        all: &mut [ReplicaSet],
        new_idx: usize,
    ) -> anyhow::Result<()> {
        let want = replicas(d);
        let (surge, max_unavailable) = surge_and_unavailable(d);
        // Scale up the new ReplicaSet as far as maxSurge allows.
        let new_size = spec_replicas(&all[new_idx]);
        let total: i32 = all.iter().map(spec_replicas).sum();
        let target = if new_size >= want {
            want
        } else {
            (want + surge - total + new_size).clamp(new_size, want)
        };
        self.scale_rs(d, api, &mut all[new_idx], target).await?;

        // Scale down old ReplicaSets as far as maxUnavailable allows.
        let total: i32 = all.iter().map(spec_replicas).sum();
        let min_available = want - max_unavailable;
        let (_, _, new_available) = status_of(&all[new_idx]);
        let new_unavailable = (spec_replicas(&all[new_idx]) - new_available).max(0);
        let mut budget = total - min_available - new_unavailable;
        let mut olds: Vec<usize> = (0..all.len()).filter(|i| *i != new_idx).collect();
        olds.sort_by_key(|i| all[*i].metadata.creation_timestamp.as_ref().map(|t| t.0));
        // First the old pods that are not available anyway.
        for &i in &olds {
            if budget <= 0 {
                break;
            }
            let size = spec_replicas(&all[i]);
            let (_, _, avail) = status_of(&all[i]);
            let unhealthy = (size - avail).max(0).min(budget);
            if unhealthy > 0 {
                self.scale_rs(d, api, &mut all[i], size - unhealthy).await?;
                budget -= unhealthy;
            }
        }
        // Then available ones, keeping minAvailable.
        let available: i32 = all.iter().map(|rs| status_of(rs).2).sum();
        let mut can_remove = (available - min_available).min(budget.max(0));
        for &i in &olds {
            if can_remove <= 0 {
                break;
            }
            let size = spec_replicas(&all[i]);
            let down = size.min(can_remove);
            if down > 0 {
                self.scale_rs(d, api, &mut all[i], size - down).await?;
                can_remove -= down;
            }
        }
        Ok(())
    }

    /// Recreate: every old pod goes first; the new ReplicaSet scales up once none runs.
    async fn recreate(
        &self,
        d: &Deployment,
        api: &Api<ReplicaSet>,
        all: &mut [ReplicaSet],
        new_idx: usize,
    ) -> anyhow::Result<()> {
        for (i, rs) in all.iter_mut().enumerate() {
            if i != new_idx && spec_replicas(rs) > 0 {
                self.scale_rs(d, api, rs, 0).await?;
            }
        }
        let old_uids: Vec<String> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != new_idx)
            .filter_map(|(_, rs)| rs.metadata.uid.clone())
            .collect();
        let ns = d.metadata.namespace.as_deref().unwrap_or_default();
        let old_running = self.pods.list_namespace(ns).iter().any(|p| {
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            controller_of(p.as_ref()).is_some_and(|r| old_uids.contains(&r.uid))
                && !matches!(phase, Some("Succeeded") | Some("Failed"))
        });
        if !old_running {
            self.scale_rs(d, api, &mut all[new_idx], replicas(d))
                .await?;
        }
        Ok(())
    }

    /// Old ReplicaSets with no replicas beyond revisionHistoryLimit go, oldest first.
    async fn cleanup(
        &self,
        d: &Deployment,
        api: &Api<ReplicaSet>,
        all: &[ReplicaSet],
        new_idx: Option<usize>,
    ) -> anyhow::Result<()> {
        let limit = d
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(10)
            .max(0) as usize;
        let mut idle: Vec<&ReplicaSet> = all
            .iter()
            .enumerate()
            .filter(|(i, rs)| {
                Some(*i) != new_idx
                    && spec_replicas(rs) == 0
                    && status_of(rs).0 == 0
                    && rs.metadata.deletion_timestamp.is_none()
            })
            .map(|(_, rs)| rs)
            .collect();
        if idle.len() <= limit {
            return Ok(());
        }
        idle.sort_by_key(|rs| revision(rs));
        for rs in &idle[..idle.len() - limit] {
            let name = rs.metadata.name.as_deref().unwrap_or_default();
            match api.delete(name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e).context("deleting an old ReplicaSet"),
            }
        }
        Ok(())
    }

    async fn patch_status(&self, d: &Deployment, status: serde_json::Value) -> anyhow::Result<()> {
        let api: Api<Deployment> = Api::namespaced(
            self.client.clone(),
            d.metadata.namespace.as_deref().unwrap_or_default(),
        );
        match api
            .patch_status(
                d.metadata.name.as_deref().unwrap_or_default(),
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": status })),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e).context("updating deployment status"),
        }
    }

    /// Status counts and the Available / Progressing conditions; asks to run again when the
    /// progress deadline would pass.
    async fn sync_status(
        &self,
        d: &Deployment,
        all: &[ReplicaSet],
        new_idx: Option<usize>,
        created: bool,
    ) -> anyhow::Result<Option<Duration>> {
        let want = replicas(d);
        let (_, max_unavailable) = surge_and_unavailable(d);
        let sum = |f: fn(&ReplicaSet) -> i32| all.iter().map(f).sum::<i32>();
        let total = sum(|rs| status_of(rs).0);
        let ready = sum(|rs| status_of(rs).1);
        let available = sum(|rs| status_of(rs).2);
        let updated = new_idx.map(|i| status_of(&all[i]).0).unwrap_or(0);
        let old = d.status.clone().unwrap_or_default();
        let mut status = DeploymentStatus {
            observed_generation: d.metadata.generation,
            replicas: Some(total).filter(|n| *n != 0),
            updated_replicas: Some(updated).filter(|n| *n != 0),
            ready_replicas: Some(ready).filter(|n| *n != 0),
            available_replicas: Some(available).filter(|n| *n != 0),
            unavailable_replicas: Some((want - available).max(0)).filter(|n| *n != 0),
            collision_count: old.collision_count,
            conditions: old.conditions.clone(),
            terminating_replicas: None,
        };
        let now = Time(Timestamp::now());
        let conds = status.conditions.get_or_insert_with(Vec::new);
        if available >= want - max_unavailable {
            set_condition(
                conds,
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
                &now,
            );
        } else {
            set_condition(
                conds,
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
                &now,
            );
        }
        let rs_name = new_idx
            .and_then(|i| all[i].metadata.name.clone())
            .unwrap_or_default();
        let deadline = d.spec.as_ref().and_then(|s| s.progress_deadline_seconds);
        let complete = new_idx.is_some()
            && updated == want
            && available == want
            && total == want
            && all
                .iter()
                .enumerate()
                .all(|(i, rs)| Some(i) == new_idx || status_of(rs).0 == 0);
        let mut requeue = None;
        if paused(d) {
            set_condition(
                conds,
                "Progressing",
                "Unknown",
                "DeploymentPaused",
                "Deployment is paused",
                &now,
            );
        } else if complete {
            set_condition(
                conds,
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                &format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
                &now,
            );
        } else if created {
            set_condition(
                conds,
                "Progressing",
                "True",
                "NewReplicaSetCreated",
                &format!("Created new replica set \"{rs_name}\""),
                &now,
            );
        } else if new_idx.is_some() {
            let prev = old
                .conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == "Progressing");
            let progressed = old.updated_replicas.unwrap_or(0) != updated
                || old.available_replicas.unwrap_or(0) != available
                || old.ready_replicas.unwrap_or(0) != ready
                || prev.is_none_or(|c| {
                    c.reason.as_deref() == Some("DeploymentPaused")
                        || c.reason.as_deref() == Some("DeploymentResumed")
                });
            let timed_out =
                prev.is_some_and(|c| c.reason.as_deref() == Some("ProgressDeadlineExceeded"));
            if progressed {
                set_condition(
                    conds,
                    "Progressing",
                    "True",
                    "ReplicaSetUpdated",
                    &format!("ReplicaSet \"{rs_name}\" is progressing."),
                    &now,
                );
            }
            if let (Some(secs), Some(c)) = (
                deadline,
                conds.iter().find(|c| c.type_ == "Progressing").cloned(),
            ) && !timed_out
                && c.status == "True"
            {
                let since = c.last_update_time.map(|t| t.0).unwrap_or(now.0);
                let elapsed = now.0.duration_since(since).as_secs();
                if elapsed >= i64::from(secs) {
                    set_condition(
                        conds,
                        "Progressing",
                        "False",
                        "ProgressDeadlineExceeded",
                        &format!("ReplicaSet \"{rs_name}\" has timed out progressing."),
                        &now,
                    );
                } else {
                    requeue = Some(Duration::from_secs(
                        (i64::from(secs) - elapsed).max(1) as u64
                    ));
                }
            }
        }
        let changed = {
            let strip = |s: &DeploymentStatus| {
                let mut s = s.clone();
                for c in s.conditions.iter_mut().flatten() {
                    c.last_update_time = None;
                    c.last_transition_time = None;
                }
                s
            };
            strip(&status) != strip(&old)
        };
        if changed {
            if status.conditions.as_ref().is_some_and(Vec::is_empty) {
                status.conditions = None;
            }
            let mut value = serde_json::to_value(&status).context("encoding status")?;
            // Counts that dropped to zero must be cleared, not left behind by the merge.
            for k in [
                "replicas",
                "updatedReplicas",
                "readyReplicas",
                "availableReplicas",
                "unavailableReplicas",
            ] {
                if value.get(k).is_none() {
                    value[k] = serde_json::Value::Null;
                }
            }
            self.patch_status(d, value).await?;
        }
        Ok(requeue)
    }
}

/// Sets a condition, keeping lastTransitionTime unless the status changes, and
/// lastUpdateTime unless anything does.
fn set_condition(
    conds: &mut Vec<DeploymentCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: &Time,
) {
    let existing = conds.iter_mut().find(|c| c.type_ == type_);
    match existing {
        Some(c) => {
            if c.status == status
                && c.reason.as_deref() == Some(reason)
                && c.message.as_deref() == Some(message)
            {
                return;
            }
            if c.status != status {
                c.last_transition_time = Some(now.clone());
            }
            c.status = status.to_string();
            c.reason = Some(reason.to_string());
            c.message = Some(message.to_string());
            c.last_update_time = Some(now.clone());
        }
        None => conds.push(DeploymentCondition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: Some(reason.to_string()),
            message: Some(message.to_string()),
            last_update_time: Some(now.clone()),
            last_transition_time: Some(now.clone()),
        }),
    }
}

fn selector(d: &Deployment) -> LabelSelector {
    d.spec
        .as_ref()
        .map(|s| s.selector.clone())
        .unwrap_or_default()
}

/// The deployment's annotations its ReplicaSets carry (change-cause among them).
fn copied_annotations(d: &Deployment) -> BTreeMap<String, String> {
    d.metadata
        .annotations
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| !NOT_COPIED.contains(&k.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment};

    #[test]
    fn surge_rounds_up_and_unavailable_down() {
        let d = |replicas, surge: IntOrString, unavailable: IntOrString| Deployment {
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                strategy: Some(DeploymentStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_surge: Some(surge),
                        max_unavailable: Some(unavailable),
                    }),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let pct = |s: &str| IntOrString::String(s.into());
        assert_eq!(
            surge_and_unavailable(&d(10, pct("25%"), pct("25%"))),
            (3, 2)
        );
        assert_eq!(surge_and_unavailable(&d(1, pct("25%"), pct("25%"))), (1, 0));
        assert_eq!(
            surge_and_unavailable(&d(3, IntOrString::Int(0), IntOrString::Int(0))),
            (0, 1)
        );
    }

    #[test]
    fn template_hash_is_stable_and_safe() {
        let t = PodTemplateSpec::default();
        let h = template_hash(&t, None);
        assert_eq!(h, template_hash(&t, None));
        assert_ne!(h, template_hash(&t, Some(1)));
        assert!(h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
    }
}
