//! The disruption controller (upstream's `pkg/controller/disruption`, 1.33): keeps each
//! PodDisruptionBudget's status — expectedPods, currentHealthy, desiredHealthy,
//! disruptionsAllowed, the evictions still pending in disruptedPods, observedGeneration and
//! the `DisruptionAllowed` condition — which the API server's eviction subresource spends.
//!
//! `budget.rs` is the arithmetic, `finders.rs` the pods' controllers and their scale,
//! `stale.rs` the clean-up of `DisruptionTarget` conditions no disruption followed,
//! `messages.rs` the events' words.

pub mod budget;
pub mod finders;
pub mod messages;
pub mod stale;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};

use crate::podautoscaler::mapper::RestMapper;
use budget::Computed;
use client_go::events::Recorder;
use client_go::informer::{Change, HasSynced, Informer, key_of};
use client_go::queue::WorkQueue;
use client_go::reconciler::{self, Action, Reconciler};
pub use finders::Workloads;

pub struct DisruptionController {
    client: Client,
    pdbs: Informer<PodDisruptionBudget>,
    pods: Informer<Pod>,
    workloads: Workloads,
    mapper: RestMapper,
    /// Budget keys to sync.
    queue: Arc<WorkQueue>,
    /// Pod keys whose DisruptionTarget condition may be stale.
    stale: Arc<WorkQueue>,
    recorder: Recorder,
}

impl DisruptionController {
    pub fn new(
        client: Client,
        pdbs: Informer<PodDisruptionBudget>,
        pods: Informer<Pod>,
        workloads: Workloads,
    ) -> Arc<Self> {
        let c = Arc::new(DisruptionController {
            recorder: Recorder::new(client.clone(), "controllermanager"),
            mapper: RestMapper::new(client.clone()),
            client,
            pdbs,
            pods,
            workloads,
            queue: WorkQueue::new(),
            stale: WorkQueue::new(),
        });
        let me = c.clone();
        c.pdbs.on_change(move |ch: &Change<PodDisruptionBudget>| {
            if let Some(pdb) = ch.object() {
                me.queue.add(key_of(pdb.as_ref()));
            }
        });
        let me = c.clone();
        c.pods.on_change(move |ch: &Change<Pod>| me.pod_changed(ch));
        c
    }

    /// A pod's budgets (as it was and as it is) are synced again; a DisruptionTarget
    /// condition it carries is looked at when it may have become stale.
    fn pod_changed(&self, ch: &Change<Pod>) {
        let mut keys: Vec<String> = Vec::new();
        // The old pod's budgets too: a pod whose labels changed leaves one.
        if let (Some(old), Some(_)) = (&ch.old, &ch.new) {
            keys.extend(
                self.budgets_of(old, false)
                    .iter()
                    .map(|p| key_of(p.as_ref())),
            );
        }
        if let Some(pod) = ch.object() {
            keys.extend(
                self.budgets_of(pod, true)
                    .iter()
                    .map(|p| key_of(p.as_ref())),
            );
        }
        keys.sort_unstable();
        keys.dedup();
        for k in keys {
            self.queue.add(k);
        }
        if let Some(pod) = &ch.new
            && let Some(after) = stale::stale_after(pod, Timestamp::now())
        {
            self.stale.add_after(key_of(pod.as_ref()), after);
        }
    }

    /// The budgets whose selector selects the pod (policy/v1: an empty selector selects
    /// everything, a missing or invalid one nothing); several get upstream's warning when
    /// `warn`.
    fn budgets_of(&self, pod: &Pod, warn: bool) -> Vec<Arc<PodDisruptionBudget>> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        let found: Vec<Arc<PodDisruptionBudget>> = self
            .pdbs
            .list_namespace(ns)
            .into_iter()
            .filter(|pdb| {
                pdb.spec
                    .as_ref()
                    .and_then(|s| s.selector.as_ref())
                    .filter(|s| messages::selector_error(s).is_none())
                    .is_some_and(|s| common::selectors::selects(s, &labels))
            })
            .collect();
        if warn && found.len() > 1 {
            let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
            let chosen = found[0].metadata.name.as_deref().unwrap_or_default();
            self.recorder.record(
                pod,
                true,
                "MultiplePodDisruptionBudgets",
                messages::multiple_budgets(ns, pod_name, chosen),
            );
        }
        found
    }

    pub async fn run(self: Arc<Self>, workers: usize) {
        let w = &self.workloads;
        let caches: [&dyn HasSynced; 6] = [
            &self.pdbs,
            &self.pods,
            &w.rcs,
            &w.replicasets,
            &w.deployments,
            &w.statefulsets,
        ];
        let stale = Arc::new(StalePods(self.clone()));
        futures::future::join(
            reconciler::run(&self, &self.queue, &caches, workers),
            reconciler::run(&stale, &self.stale, &caches, 1),
        )
        .await;
    }
}

impl Reconciler for DisruptionController {
    const NAME: &'static str = "disruption";

    /// Syncs one budget; a failure other than a write conflict leaves it allowing nothing
    /// (upstream's fail-safe), with the reason in its condition.
    async fn reconcile(self: &Arc<Self>, key: &str) -> anyhow::Result<Action> {
        let Some(pdb) = self.pdbs.get_key(key) else {
            return Ok(Action::Done);
        };
        match self.try_sync(&pdb).await {
            Ok(again) => Ok(again.into()),
            Err(e) if is_conflict(&e) => Err(e),
            Err(e) => {
                tracing::error!(pdb = key, error = %format!("{e:#}"), "failed to sync PodDisruptionBudget");
                let safe = budget::fail_safe(&pdb, &format!("{e:#}"), Timestamp::now());
                self.write_status(&safe).await?;
                Ok(Action::Done)
            }
        }
    }
}

/// The stale pod disruption queue (upstream's stalePodDisruptionQueue): a pod's
/// `DisruptionTarget` condition that no deletion followed is set back to False.
struct StalePods(Arc<DisruptionController>);

impl Reconciler for StalePods {
    const NAME: &'static str = "disruption-stale";

    async fn reconcile(self: &Arc<Self>, key: &str) -> anyhow::Result<Action> {
        Ok(stale::sync(&self.0.client, &self.0.pods, key).await?.into())
    }
}

impl DisruptionController {
    async fn try_sync(&self, pdb: &PodDisruptionBudget) -> anyhow::Result<Option<Duration>> {
        let pods = match self.pods_of(pdb) {
            Ok(p) => p,
            Err(e) => {
                let msg = format!("Failed to get pods: {e}");
                self.recorder.record(pdb, true, "NoPods", msg);
                return Err(e);
            }
        };
        if pods.is_empty() {
            self.recorder
                .record(pdb, false, "NoPods", "No matching pods found".into());
        }
        let pod_refs: Vec<&Pod> = pods.iter().map(Arc::as_ref).collect();
        let counted = self.expected_and_desired(pdb, &pod_refs).await;
        let (expected_pods, desired_healthy) = match counted {
            Ok(c) => c,
            Err(e) => {
                let msg = format!("Failed to calculate the number of expected pods: {e:#}");
                self.recorder
                    .record(pdb, true, "CalculateExpectedPodCountFailed", msg);
                return Err(e);
            }
        };
        let now = Timestamp::now();
        let disrupted = budget::build_disrupted_pods(&pod_refs, pdb, now);
        for name in &disrupted.expired {
            if let Some(pod) = pods.iter().find(|p| p.metadata.name.as_ref() == Some(name)) {
                let ns = pdb.metadata.namespace.as_deref().unwrap_or_default();
                tracing::info!(pod = %key_of(pod.as_ref()), pdb = %key_of(pdb), "pod was expected to be deleted but it wasn't");
                self.recorder
                    .record(pod.as_ref(), true, "NotDeleted", messages::not_deleted(ns));
            }
        }
        let current_healthy = budget::count_healthy(&pod_refs, &disrupted.pending, now);
        let computed = Computed {
            current_healthy,
            desired_healthy,
            expected_pods,
            disrupted_pods: disrupted.pending,
        };
        if let Some(new) = budget::updated(pdb, computed, now) {
            self.write_status(&new).await?;
        }
        // Look again when the earliest pending eviction expires.
        Ok(disrupted.recheck.map(|at| {
            let ms = at.as_millisecond() - now.as_millisecond();
            Duration::from_millis(u64::try_from(ms).unwrap_or(0))
        }))
    }

    /// The pods in the budget's namespace its selector selects.
    fn pods_of(&self, pdb: &PodDisruptionBudget) -> anyhow::Result<Vec<Arc<Pod>>> {
        let ns = pdb.metadata.namespace.as_deref().unwrap_or_default();
        let Some(selector) = pdb.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
            return Ok(Vec::new());
        };
        if let Some(e) = messages::selector_error(selector) {
            anyhow::bail!("{e}");
        }
        Ok(self
            .pods
            .list_namespace(ns)
            .into_iter()
            .filter(|p| {
                let labels = p.metadata.labels.clone().unwrap_or_default();
                common::selectors::selects(selector, &labels)
            })
            .collect())
    }

    /// `(expectedPods, desiredHealthy)`, reading the controllers' scale only when the budget
    /// needs it; pods without a controller get upstream's UnmanagedPods warning.
    async fn expected_and_desired(
        &self,
        pdb: &PodDisruptionBudget,
        pods: &[&Pod],
    ) -> anyhow::Result<(i32, i32)> {
        let mut scale = 0;
        if budget::needs_scale(pdb) {
            let (sum, unmanaged) = self
                .workloads
                .expected_scale(&self.client, &self.mapper, pods)
                .await?;
            if !unmanaged.is_empty() {
                tracing::debug!(pdb = %key_of(pdb), pods = ?unmanaged, "unmanaged pods selected by a PodDisruptionBudget");
                let selector = pdb.spec.as_ref().and_then(|s| s.selector.as_ref());
                self.recorder.record(
                    pdb,
                    true,
                    "UnmanagedPods",
                    messages::unmanaged_pods(selector),
                );
            }
            scale = sum;
        }
        budget::expected_and_desired(pdb, pods.len(), scale)
    }

    /// Writes the budget's status; its resourceVersion makes a stale copy a conflict.
    async fn write_status(&self, pdb: &PodDisruptionBudget) -> anyhow::Result<()> {
        let ns = pdb.metadata.namespace.as_deref().unwrap_or_default();
        let name = pdb.metadata.name.as_deref().unwrap_or_default();
        Api::<PodDisruptionBudget>::namespaced(self.client.clone(), ns)
            .replace_status(name, &PostParams::default(), pdb)
            .await
            .with_context(|| format!("updating the status of PodDisruptionBudget {ns}/{name}"))?;
        Ok(())
    }
}

/// Whether the error is a write conflict (retried without the fail-safe, as upstream).
fn is_conflict(e: &anyhow::Error) -> bool {
    e.chain().any(
        |c| matches!(c.downcast_ref::<kube::Error>(), Some(kube::Error::Api(s)) if s.code == 409),
    )
}
