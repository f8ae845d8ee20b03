//! The Job controller (Kubernetes' `pkg/controller/job`, 1.33 behaviour): runs pods from
//! `spec.template` until `completions` of them succeed — one pod, a fixed completion count
//! with `parallelism` at a time, or a work queue (no `completions`: done once any pod
//! succeeded and all have ended) — in NonIndexed or Indexed completion mode.
//!
//! Pods carry the `batch.kubernetes.io/job-tracking` finalizer until their outcome is
//! counted: a finished pod's uid goes into `status.uncountedTerminatedPods` first, then the
//! finalizer is removed, then the uid moves into the `succeeded` / `failed` counters — so a
//! pod deleted early (by the pod GC or a user) is never lost or counted twice.
//!
//! Failed pods are replaced after an exponential back-off (10 s doubling, at most 10 min, as
//! upstream's controller does) until `backoffLimit` is passed; `activeDeadlineSeconds`
//! bounds the run. Finishing goes through the interim `SuccessCriteriaMet` / `FailureTarget`
//! conditions and becomes `Complete` / `Failed` once no pod is left terminating. Suspending
//! deletes the active pods; resuming restarts the deadline clock.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use crate::pods;
use client_go::controller_ref::{ControllerRefManager, owner_not_deleting};
use client_go::events::Recorder;
use client_go::expectations::Expectations;
use client_go::informer::{Change, HasSynced, Informer, controller_of, key_of};
use client_go::queue::WorkQueue;
use client_go::reconciler::{self, Action, Reconciler};

pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// Annotation and label with an Indexed job pod's index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
const COMPLETION_INDEX_ENV: &str = "JOB_COMPLETION_INDEX";
/// `spec.managedBy` of jobs this controller owns (any other value belongs to someone else).
pub const JOB_CONTROLLER: &str = "kubernetes.io/job-controller";

/// Pod re-creation back-off after failures (upstream's DefaultJobPodFailureBackOff and
/// MaxJobPodFailureBackOff).
const POD_FAILURE_BACKOFF: Duration = Duration::from_secs(10);
const MAX_POD_FAILURE_BACKOFF: Duration = Duration::from_secs(600);
/// Uids held in `uncountedTerminatedPods` at once (keeps the status near 20 KB).
const MAX_UNCOUNTED: usize = 500;
/// Pods created or deleted in one sync.
const MAX_PER_SYNC: usize = 500;
/// Longest generateName prefix the API server keeps (63 less 5 random characters).
const MAX_GENERATE_NAME: usize = 58;
/// A sync retried after a back-off never comes sooner than this (upstream's batching period).
const MIN_REQUEUE: Duration = Duration::from_secs(1);

pub const COMPLETE: &str = "Complete";
pub const FAILED: &str = "Failed";
pub const SUSPENDED: &str = "Suspended";
pub const SUCCESS_CRITERIA_MET: &str = "SuccessCriteriaMet";
pub const FAILURE_TARGET: &str = "FailureTarget";

pub struct JobController {
    client: Client,
    jobs: Informer<Job>,
    pods: Informer<Pod>,
    queue: Arc<WorkQueue>,
    /// Pods (keys) whose tracking finalizer must go because no unfinished job owns them.
    orphans: Arc<WorkQueue>,
    expectations: Expectations,
    finalizers: FinalizerExpectations,
    backoffs: Mutex<HashMap<String, Backoff>>,
    recorder: Recorder,
}

mod backoff;
mod indexed;
mod pod_failure_policy;
mod success_policy;
#[cfg(test)]
mod tests;
mod tracking;

use backoff::*;
pub use indexed::*;
use pod_failure_policy::*;
use success_policy::*;
use tracking::*;

fn spec(job: &Job) -> k8s_openapi::api::batch::v1::JobSpec {
    job.spec.clone().unwrap_or_default()
}

fn is_indexed(job: &Job) -> bool {
    job.spec.as_ref().and_then(|s| s.completion_mode.as_deref()) == Some("Indexed")
}

fn completions(job: &Job) -> Option<i32> {
    job.spec.as_ref().and_then(|s| s.completions)
}

fn suspended(job: &Job) -> bool {
    job.spec.as_ref().and_then(|s| s.suspend) == Some(true)
}

fn conditions(job: &Job) -> &[JobCondition] {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
}

fn condition<'a>(job: &'a Job, type_: &str) -> Option<&'a JobCondition> {
    conditions(job)
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
}

/// `Complete` or `Failed`, when the job has finished.
pub fn finished(job: &Job) -> Option<&JobCondition> {
    conditions(job)
        .iter()
        .find(|c| (c.type_ == COMPLETE || c.type_ == FAILED) && c.status == "True")
}

fn has_finalizer(pod: &Pod) -> bool {
    pod.metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == TRACKING_FINALIZER))
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.phase.as_deref())
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

/// The pod's completion index, if it has a valid one.
pub fn completion_index(pod: &Pod) -> Option<usize> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(COMPLETION_INDEX)?
        .parse()
        .ok()
}

/// Replaced only once Failed (`podReplacementPolicy: Failed`, or a pod failure policy),
/// rather than as soon as it starts terminating.
fn only_replace_failed(job: &Job) -> bool {
    let s = job.spec.as_ref();
    s.and_then(|s| s.pod_replacement_policy.as_deref()) == Some("Failed")
        || s.and_then(|s| s.pod_failure_policy.as_ref()).is_some()
}

/// Failed, or (unless only failed pods are replaced) deleted before it succeeded.
fn pod_failed(pod: &Pod, only_failed: bool) -> bool {
    if phase(pod) == Some("Failed") {
        return true;
    }
    !only_failed && pod.metadata.deletion_timestamp.is_some() && phase(pod) != Some("Succeeded")
}

fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
        && !matches!(phase(pod), Some("Succeeded") | Some("Failed"))
}

/// With restartPolicy OnFailure failed containers restart in place: their restarts count
/// toward backoffLimit.
fn past_backoff_limit_on_failure(job: &Job, pods: &[Arc<Pod>]) -> bool {
    let s = spec(job);
    if s.template
        .spec
        .as_ref()
        .and_then(|p| p.restart_policy.as_deref())
        != Some("OnFailure")
    {
        return false;
    }
    let restarts: i32 = pods
        .iter()
        .filter(|p| matches!(phase(p), Some("Running") | Some("Pending")))
        .filter_map(|p| p.status.as_ref())
        .flat_map(|s| {
            s.init_container_statuses
                .iter()
                .flatten()
                .chain(s.container_statuses.iter().flatten())
                .map(|c| c.restart_count)
        })
        .sum();
    let limit = s.backoff_limit.unwrap_or(6);
    if limit == 0 {
        restarts > 0
    } else {
        restarts >= limit
    }
}

fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> JobCondition {
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    JobCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: non_empty(reason),
        message: non_empty(message),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// Sets a condition (replacing one of its type when status, reason or message differ);
/// a False condition is never added where none was. Returns whether anything changed.
fn ensure_condition(
    list: &mut Vec<JobCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> bool {
    let want = new_condition(type_, status, reason, message, now);
    match list.iter_mut().find(|c| c.type_ == type_) {
        Some(c)
            if c.status != want.status || c.reason != want.reason || c.message != want.message =>
        {
            *c = want;
            true
        }
        Some(_) => false,
        None if status != "False" => {
            list.push(want);
            true
        }
        None => false,
    }
}

/// The first `count` indexes below `completions` that no active pod runs and that have not
/// succeeded.
fn first_pending_indexes(busy: &Intervals, count: usize, completions: usize) -> Vec<usize> {
    let mut out = Vec::with_capacity(count);
    let mut candidate = 0;
    for (first, last) in &busy.0 {
        while candidate < completions && out.len() < count && candidate < *first {
            out.push(candidate);
            candidate += 1;
        }
        candidate = candidate.max(last + 1);
    }
    while candidate < completions && out.len() < count {
        out.push(candidate);
        candidate += 1;
    }
    out
}

/// Active pods to delete, at least `at_least` of them: for Indexed jobs first every pod
/// without a valid index and all but the most useful pod of a repeated index, then the least
/// useful pods.
fn active_pods_for_removal(job: &Job, pods: &[Arc<Pod>], at_least: usize) -> Vec<Arc<Pod>> {
    let mut rm: Vec<Arc<Pod>> = Vec::new();
    let mut left: Vec<Arc<Pod>> = Vec::new();
    if is_indexed(job) {
        let completions = completions(job).unwrap_or(0).max(0) as usize;
        let mut by_index: BTreeMap<Option<usize>, Vec<Arc<Pod>>> = BTreeMap::new();
        for p in pods {
            let ix = completion_index(p).filter(|ix| *ix < completions);
            by_index.entry(ix).or_default().push(p.clone());
        }
        for (ix, mut group) in by_index {
            if ix.is_none() {
                rm.extend(group);
                continue;
            }
            group.sort_by(|a, b| pods::deletion_order(a, b));
            if let Some(keep) = group.pop() {
                left.push(keep);
            }
            rm.extend(group);
        }
    } else {
        left = pods.to_vec();
    }
    if rm.len() < at_least {
        left.sort_by(|a, b| pods::deletion_order(a, b));
        let n = (at_least - rm.len()).min(left.len());
        rm.extend(left.into_iter().take(n));
    }
    rm
}

/// Puts a pod from the template together: the tracking finalizer, and for an Indexed job its
/// index (annotation, label, hostname, and the JOB_COMPLETION_INDEX variable read from the
/// label through the downward API, as upstream does with PodIndexLabel).
fn pod_for(job: &Job, owner: OwnerReference, index: Option<usize>) -> Pod {
    let s = spec(job);
    let name = job.metadata.name.clone().unwrap_or_default();
    let mut template = s.template.clone();
    let meta = template.metadata.get_or_insert_default();
    let finalizers = meta.finalizers.get_or_insert_default();
    if !finalizers.iter().any(|f| f == TRACKING_FINALIZER) {
        finalizers.push(TRACKING_FINALIZER.to_string());
    }
    let mut prefix = format!("{name}-");
    if let Some(ix) = index {
        meta.annotations
            .get_or_insert_default()
            .insert(COMPLETION_INDEX.into(), ix.to_string());
        meta.labels
            .get_or_insert_default()
            .insert(COMPLETION_INDEX.into(), ix.to_string());
        let suffix = format!("-{ix}-");
        let keep = MAX_GENERATE_NAME.saturating_sub(suffix.len());
        prefix = format!("{}{suffix}", name.chars().take(keep).collect::<String>());
        if let Some(ps) = template.spec.as_mut() {
            if ps.hostname.is_none() {
                ps.hostname = Some(format!("{name}-{ix}"));
            }
            let env = EnvVar {
                name: COMPLETION_INDEX_ENV.into(),
                value: None,
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        api_version: None,
                        field_path: format!("metadata.labels['{COMPLETION_INDEX}']"),
                    }),
                    ..Default::default()
                }),
            };
            for c in ps
                .init_containers
                .iter_mut()
                .flatten()
                .chain(ps.containers.iter_mut())
            {
                let vars = c.env.get_or_insert_default();
                if !vars.iter().any(|v| v.name == COMPLETION_INDEX_ENV) {
                    vars.push(env.clone());
                }
            }
        }
    }
    pods::from_template(&template, &prefix, owner)
}

/// What one sync learned about a job and its pods.
struct Ctx {
    pods: Vec<Arc<Pod>>,
    active: Vec<Arc<Pod>>,
    succeeded: i32,
    uncounted_succeeded: HashSet<String>,
    uncounted_failed: HashSet<String>,
    expected_rm: HashSet<String>,
    prev_succeeded_indexes: Intervals,
    succeeded_indexes: Intervals,
    /// With backoffLimitPerIndex: the failed indexes, and per index to retry its last
    /// failed pod.
    failed_indexes: Option<Intervals>,
    delayed: BTreeMap<usize, Arc<Pod>>,
    backoff: Backoff,
    finished: Option<JobCondition>,
    terminating: i32,
    ready: i32,
}

impl JobController {
    pub fn new(client: Client, jobs: Informer<Job>, pods: Informer<Pod>) -> Arc<Self> {
        let c = Arc::new(JobController {
            recorder: Recorder::new(client.clone(), "job-controller"),
            client,
            jobs,
            pods,
            queue: WorkQueue::new(),
            orphans: WorkQueue::new(),
            expectations: Expectations::default(),
            finalizers: FinalizerExpectations::default(),
            backoffs: Mutex::new(HashMap::new()),
        });
        let me = c.clone();
        c.jobs.on_change(move |ch: &Change<Job>| {
            if let Some(job) = ch.object() {
                me.queue.add(key_of(job.as_ref()));
                // A finished or deleted job leaves no pod held by its finalizer.
                if ch.new.is_none() || finished(job).is_some() {
                    me.cleanup_pod_finalizers(job);
                }
            }
        });
        let me = c.clone();
        c.pods.on_change(move |ch: &Change<Pod>| me.pod_changed(ch));
        c
    }

    pub async fn run(self: Arc<Self>, workers: usize) {
        let caches: [&dyn HasSynced; 2] = [&self.jobs, &self.pods];
        let orphans = Arc::new(OrphanPods(self.clone()));
        tokio::join!(
            reconciler::run(&orphans, &self.orphans, &caches, 1),
            reconciler::run(&self, &self.queue, &caches, workers),
        );
    }

    /// The job a controller reference names, if it is in the cache with that uid.
    fn resolve(&self, ns: Option<&str>, r: &OwnerReference) -> Option<Arc<Job>> {
        if r.kind != "Job" {
            return None;
        }
        let job = self.jobs.get(ns, &r.name)?;
        (job.metadata.uid.as_deref() == Some(r.uid.as_str())).then_some(job)
    }

    fn matching_jobs(&self, pod: &Pod) -> Vec<String> {
        let labels = pods::labels(&pod.metadata);
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        self.jobs
            .list_namespace(ns)
            .iter()
            .filter(|j| {
                j.spec
                    .as_ref()
                    .and_then(|s| s.selector.as_ref())
                    .is_some_and(|sel| pods::selects_some(sel, &labels))
            })
            .map(|j| key_of(j.as_ref()))
            .collect()
    }

    fn pod_changed(&self, ch: &Change<Pod>) {
        match (&ch.old, &ch.new) {
            (None, Some(pod)) => self.pod_added(pod),
            (Some(old), Some(new)) => self.pod_updated(old, new),
            (Some(old), None) => self.pod_deleted(old, true),
            (None, None) => {}
        }
    }

    fn pod_added(&self, pod: &Pod) {
        if pod.metadata.deletion_timestamp.is_some() {
            return self.pod_deleted(pod, false);
        }
        if let Some(r) = controller_of(pod) {
            if let Some(job) = self.resolve(pod.metadata.namespace.as_deref(), r) {
                let key = key_of(job.as_ref());
                self.expectations.creation_observed(&key);
                self.queue.add(key);
            }
            return;
        }
        if has_finalizer(pod) {
            self.orphans.add(key_of(pod));
        }
        for key in self.matching_jobs(pod) {
            self.queue.add(key);
        }
    }

    fn pod_updated(&self, old: &Pod, new: &Pod) {
        if new.metadata.deletion_timestamp.is_some() {
            // Being deleted counts as deleted: a replacement need not wait for the kubelet.
            return self.pod_deleted(new, false);
        }
        let ns = new.metadata.namespace.as_deref();
        let finalizer_removed = !has_finalizer(new);
        let (old_ref, new_ref) = (controller_of(old), controller_of(new));
        if old_ref != new_ref
            && let Some(job) = old_ref.and_then(|r| self.resolve(ns, r))
        {
            let key = key_of(job.as_ref());
            if finalizer_removed {
                self.finalizers.observed(&key, &uid(new));
            }
            self.queue.add(key);
        }
        if let Some(r) = new_ref {
            if let Some(job) = self.resolve(ns, r) {
                let key = key_of(job.as_ref());
                if finalizer_removed {
                    self.finalizers.observed(&key, &uid(new));
                }
                self.queue.add(key);
            }
            return;
        }
        if has_finalizer(new) {
            self.orphans.add(key_of(new));
        }
        if old.metadata.labels != new.metadata.labels || old_ref != new_ref {
            for key in self.matching_jobs(new) {
                self.queue.add(key);
            }
        }
    }

    /// `gone`: removed from the store (not merely marked for deletion).
    fn pod_deleted(&self, pod: &Pod, gone: bool) {
        let held = has_finalizer(pod);
        let Some(r) = controller_of(pod) else {
            if held {
                self.orphans.add(key_of(pod));
            }
            return;
        };
        let job = self.resolve(pod.metadata.namespace.as_deref(), r);
        let Some(job) = job.filter(|j| finished(j).is_none()) else {
            // No sync will count this pod: just let it go.
            if held {
                self.orphans.add(key_of(pod));
            }
            return;
        };
        let key = key_of(job.as_ref());
        self.expectations.deletion_observed(&key, &uid(pod));
        if gone || !held {
            self.finalizers.observed(&key, &uid(pod));
        }
        self.queue.add(key);
    }

    fn cleanup_pod_finalizers(&self, job: &Job) {
        let ns = job.metadata.namespace.as_deref().unwrap_or_default();
        let job_uid = job.metadata.uid.as_deref().unwrap_or_default();
        for pod in self.pods.list_namespace(ns) {
            if has_finalizer(&pod) && controller_of(pod.as_ref()).is_some_and(|r| r.uid == job_uid)
            {
                self.orphans.add(key_of(pod.as_ref()));
            }
        }
    }

    /// Removes the tracking finalizer from a pod no unfinished job of ours controls.
    async fn sync_orphan_pod(&self, key: &str) -> anyhow::Result<()> {
        let Some(pod) = self.pods.get_key(key) else {
            return Ok(());
        };
        if let Some(r) = controller_of(pod.as_ref()) {
            if r.kind != "Job" || r.api_version != "batch/v1" {
                return Ok(());
            }
            if let Some(job) = self.resolve(pod.metadata.namespace.as_deref(), r)
                && (managed_elsewhere(&job) || finished(&job).is_none())
            {
                return Ok(());
            }
        }
        if !has_finalizer(&pod) {
            return Ok(());
        }
        let api: Api<Pod> = Api::namespaced(
            self.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or_default(),
        );
        match remove_finalizer(&api, &pod).await {
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            r => r
                .map(|_| ())
                .context("removing the job tracking finalizer from an orphan pod"),
        }
    }

    fn backoff_of(&self, key: &str) -> Backoff {
        let b = self.backoffs.lock().unwrap_or_else(|e| e.into_inner());
        b.get(key).copied().unwrap_or_default()
    }

    fn set_backoff(&self, key: &str, record: Option<Backoff>) {
        let mut b = self.backoffs.lock().unwrap_or_else(|e| e.into_inner());
        match record {
            Some(r) => b.insert(key.to_string(), r),
            None => b.remove(key),
        };
    }
}

impl Reconciler for JobController {
    const NAME: &'static str = "job";

    async fn reconcile(self: &Arc<Self>, key: &str) -> anyhow::Result<Action> {
        let Some(shared) = self.jobs.get_key(key) else {
            self.expectations.forget(key);
            self.finalizers.forget(key);
            self.set_backoff(key, None);
            return Ok(Action::Done);
        };
        if managed_elsewhere(&shared) {
            return Ok(Action::Done);
        }
        if finished(&shared).is_some() {
            self.set_backoff(key, None);
            return Ok(Action::Done);
        }
        let mode = shared
            .spec
            .as_ref()
            .and_then(|s| s.completion_mode.as_deref());
        if !matches!(mode, None | Some("NonIndexed") | Some("Indexed")) {
            self.recorder.record(
                shared.as_ref(),
                true,
                "UnknownCompletionMode",
                "Skipped Job sync because completion mode is unknown".into(),
            );
            return Ok(Action::Done);
        }
        let now = Timestamp::now();
        let mut job = (*shared).clone();
        let old_status = serde_json::to_value(&job.status).unwrap_or_default();
        let status = job.status.get_or_insert_default();
        let uncounted = status.uncounted_terminated_pods.get_or_insert_default();
        let uncounted_succeeded: HashSet<String> =
            uncounted.succeeded.iter().flatten().cloned().collect();
        let uncounted_failed: HashSet<String> =
            uncounted.failed.iter().flatten().cloned().collect();

        // Expectations first: a pod created after this check waits for the next sync.
        let satisfied = self.expectations.satisfied(key);
        let all = self.claim_pods(&job).await?;
        let active: Vec<Arc<Pod>> = all.iter().filter(|p| pods::is_active(p)).cloned().collect();
        let expected_rm = self.finalizers.expected(key);
        let s = spec(&job);
        let completions_n = s.completions.unwrap_or(0).max(0) as usize;
        let indexed = is_indexed(&job);
        let only_failed = only_replace_failed(&job);

        // Finished pods not yet counted anywhere.
        let fresh = |p: &&Arc<Pod>| {
            let u = uid(p);
            has_finalizer(p)
                && !expected_rm.contains(&u)
                && (!indexed || completion_index(p).is_some_and(|ix| ix < completions_n))
        };
        let new_succeeded: Vec<Arc<Pod>> = all
            .iter()
            .filter(|p| fresh(p))
            .filter(|p| !uncounted_succeeded.contains(&uid(p)) && phase(p) == Some("Succeeded"))
            .cloned()
            .collect();
        let new_failed: Vec<Arc<Pod>> = all
            .iter()
            .filter(|p| fresh(p))
            .filter(|p| !uncounted_failed.contains(&uid(p)) && pod_failed(p, only_failed))
            .cloned()
            .collect();
        let is_suspended = suspended(&job);
        let counted_new_failed = counted_failures(&job, &new_failed) as i32;
        let status = job.status.get_or_insert_default();
        let mut succeeded = status.succeeded.unwrap_or(0)
            + new_succeeded.len() as i32
            + uncounted_succeeded.len() as i32;
        // Failures a pod failure policy ignores do not count toward backoffLimit.
        let failed =
            status.failed.unwrap_or(0) + counted_new_failed + uncounted_failed.len() as i32;
        if status.start_time.is_none() && !is_suspended {
            status.start_time = Some(Time(now));
        }
        let backoff = self.backoff_of(key).after(&new_succeeded, &new_failed);

        let mut finished_cond = condition(&job, SUCCESS_CRITERIA_MET).cloned();
        if finished_cond.is_none()
            && let Some(target) = condition(&job, FAILURE_TARGET)
        {
            finished_cond = Some(new_condition(
                FAILED,
                "True",
                target.reason.as_deref().unwrap_or_default(),
                target.message.as_deref().unwrap_or_default(),
                now,
            ));
        } else if finished_cond.is_none()
            && let Some(message) = fail_job_message(&job, &all)
        {
            // The interim FailureTarget records why before the pods can go.
            finished_cond = Some(new_condition(
                FAILURE_TARGET,
                "True",
                "PodFailurePolicy",
                &message,
                now,
            ));
        }
        if finished_cond.is_none() {
            let limit = s.backoff_limit.unwrap_or(6);
            if failed > limit || past_backoff_limit_on_failure(&job, &all) {
                finished_cond = Some(new_condition(
                    FAILURE_TARGET,
                    "True",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                    now,
                ));
            } else if let Some(left) = self.deadline_left(&job, now) {
                if left.is_zero() {
                    finished_cond = Some(new_condition(
                        FAILURE_TARGET,
                        "True",
                        "DeadlineExceeded",
                        "Job was active longer than specified deadline",
                        now,
                    ));
                } else {
                    tracing::debug!(
                        job = key,
                        ?left,
                        "job has activeDeadlineSeconds; syncing again then"
                    );
                    self.queue.add_after(key.to_string(), left);
                }
            }
        }

        let (mut prev_succeeded_indexes, mut succeeded_indexes) =
            (Intervals::default(), Intervals::default());
        let mut failed_indexes_now = None;
        let mut delayed = BTreeMap::new();
        if indexed {
            let status = job.status.get_or_insert_default();
            prev_succeeded_indexes = Intervals::parse(
                status.completed_indexes.as_deref().unwrap_or_default(),
                completions_n,
            );
            let mut new: Vec<usize> = all
                .iter()
                .filter(|p| phase(p) == Some("Succeeded") && has_finalizer(p))
                .filter_map(|p| completion_index(p))
                .filter(|ix| *ix < completions_n)
                .collect();
            new.sort_unstable();
            new.dedup();
            succeeded_indexes = prev_succeeded_indexes.with(&new);
            succeeded = succeeded_indexes.total() as i32;
            if has_backoff_limit_per_index(&job) {
                let failed_ix = failed_indexes(&job, &all, completions_n);
                if finished_cond.is_none() {
                    if s.max_failed_indexes
                        .is_some_and(|m| failed_ix.total() > m.max(0) as usize)
                    {
                        finished_cond = Some(new_condition(
                            FAILURE_TARGET,
                            "True",
                            "MaxFailedIndexesExceeded",
                            "Job has exceeded the specified maximal number of failed indexes",
                            now,
                        ));
                    } else if failed_ix.total() > 0
                        && failed_ix.total() + succeeded_indexes.total() >= completions_n
                    {
                        finished_cond = Some(new_condition(
                            FAILURE_TARGET,
                            "True",
                            "FailedIndexes",
                            "Job has failed indexes",
                            now,
                        ));
                    }
                }
                delayed = pods_with_delayed_deletion(
                    &job,
                    &all,
                    &active,
                    &succeeded_indexes,
                    &failed_ix,
                    completions_n,
                );
                failed_indexes_now = Some(failed_ix);
            }
            if finished_cond.is_none()
                && let Some(message) = match_success_policy(&job, completions_n, &succeeded_indexes)
            {
                finished_cond = Some(new_condition(
                    SUCCESS_CRITERIA_MET,
                    "True",
                    "SuccessPolicy",
                    &message,
                    now,
                ));
            }
        }

        let mut ctx = Ctx {
            ready: active.iter().filter(|p| pods::is_ready(p)).count() as i32,
            terminating: all.iter().filter(|p| is_terminating(p)).count() as i32,
            pods: all,
            active,
            succeeded,
            uncounted_succeeded,
            uncounted_failed,
            expected_rm,
            prev_succeeded_indexes,
            succeeded_indexes,
            failed_indexes: failed_indexes_now,
            delayed,
            backoff,
            finished: finished_cond,
        };
        let mut active_n = ctx.active.len() as i32;
        let mut manage_err = None;
        if ctx.finished.is_some() {
            let (deleted_ready, deleted, err) = self.delete_active_pods(&job, &ctx.active).await;
            if deleted != active_n || !satisfied {
                // Not finished while pods may remain that the cache does not show yet.
                ctx.finished = None;
            }
            active_n -= deleted;
            ctx.terminating += deleted;
            ctx.ready -= deleted_ready;
            manage_err = err;
        } else {
            let mut managed = false;
            if satisfied && job.metadata.deletion_timestamp.is_none() {
                let (n, err) = self.manage_job(key, &job, &mut ctx, now).await;
                active_n = n;
                manage_err = err;
                managed = true;
            }
            let complete = match s.completions {
                // A work queue: done once any pod succeeded and the rest have ended.
                None => ctx.succeeded > 0 && active_n == 0,
                Some(c) => ctx.succeeded >= c && active_n == 0,
            };
            let mut event = None;
            let status = job.status.get_or_insert_default();
            let conds = status.conditions.get_or_insert_default();
            if complete {
                ctx.finished = Some(new_condition(
                    SUCCESS_CRITERIA_MET,
                    "True",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                    now,
                ));
            } else if managed {
                if is_suspended {
                    if ensure_condition(
                        conds,
                        SUSPENDED,
                        "True",
                        "JobSuspended",
                        "Job suspended",
                        now,
                    ) {
                        event = Some(("Suspended", "Job suspended"));
                    }
                } else if ensure_condition(
                    conds,
                    SUSPENDED,
                    "False",
                    "JobResumed",
                    "Job resumed",
                    now,
                ) {
                    event = Some(("Resumed", "Job resumed"));
                    // activeDeadlineSeconds counts continuous activity: resuming restarts it.
                    status.start_time = Some(Time(now));
                }
            }
            if status.conditions.as_ref().is_some_and(Vec::is_empty) {
                status.conditions = None;
            }
            if let Some((reason, message)) = event {
                self.recorder.record(&job, false, reason, message.into());
            }
        }
        let status = job.status.get_or_insert_default();
        status.active = (active_n > 0).then_some(active_n);
        status.ready = Some(ctx.ready.max(0));
        status.terminating = Some(ctx.terminating.max(0));
        let needs_flush = serde_json::to_value(&job.status).unwrap_or_default() != old_status;
        self.track_and_remove_finalizers(key, job, &ctx, needs_flush, now)
            .await
            .context("tracking status")?;
        match manage_err {
            Some(e) => Err(e),
            None => Ok(Action::Done),
        }
    }
}

/// The orphan pod queue (upstream's orphanQueue): a pod whose tracking finalizer no
/// unfinished job of ours holds any more has it removed.
struct OrphanPods(Arc<JobController>);

impl Reconciler for OrphanPods {
    const NAME: &'static str = "job-orphan-pod";

    async fn reconcile(self: &Arc<Self>, key: &str) -> anyhow::Result<Action> {
        self.0.sync_orphan_pod(key).await?;
        Ok(Action::Done)
    }
}

impl JobController {
    /// Time left before activeDeadlineSeconds passes (`None` without a deadline or while
    /// suspended).
    fn deadline_left(&self, job: &Job, now: Timestamp) -> Option<Duration> {
        let ads = job.spec.as_ref()?.active_deadline_seconds?;
        let start = job.status.as_ref()?.start_time.as_ref()?.0;
        if suspended(job) {
            return None;
        }
        let elapsed = Duration::try_from(now.duration_since(start)).unwrap_or(Duration::ZERO);
        Some(Duration::from_secs(ads.max(0) as u64).saturating_sub(elapsed))
    }

    /// The pods this job controls, after adopting matching orphans (with the tracking
    /// finalizer) and releasing pods that stopped matching (Kubernetes' ControllerRefManager).
    async fn claim_pods(&self, job: &Job) -> anyhow::Result<Vec<Arc<Pod>>> {
        let ns = job.metadata.namespace.as_deref().unwrap_or_default();
        let job_uid = job.metadata.uid.clone().unwrap_or_default();
        let selector = job
            .spec
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), ns);
        let name = job.metadata.name.clone().unwrap_or_default();
        let mut manager = ControllerRefManager::new(
            &job.metadata,
            pods::controller_ref("batch/v1", "Job", &job.metadata),
        );
        // Adopted pods are tracked by the Job's finalizer; released ones no longer are.
        manager.adopt_metadata = Some(json!({"finalizers": [TRACKING_FINALIZER]}));
        manager.release_metadata =
            Some(json!({"$deleteFromPrimitiveList/finalizers": [TRACKING_FINALIZER]}));
        manager
            .claim(
                &api,
                self.pods.list_namespace(ns),
                |p| pods::selects_some(&selector, &pods::labels(&p.metadata)),
                || owner_not_deleting(&jobs, &name, &job_uid),
            )
            .await
    }

    /// Keeps the right number of pods running; returns the active count after its changes.
    async fn manage_job(
        &self,
        key: &str,
        job: &Job,
        ctx: &mut Ctx,
        now: Timestamp,
    ) -> (i32, Option<anyhow::Error>) {
        let mut active = ctx.active.len() as i32;
        let s = spec(job);
        let parallelism = s.parallelism.unwrap_or(1).max(0);
        if suspended(job) {
            let victims = active_pods_for_removal(job, &ctx.active, ctx.active.len());
            tracing::debug!(
                job = key,
                active,
                "deleting all active pods of a suspended job"
            );
            let (ready, removed, err) = self.delete_job_pods(key, job, &victims).await;
            ctx.terminating += removed;
            ctx.ready -= ready;
            return (active - removed, err);
        }
        let want = match s.completions {
            None if ctx.succeeded > 0 => active,
            None => parallelism,
            Some(c) => (c - ctx.succeeded).clamp(0, parallelism),
        };
        let surplus = (active - want).max(0) as usize;
        let mut victims = active_pods_for_removal(job, &ctx.active, surplus);
        victims.truncate(MAX_PER_SYNC);
        if !victims.is_empty() {
            // Deleting and creating in one sync are never mixed; deletion goes first.
            let (ready, removed, err) = self.delete_job_pods(key, job, &victims).await;
            ctx.terminating += removed;
            ctx.ready -= ready;
            return (active - removed, err);
        }
        let terminating = if only_replace_failed(job) {
            ctx.terminating
        } else {
            0
        };
        let mut diff = want - terminating - active;
        if diff <= 0 {
            return (active, None);
        }
        // With backoffLimitPerIndex each index backs off on its own (below).
        let wait = if has_backoff_limit_per_index(job) {
            Duration::ZERO
        } else {
            ctx.backoff.remaining(now)
        };
        if !wait.is_zero() {
            tracing::debug!(
                job = key,
                ?wait,
                "pod failure back-off; creating pods later"
            );
            self.queue.add_after(key.to_string(), wait.max(MIN_REQUEUE));
            return (active, None);
        }
        diff = diff.min(MAX_PER_SYNC as i32);
        let mut indexes: Vec<Option<usize>> = vec![None; diff as usize];
        if is_indexed(job) {
            let completions_n = s.completions.unwrap_or(0).max(0) as usize;
            let mut busy: Vec<usize> = ctx
                .active
                .iter()
                .filter_map(|p| completion_index(p))
                .collect();
            if only_replace_failed(job) {
                busy.extend(
                    ctx.pods
                        .iter()
                        .filter(|p| is_terminating(p))
                        .filter_map(|p| completion_index(p)),
                );
            }
            busy.sort_unstable();
            busy.dedup();
            let mut busy = ctx.succeeded_indexes.with(&busy);
            if let Some(failed) = &ctx.failed_indexes {
                busy = busy.merge(failed);
            }
            let mut pending = first_pending_indexes(&busy, diff as usize, completions_n);
            if has_backoff_limit_per_index(job) {
                let waits: Vec<(usize, Duration)> = pending
                    .iter()
                    .map(|ix| {
                        let last = ctx.delayed.get(ix).map(|p| p.as_ref());
                        (*ix, index_backoff_remaining(last, now))
                    })
                    .collect();
                pending = waits
                    .iter()
                    .filter(|(_, w)| w.is_zero())
                    .map(|(ix, _)| *ix)
                    .collect();
                if pending.is_empty()
                    && let Some(min) = waits.iter().map(|(_, w)| *w).min()
                {
                    tracing::debug!(job = key, wait = ?min, "index failure back-off; creating pods later");
                    self.queue.add_after(key.to_string(), min.max(MIN_REQUEUE));
                    return (active, None);
                }
            }
            indexes = pending.into_iter().map(Some).collect();
        }
        let n = indexes.len();
        if n == 0 {
            return (active, None);
        }
        self.expectations.expect(key, n as i64, []);
        let ns = job.metadata.namespace.as_deref().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let owner = pods::controller_ref("batch/v1", "Job", &job.metadata);
        // Slow start (1, 2, 4, ...): a create that fails (quota, an invalid template) fails
        // a few pods, not hundreds.
        let (mut done, mut batch) = (0usize, 1usize);
        let mut failure: Option<kube::Error> = None;
        while done < n && failure.is_none() {
            let size = batch.min(n - done);
            let pp = PostParams::default();
            let wanted: Vec<Pod> = indexes[done..done + size]
                .iter()
                .map(|ix| {
                    let mut pod = pod_for(job, owner.clone(), *ix);
                    if let Some(ix) = ix
                        && has_backoff_limit_per_index(job)
                    {
                        // The index's failures so far travel with its next pod.
                        let replaced = ctx.delayed.get(ix).map(|p| p.as_ref());
                        let (failures, ignored) = new_index_failure_counts(job, replaced);
                        let a = pod.metadata.annotations.get_or_insert_default();
                        a.insert(INDEX_FAILURE_COUNT.into(), failures.to_string());
                        if ignored > 0 {
                            a.insert(INDEX_IGNORED_FAILURE_COUNT.into(), ignored.to_string());
                        }
                    }
                    pod
                })
                .collect();
            let results =
                futures::future::join_all(wanted.iter().map(|p| api.create(&pp, p))).await;
            for r in results {
                match r {
                    Ok(p) => {
                        active += 1;
                        self.recorder.record(
                            job,
                            false,
                            "SuccessfulCreate",
                            format!("Created pod: {}", p.metadata.name.unwrap_or_default()),
                        );
                    }
                    Err(e) => {
                        self.expectations.creation_observed(key);
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
        match failure {
            Some(e) => {
                self.recorder
                    .record(job, true, "FailedCreate", format!("Error creating: {e}"));
                (active, Some(anyhow::Error::new(e).context("creating pods")))
            }
            None => (active, None),
        }
    }

    /// Deletes pods the job no longer wants (too many, or suspended): the tracking finalizer
    /// goes first, as such pods are not counted as failed. Returns (ready deleted, deleted,
    /// error).
    async fn delete_job_pods(
        &self,
        key: &str,
        job: &Job,
        victims: &[Arc<Pod>],
    ) -> (i32, i32, Option<anyhow::Error>) {
        self.expectations
            .expect(key, 0, victims.iter().map(|p| uid(p)));
        let ns = job.metadata.namespace.as_deref().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let results = futures::future::join_all(victims.iter().map(|p| {
            let api = api.clone();
            async move {
                if has_finalizer(p) {
                    match remove_finalizer(&api, p).await {
                        Ok(_) => {}
                        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(false),
                        Err(e) => return Err(e),
                    }
                }
                let name = p.metadata.name.as_deref().unwrap_or_default();
                match api.delete(name, &DeleteParams::default()).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
                    Err(e) => Err(e),
                }
            }
        }))
        .await;
        let (mut ready, mut deleted, mut failure) = (0, 0, None);
        for (pod, r) in victims.iter().zip(results) {
            match r {
                Ok(recorded) => {
                    deleted += 1;
                    if pods::is_ready(pod) {
                        ready += 1;
                    }
                    if recorded {
                        self.recorder.record(
                            job,
                            false,
                            "SuccessfulDelete",
                            format!(
                                "Deleted pod: {}",
                                pod.metadata.name.as_deref().unwrap_or_default()
                            ),
                        );
                    } else {
                        self.expectations.deletion_observed(key, &uid(pod));
                    }
                }
                Err(e) => {
                    self.expectations.deletion_observed(key, &uid(pod));
                    self.recorder
                        .record(job, true, "FailedDelete", format!("Error deleting: {e}"));
                    failure.get_or_insert(anyhow::Error::new(e).context("deleting pods"));
                }
            }
        }
        (ready, deleted, failure)
    }

    /// Deletes the active pods of a finishing job, keeping their finalizers: they are counted
    /// (as failed) once the status says the job is finishing.
    async fn delete_active_pods(
        &self,
        job: &Job,
        active: &[Arc<Pod>],
    ) -> (i32, i32, Option<anyhow::Error>) {
        let ns = job.metadata.namespace.as_deref().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let dp = DeleteParams::default();
        let results = futures::future::join_all(
            active
                .iter()
                .map(|p| api.delete(p.metadata.name.as_deref().unwrap_or_default(), &dp)),
        )
        .await;
        let (mut ready, mut deleted, mut failure) = (0, 0, None);
        for (pod, r) in active.iter().zip(results) {
            match r {
                r if r.as_ref().is_ok() || is_not_found(r.as_ref().err()) => {
                    deleted += 1;
                    if pods::is_ready(pod) {
                        ready += 1;
                    }
                    self.recorder.record(
                        job,
                        false,
                        "SuccessfulDelete",
                        format!(
                            "Deleted pod: {}",
                            pod.metadata.name.as_deref().unwrap_or_default()
                        ),
                    );
                }
                Ok(_) => {}
                Err(e) => {
                    failure.get_or_insert(anyhow::Error::new(e).context("deleting active pods"));
                }
            }
        }
        (ready, deleted, failure)
    }

    async fn update_status(&self, job: &Job) -> anyhow::Result<Job> {
        let ns = job.metadata.namespace.as_deref().unwrap_or_default();
        let api: Api<Job> = Api::namespaced(self.client.clone(), ns);
        let name = job.metadata.name.as_deref().unwrap_or_default();
        let mut job = job.clone();
        if let Some(s) = job.status.as_mut()
            && let Some(u) = s.uncounted_terminated_pods.as_mut()
        {
            for l in [&mut u.succeeded, &mut u.failed] {
                if l.as_ref().is_some_and(Vec::is_empty) {
                    *l = None;
                }
            }
        }
        api.replace_status(name, &PostParams::default(), &job)
            .await
            .context("updating job status")
    }

    fn record_finished(&self, job: &Job, c: &JobCondition) {
        if c.type_ == COMPLETE {
            let succeeded = job.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0);
            if completions(job).is_some_and(|n| succeeded > n) {
                self.recorder.record(
                    job,
                    true,
                    "TooManySucceededPods",
                    "Too many succeeded pods running after completion count reached".into(),
                );
            }
            self.recorder
                .record(job, false, "Completed", "Job completed".into());
        } else {
            self.recorder.record(
                job,
                true,
                c.reason.as_deref().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            );
        }
    }
}

/// Whether `spec.managedBy` hands the job to another controller.
fn managed_elsewhere(job: &Job) -> bool {
    job.spec
        .as_ref()
        .and_then(|s| s.managed_by.as_deref())
        .is_some_and(|m| m != JOB_CONTROLLER)
}

fn is_not_found(e: Option<&kube::Error>) -> bool {
    matches!(e, Some(kube::Error::Api(e)) if e.code == 404)
}
