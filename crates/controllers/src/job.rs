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
use client_go::informer::{Change, Informer, controller_of, key_of};
use client_go::queue::{WorkQueue, run_workers};

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

/// Pods whose tracking finalizer the controller removed and has not yet seen gone, per job:
/// until it has, their outcome is already in the status and must not be counted again.
#[derive(Default)]
struct FinalizerExpectations(Mutex<HashMap<String, HashSet<String>>>);

impl FinalizerExpectations {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashSet<String>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn expect(&self, job: &str, uids: impl IntoIterator<Item = String>) {
        self.lock().entry(job.to_string()).or_default().extend(uids);
    }
    fn observed(&self, job: &str, uid: &str) {
        let mut m = self.lock();
        if let Some(s) = m.get_mut(job) {
            s.remove(uid);
            if s.is_empty() {
                m.remove(job);
            }
        }
    }
    fn expected(&self, job: &str) -> HashSet<String> {
        self.lock().get(job).cloned().unwrap_or_default()
    }
    fn forget(&self, job: &str) {
        self.lock().remove(job);
    }
}

/// Consecutive pod failures since the last success, and when the last one happened.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Backoff {
    failures: u32,
    last_failure: Option<Timestamp>,
}

impl Backoff {
    /// The record after the pods that finished since the last one: a success resets the
    /// count to the failures that came after it.
    fn after(mut self, succeeded: &[Arc<Pod>], failed: &[Arc<Pod>]) -> Backoff {
        let mut failed_times: Vec<Timestamp> = failed.iter().map(|p| finished_time(p)).collect();
        failed_times.sort();
        let last_success = succeeded.iter().map(|p| finished_time(p)).max();
        match last_success {
            None => {
                if let Some(last) = failed_times.last() {
                    self.failures += failed_times.len() as u32;
                    self.last_failure = Some(*last);
                }
            }
            Some(success) => {
                let after: Vec<&Timestamp> =
                    failed_times.iter().filter(|t| **t > success).collect();
                self.failures = after.len() as u32;
                self.last_failure = after.last().map(|t| **t);
            }
        }
        self
    }

    /// How long pod creation still waits: 10 s after the first failure, doubling per further
    /// consecutive failure, capped.
    fn remaining(&self, now: Timestamp) -> Duration {
        let Some(last) = self.last_failure else {
            return Duration::ZERO;
        };
        if self.failures == 0 {
            return Duration::ZERO;
        }
        let mut wait = POD_FAILURE_BACKOFF;
        for _ in 1..self.failures {
            wait = wait.saturating_mul(2);
            if wait >= MAX_POD_FAILURE_BACKOFF {
                wait = MAX_POD_FAILURE_BACKOFF;
                break;
            }
        }
        let elapsed = now.duration_since(last);
        let elapsed = Duration::try_from(elapsed).unwrap_or(Duration::ZERO);
        wait.saturating_sub(elapsed)
    }
}

/// When a pod ended: its containers' last finish, else when it stopped being ready, else its
/// deletion (less the grace period), else its creation.
fn finished_time(pod: &Pod) -> Timestamp {
    let status = pod.status.as_ref();
    let containers = status.and_then(|s| s.container_statuses.as_ref());
    if let Some(cs) = containers.filter(|cs| !cs.is_empty()) {
        let finished: Option<Vec<Timestamp>> = cs
            .iter()
            .map(|c| {
                c.state
                    .as_ref()?
                    .terminated
                    .as_ref()?
                    .finished_at
                    .as_ref()
                    .map(|t| t.0)
            })
            .collect();
        if let Some(t) = finished.and_then(|f| f.into_iter().max()) {
            return t;
        }
    }
    if let Some(t) = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.type_ == "Ready" && c.status == "False")
        })
        .and_then(|c| c.last_transition_time.as_ref())
    {
        return t.0;
    }
    if let Some(t) = &pod.metadata.deletion_timestamp {
        let grace = pod.metadata.deletion_grace_period_seconds.unwrap_or(0);
        return t
            .0
            .checked_sub(SignedDuration::from_secs(grace))
            .unwrap_or(t.0);
    }
    pod.metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Annotations on an index's pods with the failures of that index before them (upstream's
/// JobIndexFailureCountAnnotation / JobIndexIgnoredFailureCountAnnotation).
pub const INDEX_FAILURE_COUNT: &str = "batch.kubernetes.io/job-index-failure-count";
pub const INDEX_IGNORED_FAILURE_COUNT: &str = "batch.kubernetes.io/job-index-ignored-failure-count";

/// The action of the pod failure policy rule a failed pod matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PolicyAction {
    FailJob,
    FailIndex,
    Ignore,
    Count,
}

/// Upstream's matchPodFailurePolicy: the first rule the failed pod matches decides. Returns
/// the job failure message (FailJob), whether the failure counts toward the backoff limits
/// (not for Ignore), and the action.
fn match_pod_failure_policy(job: &Job, pod: &Pod) -> (Option<String>, bool, Option<PolicyAction>) {
    let Some(policy) = job
        .spec
        .as_ref()
        .and_then(|s| s.pod_failure_policy.as_ref())
    else {
        return (None, true, None);
    };
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    for (i, rule) in policy.rules.iter().enumerate() {
        let matched: Option<String> = if let Some(req) = &rule.on_exit_codes {
            let matches = |cs: &Option<Vec<k8s_openapi::api::core::v1::ContainerStatus>>| {
                cs.iter().flatten().find_map(|c| {
                    let code = c.state.as_ref()?.terminated.as_ref()?.exit_code;
                    if req.container_name.as_ref().is_some_and(|n| *n != c.name) || code == 0 {
                        return None;
                    }
                    let listed = req.values.contains(&code);
                    let hit = match req.operator.as_str() {
                        "In" => listed,
                        "NotIn" => !listed,
                        _ => false,
                    };
                    hit.then(|| {
                        format!(
                            "Container {} for pod {ns}/{name} failed with exit code {code} matching {} rule at index {i}",
                            c.name, rule.action
                        )
                    })
                })
            };
            matches(&status.container_statuses).or_else(|| matches(&status.init_container_statuses))
        } else if let Some(patterns) = &rule.on_pod_conditions {
            status.conditions.iter().flatten().find_map(|c| {
                patterns
                    .iter()
                    .any(|p| p.type_ == c.type_ && p.status == c.status)
                    .then(|| {
                        format!(
                            "Pod {ns}/{name} has condition {} matching {} rule at index {i}",
                            c.type_, rule.action
                        )
                    })
            })
        } else {
            None
        };
        let Some(message) = matched else { continue };
        match rule.action.as_str() {
            "Ignore" => return (None, false, Some(PolicyAction::Ignore)),
            "FailIndex" => return (None, true, Some(PolicyAction::FailIndex)),
            "Count" => return (None, true, Some(PolicyAction::Count)),
            "FailJob" => return (Some(message), true, Some(PolicyAction::FailJob)),
            // An action this controller does not know: the next rule may match.
            _ => {}
        }
    }
    (None, true, None)
}

/// The message of the first failed pod whose matching rule fails the whole job.
fn fail_job_message(job: &Job, all: &[Arc<Pod>]) -> Option<String> {
    job.spec.as_ref()?.pod_failure_policy.as_ref()?;
    let only_failed = only_replace_failed(job);
    all.iter()
        .filter(|p| pod_failed(p, only_failed))
        .find_map(|p| match_pod_failure_policy(job, p).0)
}

/// Failed pods that count toward the backoff limit (not ignored by the pod failure policy).
fn counted_failures(job: &Job, failed: &[Arc<Pod>]) -> usize {
    failed
        .iter()
        .filter(|p| match_pod_failure_policy(job, p).1)
        .count()
}

fn has_backoff_limit_per_index(job: &Job) -> bool {
    job.spec
        .as_ref()
        .and_then(|s| s.backoff_limit_per_index)
        .is_some()
}

fn annotation_count(pod: &Pod, key: &str) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .and_then(|v| v.parse::<i32>().ok())
        .filter(|n| *n >= 0)
        .unwrap_or(0)
}

/// Failures and ignored failures of the pod's index before it.
fn index_absolute_failure_count(pod: &Pod) -> i32 {
    annotation_count(pod, INDEX_FAILURE_COUNT) + annotation_count(pod, INDEX_IGNORED_FAILURE_COUNT)
}

/// Whether this failed pod fails its index: a FailIndex rule, or a counted failure past
/// backoffLimitPerIndex.
fn is_index_failed(job: &Job, pod: &Pod) -> bool {
    if !pod_failed(pod, only_replace_failed(job)) {
        return false;
    }
    let (_, counts, action) = match_pod_failure_policy(job, pod);
    if action == Some(PolicyAction::FailIndex) {
        return true;
    }
    let limit = spec(job).backoff_limit_per_index.unwrap_or(0);
    counts && annotation_count(pod, INDEX_FAILURE_COUNT) >= limit
}

/// `status.failedIndexes` with the indexes the pods now fail added.
fn failed_indexes(job: &Job, all: &[Arc<Pod>], completions: usize) -> Intervals {
    let prev = Intervals::parse(
        job.status
            .as_ref()
            .and_then(|s| s.failed_indexes.as_deref())
            .unwrap_or_default(),
        completions,
    );
    let mut new: Vec<usize> = all
        .iter()
        .filter(|p| is_index_failed(job, p))
        .filter_map(|p| completion_index(p))
        .filter(|ix| *ix < completions && !prev.has(*ix))
        .collect();
    new.sort_unstable();
    new.dedup();
    prev.with(&new)
}

/// Per index still to be retried, its last failed pod: kept (with its finalizer) until the
/// replacement exists, which takes its failure counts from it.
fn pods_with_delayed_deletion(
    job: &Job,
    all: &[Arc<Pod>],
    active: &[Arc<Pod>],
    succeeded: &Intervals,
    failed: &Intervals,
    completions: usize,
) -> BTreeMap<usize, Arc<Pod>> {
    let only_failed = only_replace_failed(job);
    let active_ix: HashSet<usize> = active.iter().filter_map(|p| completion_index(p)).collect();
    let mut out: BTreeMap<usize, Arc<Pod>> = BTreeMap::new();
    for p in all.iter().filter(|p| pod_failed(p, only_failed)) {
        let Some(ix) = completion_index(p).filter(|ix| *ix < completions) else {
            continue;
        };
        if succeeded.has(ix) || failed.has(ix) || active_ix.contains(&ix) {
            continue;
        }
        let replace = out.get(&ix).is_none_or(|last| {
            index_absolute_failure_count(last) <= index_absolute_failure_count(p)
                && finished_time(p) >= finished_time(last)
        });
        if replace {
            out.insert(ix, p.clone());
        }
    }
    out
}

/// The failure counts a replacement of `replaced` (the index's last failed pod) starts
/// with.
fn new_index_failure_counts(job: &Job, replaced: Option<&Pod>) -> (i32, i32) {
    let Some(p) = replaced else {
        return (0, 0);
    };
    let (mut failures, mut ignored) = (
        annotation_count(p, INDEX_FAILURE_COUNT),
        annotation_count(p, INDEX_IGNORED_FAILURE_COUNT),
    );
    if match_pod_failure_policy(job, p).1 {
        failures += 1;
    } else {
        ignored += 1;
    }
    (failures, ignored)
}

/// Back-off left before an index whose last pod failed is retried: 10 s doubling per
/// failure of the index, capped.
fn index_backoff_remaining(last_failed: Option<&Pod>, now: Timestamp) -> Duration {
    let Some(p) = last_failed else {
        return Duration::ZERO;
    };
    Backoff {
        failures: (index_absolute_failure_count(p) + 1) as u32,
        last_failure: Some(finished_time(p)),
    }
    .remaining(now)
}

/// Upstream's matchSuccessPolicy: the message of the first rule the succeeded indexes meet.
fn match_success_policy(job: &Job, completions: usize, succeeded: &Intervals) -> Option<String> {
    let policy = job.spec.as_ref()?.success_policy.as_ref()?;
    if succeeded.0.is_empty() {
        return None;
    }
    for (i, rule) in policy.rules.iter().enumerate() {
        let met = match (&rule.succeeded_indexes, rule.succeeded_count) {
            (Some(ixs), count) => {
                let required = Intervals::parse(ixs, completions);
                if required.0.is_empty() {
                    continue;
                }
                let contained = required.overlap(succeeded);
                contained == required.total()
                    || count.is_some_and(|c| contained >= c.max(0) as usize)
            }
            (None, Some(count)) => succeeded.total() >= count.max(0) as usize,
            (None, None) => false,
        };
        if met {
            return Some(format!("Matched rules at index {i}"));
        }
    }
    None
}

/// Completion indexes as `status.completedIndexes` writes them: "1,3-5,7" (runs of three or
/// more as ranges).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Intervals(Vec<(usize, usize)>);

impl Intervals {
    /// Parses the text form, ignoring what is corrupt and what is not below `completions`.
    pub fn parse(s: &str, completions: usize) -> Intervals {
        let mut out: Vec<(usize, usize)> = Vec::new();
        for part in s.split(',').filter(|p| !p.is_empty()) {
            let (first, last) = match part.split_once('-') {
                Some((a, b)) => (a.parse::<usize>(), b.parse::<usize>()),
                None => (part.parse(), part.parse()),
            };
            let (Ok(first), Ok(last)) = (first, last) else {
                tracing::info!(interval = part, "corrupted indexes interval, ignoring");
                continue;
            };
            if first >= completions {
                break;
            }
            let last = last.min(completions - 1);
            match out.last_mut() {
                Some(prev) if prev.1 + 1 == first => prev.1 = last,
                _ => out.push((first, last)),
            }
        }
        Intervals(out)
    }

    /// These intervals with `indexes` (in increasing order) added.
    pub fn with(&self, indexes: &[usize]) -> Intervals {
        self.merge(&Intervals(indexes.iter().map(|i| (*i, *i)).collect()))
    }

    fn merge(&self, other: &Intervals) -> Intervals {
        let mut all: Vec<(usize, usize)> = self.0.iter().chain(other.0.iter()).copied().collect();
        all.sort();
        let mut out: Vec<(usize, usize)> = Vec::new();
        for (first, last) in all {
            match out.last_mut() {
                Some(prev) if first <= prev.1 + 1 => prev.1 = prev.1.max(last),
                _ => out.push((first, last)),
            }
        }
        Intervals(out)
    }

    pub fn total(&self) -> usize {
        self.0.iter().map(|(a, b)| b - a + 1).sum()
    }

    pub fn has(&self, ix: usize) -> bool {
        self.0.iter().any(|(a, b)| *a <= ix && ix <= *b)
    }

    /// How many indexes the two have in common.
    fn overlap(&self, other: &Intervals) -> usize {
        let mut n = 0;
        for (a, b) in &self.0 {
            for (c, d) in &other.0 {
                let (lo, hi) = ((*a).max(*c), (*b).min(*d));
                if lo <= hi {
                    n += hi - lo + 1;
                }
            }
        }
        n
    }
}

impl fmt::Display for Intervals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (first, last)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{first}")?;
            if last > first {
                let sep = if *last == first + 1 { "," } else { "-" };
                write!(f, "{sep}{last}")?;
            }
        }
        Ok(())
    }
}

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

/// Moves uids whose finalizer is gone from `uncountedTerminatedPods` into the counters.
fn clean_uncounted(status: &mut JobStatus, with_finalizer: &HashSet<String>) -> bool {
    let u = status.uncounted_terminated_pods.get_or_insert_default();
    let mut changed = false;
    let mut counted = [0i32; 2];
    for (i, list) in [&mut u.succeeded, &mut u.failed].into_iter().enumerate() {
        let before = list.as_ref().map_or(0, Vec::len);
        if let Some(l) = list.as_mut() {
            l.retain(|uid| with_finalizer.contains(uid));
        }
        let after = list.as_ref().map_or(0, Vec::len);
        if after != before {
            changed = true;
            counted[i] = (before - after) as i32;
        }
        if list.as_ref().is_some_and(Vec::is_empty) {
            *list = None;
        }
    }
    if counted[0] > 0 {
        status.succeeded = Some(status.succeeded.unwrap_or(0) + counted[0]);
    }
    if counted[1] > 0 {
        status.failed = Some(status.failed.unwrap_or(0) + counted[1]);
    }
    changed
}

fn uncounted_is_empty(status: &JobStatus) -> bool {
    status.uncounted_terminated_pods.as_ref().is_none_or(|u| {
        u.succeeded.as_ref().is_none_or(Vec::is_empty)
            && u.failed.as_ref().is_none_or(Vec::is_empty)
    })
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
        self.jobs.wait_synced().await;
        self.pods.wait_synced().await;
        let me = self.clone();
        let orphans = run_workers("job-orphan-pod", self.orphans.clone(), 1, move |key| {
            let me = me.clone();
            async move { me.sync_orphan_pod(&key).await.map(|()| None) }
        });
        let me = self.clone();
        let jobs = run_workers("job", self.queue.clone(), workers, move |key| {
            let me = me.clone();
            async move { me.sync(&key).await }
        });
        tokio::join!(orphans, jobs);
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

    async fn sync(&self, key: &str) -> anyhow::Result<Option<Duration>> {
        let Some(shared) = self.jobs.get_key(key) else {
            self.expectations.forget(key);
            self.finalizers.forget(key);
            self.set_backoff(key, None);
            return Ok(None);
        };
        if managed_elsewhere(&shared) {
            return Ok(None);
        }
        if finished(&shared).is_some() {
            self.set_backoff(key, None);
            return Ok(None);
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
            return Ok(None);
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
            None => Ok(None),
        }
    }

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

    /// Counts finished pods in the status and lets them go, in the order that never loses or
    /// double-counts one: uids into `uncountedTerminatedPods`, finalizers off, uids into the
    /// counters; then, once nothing is uncounted or terminating, the final condition.
    async fn track_and_remove_finalizers(
        &self,
        key: &str,
        mut job: Job,
        ctx: &Ctx,
        mut needs_flush: bool,
        now: Timestamp,
    ) -> anyhow::Result<()> {
        let indexed = is_indexed(&job);
        let completions_n = completions(&job).unwrap_or(0).max(0) as usize;
        let mut pods_sorted = ctx.pods.clone();
        if indexed {
            pods_sorted.sort_by_key(|p| completion_index(p));
        }
        let mut with_finalizer: HashSet<String> = pods_sorted
            .iter()
            .filter(|p| has_finalizer(p) && !ctx.expected_rm.contains(&uid(p)))
            .map(|p| uid(p))
            .collect();
        let deleting = job.metadata.deletion_timestamp.is_some();
        let only_failed = only_replace_failed(&job);
        let job_for_policy = job.clone();
        let mut finished_cond = ctx.finished.clone();
        let failing = finished_cond
            .as_ref()
            .is_some_and(|c| c.type_ != SUCCESS_CRITERIA_MET);
        let status = job.status.get_or_insert_default();
        if clean_uncounted(status, &with_finalizer) {
            needs_flush = true;
        }
        let uncounted = status.uncounted_terminated_pods.get_or_insert_default();
        let mut to_remove: Vec<Arc<Pod>> = Vec::new();
        let mut new_indexes: Vec<usize> = Vec::new();
        let mut reached_max = false;
        for pod in &pods_sorted {
            let u = uid(pod);
            if !has_finalizer(pod) || ctx.expected_rm.contains(&u) {
                continue;
            }
            // Pods a successful job deletes are not failures, whether or not this sync
            // already sees them deleted (it does when an earlier sync deleted them but could
            // not finish: expectations not yet met).
            let failed = if finished_cond.is_some() && !failing {
                phase(pod) == Some("Failed")
            } else {
                pod_failed(pod, only_failed)
            };
            let succeeded = phase(pod) == Some("Succeeded");
            // Removable once its outcome is known, or when the whole job is going away; an
            // index's last failed pod stays until its replacement exists.
            if !(deleting || finished_cond.is_some() || succeeded || failed) {
                continue;
            }
            if !(deleting || finished_cond.is_some() || succeeded)
                && completion_index(pod)
                    .and_then(|ix| ctx.delayed.get(&ix))
                    .is_some_and(|d| uid(d) == u)
            {
                continue;
            }
            to_remove.push(pod.clone());
            let ix = completion_index(pod);
            if succeeded && !ctx.uncounted_failed.contains(&u) {
                if indexed {
                    if let Some(ix) = ix.filter(|ix| *ix < completions_n)
                        && !ctx.prev_succeeded_indexes.has(ix)
                    {
                        new_indexes.push(ix);
                        needs_flush = true;
                    }
                } else if !ctx.uncounted_succeeded.contains(&u) {
                    uncounted.succeeded.get_or_insert_default().push(u);
                    needs_flush = true;
                }
            } else if (failed || failing)
                && !ctx.uncounted_failed.contains(&u)
                && (!indexed || ix.is_some_and(|ix| ix < completions_n))
            {
                // A finishing job's unfinished pods count as failed; failures a pod failure
                // policy ignores count nowhere.
                if match_pod_failure_policy(&job_for_policy, pod).1 {
                    uncounted.failed.get_or_insert_default().push(u);
                    needs_flush = true;
                }
            }
            let held = new_indexes.len()
                + uncounted.succeeded.as_ref().map_or(0, Vec::len)
                + uncounted.failed.as_ref().map_or(0, Vec::len);
            if held >= MAX_UNCOUNTED {
                // The rest next sync: keeps the status small and this sync short.
                reached_max = true;
                break;
            }
        }
        if indexed {
            new_indexes.sort_unstable();
            let all = ctx.succeeded_indexes.with(&new_indexes);
            let text = all.to_string();
            if status.completed_indexes.as_deref().unwrap_or_default() != text {
                needs_flush = true;
            }
            status.succeeded = Some(all.total() as i32).filter(|n| *n > 0);
            status.completed_indexes = Some(text);
            if let Some(failed) = &ctx.failed_indexes {
                let text = failed.to_string();
                if status.failed_indexes.as_deref() != Some(text.as_str()) {
                    status.failed_indexes = Some(text);
                    needs_flush = true;
                }
            }
        }
        let conds = status.conditions.get_or_insert_default();
        if let Some(c) = finished_cond.as_ref().filter(|c| c.type_ == FAILURE_TARGET) {
            // The interim condition records the reason before pods can disappear.
            conds.push(c.clone());
            needs_flush = true;
            finished_cond = Some(new_condition(
                FAILED,
                "True",
                c.reason.as_deref().unwrap_or_default(),
                c.message.as_deref().unwrap_or_default(),
                now,
            ));
        }
        if let Some(c) = finished_cond
            .as_ref()
            .filter(|c| c.type_ == SUCCESS_CRITERIA_MET)
            .cloned()
        {
            if !conds
                .iter()
                .any(|x| x.type_ == SUCCESS_CRITERIA_MET && x.status == "True")
            {
                conds.push(c.clone());
                needs_flush = true;
            }
            finished_cond = Some(new_condition(
                COMPLETE,
                "True",
                c.reason.as_deref().unwrap_or_default(),
                c.message.as_deref().unwrap_or_default(),
                now,
            ));
        }
        if conds.is_empty() {
            status.conditions = None;
        }

        // 1. Flush the uids (and interim conditions) before touching the pods.
        if needs_flush {
            job = self.update_status(&job).await?;
            self.set_backoff(key, Some(ctx.backoff));
            needs_flush = false;
        }
        // 2. Let the pods go.
        let mut rm_err = None;
        if !to_remove.is_empty() {
            self.finalizers
                .expect(key, to_remove.iter().map(|p| uid(p)));
            let ns = job.metadata.namespace.as_deref().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
            let results =
                futures::future::join_all(to_remove.iter().map(|p| remove_finalizer(&api, p)))
                    .await;
            for (pod, r) in to_remove.iter().zip(results) {
                match r {
                    Ok(_) => {
                        with_finalizer.remove(&uid(pod));
                    }
                    Err(kube::Error::Api(e)) if e.code == 404 => {
                        self.finalizers.observed(key, &uid(pod));
                        with_finalizer.remove(&uid(pod));
                    }
                    Err(e) => {
                        self.finalizers.observed(key, &uid(pod));
                        rm_err.get_or_insert(
                            anyhow::Error::new(e).context("removing the job tracking finalizer"),
                        );
                    }
                }
            }
        }
        // 3. Count what was let go.
        let status = job.status.get_or_insert_default();
        if clean_uncounted(status, &with_finalizer) {
            needs_flush = true;
        }
        if let Some(e) = rm_err {
            if needs_flush {
                self.update_status(&job).await?;
            }
            return Err(e);
        }
        // 4. Finished, once nothing is uncounted or still terminating.
        let mut finished_now = false;
        if !reached_max
            && let Some(c) = &finished_cond
            && uncounted_is_empty(status)
            && ctx.terminating == 0
        {
            let conds = status.conditions.get_or_insert_default();
            ensure_condition(
                conds,
                &c.type_,
                &c.status,
                c.reason.as_deref().unwrap_or_default(),
                c.message.as_deref().unwrap_or_default(),
                now,
            );
            if c.type_ == COMPLETE {
                status.completion_time = conds
                    .iter()
                    .find(|x| x.type_ == COMPLETE)
                    .and_then(|x| x.last_transition_time.clone());
            }
            finished_now = true;
            needs_flush = true;
        }
        if needs_flush {
            let job = self.update_status(&job).await?;
            if finished_now && let Some(c) = &finished_cond {
                self.record_finished(&job, c);
            }
        }
        Ok(())
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

async fn remove_finalizer(api: &Api<Pod>, pod: &Pod) -> Result<Pod, kube::Error> {
    let patch = json!({"metadata": {
        "$deleteFromPrimitiveList/finalizers": [TRACKING_FINALIZER],
    }});
    api.patch(
        pod.metadata.name.as_deref().unwrap_or_default(),
        &PatchParams::default(),
        &Patch::Strategic(patch),
    )
    .await
}

fn is_not_found(e: Option<&kube::Error>) -> bool {
    matches!(e, Some(kube::Error::Api(e)) if e.code == 404)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use k8s_openapi::api::batch::v1::{JobSpec, UncountedTerminatedPods};
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateTerminated, ContainerStatus, PodCondition, PodSpec,
        PodStatus, PodTemplateSpec,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn pod(name: &str, phase: &str, index: Option<usize>) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                uid: Some(format!("uid-{name}")),
                annotations: index.map(|i| [(COMPLETION_INDEX.to_string(), i.to_string())].into()),
                finalizers: Some(vec![TRACKING_FINALIZER.into()]),
                creation_timestamp: Some(Time(ts("2024-01-01T00:00:00Z"))),
                ..Default::default()
            },
            spec: Some(PodSpec::default()),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                ..Default::default()
            }),
        })
    }

    fn job(indexed: bool, completions: Option<i32>) -> Job {
        Job {
            metadata: ObjectMeta {
                name: Some("pi".into()),
                namespace: Some("default".into()),
                uid: Some("job-uid".into()),
                ..Default::default()
            },
            spec: Some(JobSpec {
                completions,
                completion_mode: Some(if indexed { "Indexed" } else { "NonIndexed" }.into()),
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some([("job-name".to_string(), "pi".to_string())].into()),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        containers: vec![Default::default()],
                        ..Default::default()
                    }),
                },
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn intervals_round_trip_in_upstream_text_form() {
        let i = Intervals::default().with(&[0, 1, 2, 4, 6, 7]);
        assert_eq!(i.to_string(), "0-2,4,6,7");
        assert_eq!(i.total(), 6);
        assert!(i.has(7) && !i.has(5));
        assert_eq!(Intervals::parse("0-2,4,6,7", 10), i);
        // Limited to completions; corrupt parts ignored.
        assert_eq!(Intervals::parse("0-2,x,4-9", 6).to_string(), "0-2,4,5");
        assert_eq!(Intervals::parse("3-4", 3).to_string(), "");
        assert_eq!(Intervals::parse("1", 10).with(&[0, 2]).to_string(), "0-2");
    }

    #[test]
    fn pending_indexes_skip_busy_and_succeeded_ones() {
        let busy = Intervals::default().with(&[0, 1, 3]);
        assert_eq!(first_pending_indexes(&busy, 2, 6), vec![2, 4]);
        assert_eq!(first_pending_indexes(&busy, 10, 6), vec![2, 4, 5]);
        assert_eq!(
            first_pending_indexes(&Intervals::default(), 3, 2),
            vec![0, 1]
        );
    }

    #[test]
    fn backoff_doubles_from_ten_seconds_and_resets_on_success() {
        let now = ts("2024-01-01T00:00:00Z");
        let failed_at = |t: &str| {
            let mut p = (*pod("f", "Failed", None)).clone();
            p.metadata.creation_timestamp = Some(Time(ts(t)));
            Arc::new(p)
        };
        let b = Backoff::default().after(&[], &[failed_at("2024-01-01T00:00:00Z")]);
        assert_eq!(b.failures, 1);
        assert_eq!(b.remaining(now), Duration::from_secs(10));
        let b = b.after(&[], &[failed_at("2024-01-01T00:00:00Z")]);
        assert_eq!(b.remaining(now), Duration::from_secs(20));
        let mut many = b;
        many.failures = 12;
        assert_eq!(many.remaining(now), MAX_POD_FAILURE_BACKOFF);
        assert_eq!(
            b.remaining(ts("2024-01-01T00:00:15Z")),
            Duration::from_secs(5)
        );
        // A success after the failures resets the count to the failures after it.
        let mut ok = (*pod("s", "Succeeded", None)).clone();
        ok.metadata.creation_timestamp = Some(Time(ts("2024-01-01T00:00:05Z")));
        let b = b.after(&[Arc::new(ok)], &[failed_at("2024-01-01T00:00:09Z")]);
        assert_eq!(b.failures, 1);
        assert_eq!(b.last_failure, Some(ts("2024-01-01T00:00:09Z")));
    }

    #[test]
    fn finish_time_prefers_containers_then_ready_false() {
        let mut p = (*pod("p", "Failed", None)).clone();
        assert_eq!(finished_time(&p), ts("2024-01-01T00:00:00Z"));
        p.status.as_mut().unwrap().conditions = Some(vec![PodCondition {
            type_: "Ready".into(),
            status: "False".into(),
            last_transition_time: Some(Time(ts("2024-01-01T00:01:00Z"))),
            ..Default::default()
        }]);
        assert_eq!(finished_time(&p), ts("2024-01-01T00:01:00Z"));
        p.status.as_mut().unwrap().container_statuses = Some(vec![ContainerStatus {
            state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    finished_at: Some(Time(ts("2024-01-01T00:02:00Z"))),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }]);
        assert_eq!(finished_time(&p), ts("2024-01-01T00:02:00Z"));
    }

    #[test]
    fn deleted_pods_count_as_failed_unless_only_failed_ones_are_replaced() {
        let mut j = job(false, Some(1));
        let mut p = (*pod("p", "Running", None)).clone();
        p.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
        assert!(pod_failed(&p, only_replace_failed(&j)));
        j.spec.as_mut().unwrap().pod_replacement_policy = Some("Failed".into());
        assert!(!pod_failed(&p, only_replace_failed(&j)));
        assert!(is_terminating(&p));
    }

    #[test]
    fn indexed_pods_carry_their_index() {
        let j = job(true, Some(3));
        let owner = pods::controller_ref("batch/v1", "Job", &j.metadata);
        let p = pod_for(&j, owner.clone(), Some(2));
        assert_eq!(p.metadata.generate_name.as_deref(), Some("pi-2-"));
        assert_eq!(completion_index(&p), Some(2));
        assert_eq!(
            p.metadata
                .labels
                .as_ref()
                .unwrap()
                .get(COMPLETION_INDEX)
                .map(String::as_str),
            Some("2")
        );
        let ps = p.spec.as_ref().unwrap();
        assert_eq!(ps.hostname.as_deref(), Some("pi-2"));
        let env = ps.containers[0].env.as_ref().unwrap();
        assert_eq!(env[0].name, "JOB_COMPLETION_INDEX");
        assert!(
            p.metadata
                .finalizers
                .unwrap()
                .contains(&TRACKING_FINALIZER.to_string())
        );
        let plain = pod_for(&job(false, Some(1)), owner, None);
        assert_eq!(plain.metadata.generate_name.as_deref(), Some("pi-"));
        assert!(plain.spec.unwrap().hostname.is_none());
        // Long names are cut so the index survives.
        let mut long = job(true, Some(3));
        long.metadata.name = Some("x".repeat(70));
        let owner = pods::controller_ref("batch/v1", "Job", &long.metadata);
        let p = pod_for(&long, owner, Some(12));
        let g = p.metadata.generate_name.unwrap();
        assert!(g.len() <= MAX_GENERATE_NAME && g.ends_with("-12-"), "{g}");
    }

    #[test]
    fn repeated_and_invalid_indexes_go_first() {
        let j = job(true, Some(3));
        let pods = vec![
            pod("a", "Running", Some(0)),
            pod("b", "Running", Some(0)),
            pod("c", "Running", None),
            pod("d", "Running", Some(7)),
            pod("e", "Running", Some(1)),
        ];
        let mut rm: Vec<String> = active_pods_for_removal(&j, &pods, 0)
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect();
        rm.sort();
        assert_eq!(rm.len(), 3, "{rm:?}");
        assert!(rm.contains(&"c".to_string()) && rm.contains(&"d".to_string()));
        assert_eq!(active_pods_for_removal(&j, &pods, 4).len(), 4);
        let plain = job(false, Some(3));
        assert_eq!(active_pods_for_removal(&plain, &pods, 2).len(), 2);
    }

    #[test]
    fn uncounted_uids_move_to_counters_once_released() {
        let mut status = JobStatus {
            succeeded: Some(1),
            uncounted_terminated_pods: Some(UncountedTerminatedPods {
                succeeded: Some(vec!["a".into(), "b".into()]),
                failed: Some(vec!["c".into()]),
            }),
            ..Default::default()
        };
        let held: HashSet<String> = ["b".to_string()].into();
        assert!(clean_uncounted(&mut status, &held));
        assert_eq!(status.succeeded, Some(2));
        assert_eq!(status.failed, Some(1));
        let u = status.uncounted_terminated_pods.as_ref().unwrap();
        assert_eq!(u.succeeded.as_deref(), Some(&["b".to_string()][..]));
        assert!(u.failed.is_none());
        assert!(!clean_uncounted(&mut status, &held));
    }

    #[test]
    fn conditions_are_added_true_and_updated_false() {
        let now = Timestamp::now();
        let mut list = Vec::new();
        assert!(!ensure_condition(
            &mut list,
            SUSPENDED,
            "False",
            "JobResumed",
            "Job resumed",
            now
        ));
        assert!(list.is_empty());
        assert!(ensure_condition(
            &mut list,
            SUSPENDED,
            "True",
            "JobSuspended",
            "Job suspended",
            now
        ));
        assert!(!ensure_condition(
            &mut list,
            SUSPENDED,
            "True",
            "JobSuspended",
            "Job suspended",
            now
        ));
        assert!(ensure_condition(
            &mut list,
            SUSPENDED,
            "False",
            "JobResumed",
            "Job resumed",
            now
        ));
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].reason.as_deref(), Some("JobResumed"));
    }

    #[test]
    fn on_failure_restarts_count_toward_the_backoff_limit() {
        let mut j = job(false, Some(1));
        let s = j.spec.as_mut().unwrap();
        s.backoff_limit = Some(2);
        s.template.spec.as_mut().unwrap().restart_policy = Some("OnFailure".into());
        let mut p = (*pod("p", "Running", None)).clone();
        p.status.as_mut().unwrap().container_statuses = Some(vec![ContainerStatus {
            restart_count: 2,
            ..Default::default()
        }]);
        assert!(past_backoff_limit_on_failure(&j, &[Arc::new(p.clone())]));
        p.status
            .as_mut()
            .unwrap()
            .container_statuses
            .as_mut()
            .unwrap()[0]
            .restart_count = 1;
        assert!(!past_backoff_limit_on_failure(&j, &[Arc::new(p)]));
    }
}
