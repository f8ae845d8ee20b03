//! The CronJob controller (Kubernetes' `pkg/controller/cronjob`, the v2 controller of 1.33):
//! creates a Job from `spec.jobTemplate` at each time `spec.schedule` names (in
//! `spec.timeZone`), named `<cronjob>-<scheduled time in minutes since the epoch>` so a time
//! is never run twice. Honours concurrencyPolicy (Allow / Forbid / Replace),
//! startingDeadlineSeconds, suspend and the job history limits; reports the running jobs in
//! `status.active` and `lastScheduleTime` / `lastSuccessfulTime`. Each CronJob is queued again
//! for exactly its next scheduled time, never polled.

pub mod schedule;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use k8s_openapi::jiff::tz::TimeZone;
use kube::api::{DeleteParams, PostParams, PropagationPolicy};
use kube::{Api, Client};

use self::schedule::{Schedule, load_time_zone, local_time_zone};
use crate::job;
use crate::pods;
use client_go::events::Recorder;
use client_go::informer::{Change, Informer, controller_of, key_of};
use client_go::queue::WorkQueue;
use client_go::reconciler::{self, Action, Reconciler};

/// The scheduled time of a Job a CronJob created (RFC 3339, in the CronJob's time zone).
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// Requeue this long after the next scheduled time, so a slightly fast clock never wakes
/// the controller just before it.
const NEXT_SCHEDULE_DELTA: Duration = Duration::from_millis(100);
/// More missed start times than this gets a warning (upstream's arbitrary 100).
const MANY_MISSED: usize = 100;

pub struct CronJobController {
    client: Client,
    cronjobs: Informer<CronJob>,
    jobs: Informer<Job>,
    queue: Arc<WorkQueue>,
    recorder: Recorder,
}

/// Missed schedules between the last run and now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Missed {
    None,
    Few,
    Many,
}

/// The most recent scheduled time that should have run (Kubernetes' mostRecentScheduleTime):
/// returns the time counted from (last schedule, creation, or the starting deadline), the
/// latest scheduled time at or before `now` after it, and how many were missed. An error
/// means the schedule never fires.
fn most_recent_schedule_time(
    cj: &CronJob,
    now: Timestamp,
    sched: &Schedule,
    tz: &TimeZone,
    include_deadline: bool,
) -> Result<(Timestamp, Option<Timestamp>, Missed), String> {
    let mut earliest = cj
        .status
        .as_ref()
        .and_then(|s| s.last_schedule_time.as_ref())
        .or(cj.metadata.creation_timestamp.as_ref())
        .map(|t| t.0)
        .unwrap_or(now);
    if include_deadline
        && let Some(sds) = cj.spec.as_ref().and_then(|s| s.starting_deadline_seconds)
    {
        // Nothing scheduled before the deadline will be started.
        let deadline = Timestamp::from_millisecond(
            now.as_millisecond()
                .saturating_sub(sds.saturating_mul(1000)),
        )
        .unwrap_or(Timestamp::MIN);
        if deadline > earliest {
            earliest = deadline;
        }
    }
    let never = || "time difference between two schedules is less than 1 second".to_string();
    let t1 = sched.next(earliest, tz).ok_or_else(never)?;
    if now < t1 {
        return Ok((earliest, None, Missed::None));
    }
    let Some(t2) = sched.next(t1, tz) else {
        return Ok((earliest, Some(t1), Missed::None));
    };
    if now < t2 {
        return Ok((earliest, Some(t1), Missed::None));
    }
    // Exact, and bounded: the latest time is found backwards from now, and missed times are
    // counted only as far as the warning needs.
    let latest = sched.prev(now, tz).unwrap_or(t2).max(t2);
    let mut missed = 2;
    let mut t = t2;
    while missed <= MANY_MISSED {
        match sched.next(t, tz) {
            Some(n) if n <= now => {
                missed += 1;
                t = n;
            }
            _ => break,
        }
    }
    let class = if missed > MANY_MISSED {
        Missed::Many
    } else {
        Missed::Few
    };
    Ok((earliest, Some(latest), class))
}

/// How long until the next scheduled time (plus a little), counted as the queue needs it;
/// `None` when the schedule never fires again.
fn next_schedule_delay(
    cj: &CronJob,
    now: Timestamp,
    sched: &Schedule,
    tz: &TimeZone,
) -> Option<Duration> {
    let base = match most_recent_schedule_time(cj, now, sched, tz, false) {
        Err(_) => now,
        Ok((_, Some(t), _)) => t,
        Ok((earliest, None, Missed::None)) => earliest,
        Ok((_, None, _)) => now,
    };
    let next = sched.next(base, tz)?;
    let ms = next.as_millisecond() - now.as_millisecond();
    Some(Duration::from_millis(ms.max(0) as u64) + NEXT_SCHEDULE_DELTA)
}

/// `<cronjob>-<minutes since the epoch>`: one name per scheduled time.
pub fn job_name(cj_name: &str, scheduled: Timestamp) -> String {
    format!("{cj_name}-{}", scheduled.as_second().div_euclid(60))
}

/// RFC 3339 in `tz`, as Go writes it ("Z" for a zero offset).
fn rfc3339(t: Timestamp, tz: &TimeZone) -> String {
    let z = t.to_zoned(tz.clone());
    if z.offset().seconds() == 0 {
        z.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

/// The Job for one scheduled time: the template's labels, annotations (plus the scheduled
/// time) and spec, controlled by the CronJob.
fn job_from_template(cj: &CronJob, scheduled: Timestamp) -> anyhow::Result<Job> {
    let spec = cj.spec.clone().unwrap_or_default();
    let template = spec.job_template;
    let meta = template.metadata.unwrap_or_default();
    // The annotation uses the named zone, or UTC (never the controller's local zone).
    let tz = load_time_zone(spec.time_zone.as_deref().unwrap_or_default())
        .map_err(anyhow::Error::msg)
        .context("loading the time zone")?;
    let mut annotations = meta.annotations.unwrap_or_default();
    annotations.insert(SCHEDULED_TIMESTAMP.into(), rfc3339(scheduled, &tz));
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(job_name(
                cj.metadata.name.as_deref().unwrap_or_default(),
                scheduled,
            )),
            namespace: cj.metadata.namespace.clone(),
            labels: meta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![owner_reference(cj)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    })
}

fn active(cj: &CronJob) -> &[ObjectReference] {
    cj.status
        .as_ref()
        .and_then(|s| s.active.as_deref())
        .unwrap_or_default()
}

fn in_active(cj: &CronJob, uid: &str) -> bool {
    active(cj).iter().any(|r| r.uid.as_deref() == Some(uid))
}

fn remove_from_active(cj: &mut CronJob, uid: &str) {
    if let Some(list) = cj.status.as_mut().and_then(|s| s.active.as_mut()) {
        list.retain(|r| r.uid.as_deref() != Some(uid));
        if list.is_empty() {
            cj.status.get_or_insert_default().active = None;
        }
    }
}

fn reference(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        ..Default::default()
    }
}

fn start_time(j: &Job) -> Option<Timestamp> {
    j.status.as_ref()?.start_time.as_ref().map(|t| t.0)
}

/// The zone the schedule is read in: a `CRON_TZ=` prefix, else `spec.timeZone`, else the
/// controller manager's local zone (as upstream).
fn schedule_zone(cj: &CronJob, sched: &Schedule) -> Result<TimeZone, String> {
    if let Some(tz) = sched.time_zone() {
        return load_time_zone(tz);
    }
    match cj.spec.as_ref().and_then(|s| s.time_zone.as_deref()) {
        Some(tz) => load_time_zone(tz),
        None => Ok(local_time_zone()),
    }
}

impl CronJobController {
    pub fn new(client: Client, cronjobs: Informer<CronJob>, jobs: Informer<Job>) -> Arc<Self> {
        let c = Arc::new(CronJobController {
            recorder: Recorder::new(client.clone(), "cronjob-controller"),
            client,
            cronjobs,
            jobs,
            queue: WorkQueue::new(),
        });
        let me = c.clone();
        c.cronjobs
            .on_change(move |ch: &Change<CronJob>| me.cronjob_changed(ch));
        let me = c.clone();
        c.jobs.on_change(move |ch: &Change<Job>| {
            let refs = [&ch.old, &ch.new]
                .into_iter()
                .flatten()
                .filter_map(|j| me.owner_of(j));
            let owners: HashSet<String> = refs.collect();
            for key in owners {
                me.queue.add(key);
            }
        });
        c
    }

    fn cronjob_changed(&self, ch: &Change<CronJob>) {
        let (Some(old), Some(new)) = (&ch.old, &ch.new) else {
            if let Some(cj) = ch.object() {
                self.queue.add(key_of(cj.as_ref()));
            }
            return;
        };
        let schedule = |cj: &CronJob| {
            cj.spec
                .as_ref()
                .map(|s| (s.schedule.clone(), s.time_zone.clone()))
        };
        if schedule(old) == schedule(new) {
            self.queue.add(key_of(new.as_ref()));
            return;
        }
        // A new schedule takes effect at its next time, not by running a missed one now.
        let spec = new.spec.clone().unwrap_or_default();
        let parsed = Schedule::parse(&spec.schedule)
            .map_err(|e| e.to_string())
            .and_then(|s| schedule_zone(new, &s).map(|tz| (s, tz)));
        match parsed {
            Ok((sched, tz)) => {
                if let Some(d) = next_schedule_delay(new, Timestamp::now(), &sched, &tz) {
                    self.queue.add_after(key_of(new.as_ref()), d);
                }
            }
            Err(e) => {
                tracing::info!(cronjob = %key_of(new.as_ref()), error = %e, "unparseable schedule");
                self.recorder.record(
                    new.as_ref(),
                    true,
                    "UnParseableCronJobSchedule",
                    format!("unparseable schedule for cronjob: {}", spec.schedule),
                );
            }
        }
    }

    /// The CronJob (key) a job's controller reference names, if cached with that uid.
    fn owner_of(&self, job: &Job) -> Option<String> {
        let r = controller_of(job).filter(|r| r.kind == "CronJob")?;
        let cj = self
            .cronjobs
            .get(job.metadata.namespace.as_deref(), &r.name)?;
        (cj.metadata.uid.as_deref() == Some(r.uid.as_str())).then(|| key_of(cj.as_ref()))
    }

    pub async fn run(self: Arc<Self>, workers: usize) {
        reconciler::run(&self, &self.queue, &[&self.cronjobs, &self.jobs], workers).await;
    }
}

impl Reconciler for CronJobController {
    const NAME: &'static str = "cronjob";

    async fn reconcile(self: &Arc<Self>, key: &str) -> anyhow::Result<Action> {
        let Some(shared) = self.cronjobs.get_key(key) else {
            return Ok(Action::Done);
        };
        let name = shared.metadata.name.clone().unwrap_or_default();
        let ns = shared.metadata.namespace.clone().unwrap_or_default();
        // Every job naming this CronJob as its controller, even if its labels changed.
        let jobs: Vec<Arc<Job>> = self
            .jobs
            .list_namespace(&ns)
            .into_iter()
            .filter(|j| {
                controller_of(j.as_ref()).is_some_and(|r| r.kind == "CronJob" && r.name == name)
            })
            .collect();
        let mut cj = (*shared).clone();
        let cleaned = self.cleanup_finished_jobs(&mut cj, &jobs).await;
        let (requeue, synced, err) = self.sync_cronjob(&mut cj, &jobs).await;
        if let Some(e) = &err {
            tracing::info!(cronjob = key, error = %format!("{e:#}"), "error reconciling cronjob");
        }
        if cleaned || synced {
            let api: Api<CronJob> = Api::namespaced(self.client.clone(), &ns);
            api.replace_status(&name, &PostParams::default(), &cj)
                .await
                .context("updating cronjob status")?;
        }
        if let Some(after) = requeue {
            return Ok(Action::RequeueAfter(after));
        }
        match err {
            Some(e) => Err(e),
            None => Ok(Action::Done),
        }
    }
}

impl CronJobController {
    /// Returns when to look again, whether the status changed, and an error to retry on.
    async fn sync_cronjob(
        &self,
        cj: &mut CronJob,
        jobs: &[Arc<Job>],
    ) -> (Option<Duration>, bool, Option<anyhow::Error>) {
        let now = Timestamp::now();
        let mut update = false;
        let ns = cj.metadata.namespace.clone().unwrap_or_default();
        let cj_name = cj.metadata.name.clone().unwrap_or_default();
        let job_api: Api<Job> = Api::namespaced(self.client.clone(), &ns);
        let mut children = HashSet::new();
        for j in jobs {
            let uid = j.metadata.uid.clone().unwrap_or_default();
            children.insert(uid.clone());
            let found = in_active(cj, &uid);
            let jname = j.metadata.name.clone().unwrap_or_default();
            match job::finished(j) {
                None if !found => {
                    // Created but not recorded (a crash between the two), or a stale cache.
                    let fresh: Api<CronJob> = Api::namespaced(self.client.clone(), &ns);
                    match fresh.get(&cj_name).await {
                        Ok(f) if in_active(&f, &uid) => continue,
                        Ok(_) => {}
                        Err(e) => {
                            return (
                                None,
                                update,
                                Some(anyhow::Error::new(e).context("reading the cronjob")),
                            );
                        }
                    }
                    self.recorder.record(
                        &*cj,
                        true,
                        "UnexpectedJob",
                        format!("Saw a job that the controller did not create or forgot: {jname}"),
                    );
                }
                None => {}
                Some(c) => {
                    let type_ = c.type_.clone();
                    if found {
                        remove_from_active(cj, &uid);
                        self.recorder.record(
                            &*cj,
                            false,
                            "SawCompletedJob",
                            format!("Saw completed job: {jname}, condition: {type_}"),
                        );
                        update = true;
                    }
                    if type_ == job::COMPLETE
                        && let Some(done) =
                            j.status.as_ref().and_then(|s| s.completion_time.clone())
                    {
                        let status = cj.status.get_or_insert_default();
                        if status
                            .last_successful_time
                            .as_ref()
                            .is_none_or(|t| done.0 > t.0)
                        {
                            status.last_successful_time = Some(done);
                            update = true;
                        }
                    }
                }
            }
        }
        // An active job the cache no longer has: trust the API server before forgetting it.
        for r in active(cj).to_vec() {
            let uid = r.uid.clone().unwrap_or_default();
            if children.contains(&uid) {
                continue;
            }
            let jname = r.name.clone().unwrap_or_default();
            match job_api.get(&jname).await {
                Err(kube::Error::Api(e)) if e.code == 404 => {
                    self.recorder.record(
                        &*cj,
                        false,
                        "MissingJob",
                        format!("Active job went missing: {jname}"),
                    );
                    remove_from_active(cj, &uid);
                    update = true;
                }
                Err(e) => {
                    return (
                        None,
                        update,
                        Some(anyhow::Error::new(e).context("reading an active job")),
                    );
                }
                Ok(_) => {}
            }
        }
        if cj.metadata.deletion_timestamp.is_some() {
            return (None, update, None);
        }
        let spec = cj.spec.clone().unwrap_or_default();
        if let Some(tz) = &spec.time_zone
            && let Err(e) = load_time_zone(tz)
        {
            tracing::debug!(cronjob = %key_of(&*cj), time_zone = tz, "not starting job: invalid timeZone");
            self.recorder.record(
                &*cj,
                true,
                "UnknownTimeZone",
                format!("invalid timeZone: {tz:?}: {e}"),
            );
            return (None, update, None);
        }
        if spec.suspend == Some(true) {
            return (None, update, None);
        }
        if spec.schedule.contains("TZ") {
            self.recorder.record(
                &*cj,
                true,
                "UnsupportedSchedule",
                format!(
                    "CRON_TZ or TZ used in schedule {:?} is not officially supported, see https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details",
                    spec.schedule
                ),
            );
        }
        let parsed = Schedule::parse(&spec.schedule)
            .map_err(|e| e.to_string())
            .and_then(|s| schedule_zone(cj, &s).map(|tz| (s, tz)));
        let (sched, tz) = match parsed {
            Ok(p) => p,
            Err(e) => {
                self.recorder.record(
                    &*cj,
                    true,
                    "UnparseableSchedule",
                    format!("unparseable schedule: {:?} : {e}", spec.schedule),
                );
                return (None, update, None);
            }
        };
        let next = |cj: &CronJob| next_schedule_delay(cj, now, &sched, &tz);
        let scheduled = match most_recent_schedule_time(cj, now, &sched, &tz, true) {
            Err(e) => {
                self.recorder.record(
                    &*cj,
                    true,
                    "InvalidSchedule",
                    format!("invalid schedule: {} : {e}", spec.schedule),
                );
                return (None, update, None);
            }
            Ok((_, None, _)) => return (next(cj), update, None),
            Ok((_, Some(t), missed)) => {
                if missed == Missed::Many {
                    self.recorder.record(
                        &*cj,
                        true,
                        "TooManyMissedTimes",
                        "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew".into(),
                    );
                    tracing::info!(cronjob = %key_of(&*cj), "too many missed times");
                }
                t
            }
        };
        if let Some(sds) = spec.starting_deadline_seconds
            && scheduled
                .as_millisecond()
                .saturating_add(sds.saturating_mul(1000))
                < now.as_millisecond()
        {
            self.recorder.record(
                &*cj,
                true,
                "MissSchedule",
                format!(
                    "Missed scheduled time to start a job: {}",
                    scheduled.strftime("%a, %d %b %Y %H:%M:%S +0000")
                ),
            );
            return (next(cj), update, None);
        }
        let name = job_name(&cj_name, scheduled);
        let last = cj
            .status
            .as_ref()
            .and_then(|s| s.last_schedule_time.as_ref())
            .map(|t| t.0.as_second());
        if active(cj)
            .iter()
            .any(|r| r.name.as_deref() == Some(name.as_str()))
            || last == Some(scheduled.as_second())
        {
            return (next(cj), update, None);
        }
        let policy = spec.concurrency_policy.as_deref().unwrap_or("Allow");
        if policy == "Forbid" && !active(cj).is_empty() {
            // The cache may miss a just-started job; runs far enough apart never overlap.
            self.recorder.record(
                &*cj,
                false,
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid".into(),
            );
            return (next(cj), update, None);
        }
        if policy == "Replace" {
            for r in active(cj).to_vec() {
                let jname = r.name.clone().unwrap_or_default();
                let job = match job_api.get(&jname).await {
                    Ok(j) => j,
                    Err(e) => {
                        self.recorder
                            .record(&*cj, true, "FailedGet", format!("Get job: {e}"));
                        return (
                            None,
                            update,
                            Some(anyhow::Error::new(e).context("reading a job to replace")),
                        );
                    }
                };
                if !self.delete_job(cj, &job).await {
                    return (
                        None,
                        update,
                        Some(anyhow::anyhow!("could not replace job {ns}/{jname}")),
                    );
                }
                update = true;
            }
        }
        let request = match job_from_template(cj, scheduled) {
            Ok(j) => j,
            Err(e) => return (None, update, Some(e)),
        };
        let created = match job_api.create(&PostParams::default(), &request).await {
            Ok(j) => {
                tracing::debug!(cronjob = %key_of(&*cj), job = %name, "created job");
                self.recorder.record(
                    &*cj,
                    false,
                    "SuccessfulCreate",
                    format!("Created job {name}"),
                );
                j
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {
                // Created before (the status update was lost): record it unless someone
                // else owns it or it is recorded already.
                let existing = match job_api.get(&name).await {
                    Ok(j) => j,
                    Err(e) => {
                        return (
                            None,
                            update,
                            Some(anyhow::Error::new(e).context("reading an existing job")),
                        );
                    }
                };
                let ours = controller_of(&existing)
                    .is_some_and(|r| Some(r.uid.as_str()) == cj.metadata.uid.as_deref());
                if !ours || in_active(cj, existing.metadata.uid.as_deref().unwrap_or_default()) {
                    return (None, update, None);
                }
                tracing::info!(cronjob = %key_of(&*cj), job = %name, "job already exists");
                existing
            }
            Err(e) => {
                self.recorder.record(
                    &*cj,
                    true,
                    "FailedCreate",
                    format!("Error creating job: {e}"),
                );
                return (
                    None,
                    update,
                    Some(anyhow::Error::new(e).context("creating a job")),
                );
            }
        };
        let status = cj.status.get_or_insert_default();
        status
            .active
            .get_or_insert_default()
            .push(reference(&created));
        status.last_schedule_time = Some(Time(scheduled));
        (next(cj), true, None)
    }

    /// Deletes a job (Background: its pods follow) and drops it from the active list.
    async fn delete_job(&self, cj: &mut CronJob, job: &Job) -> bool {
        let ns = job.metadata.namespace.as_deref().unwrap_or_default();
        let name = job.metadata.name.as_deref().unwrap_or_default();
        let api: Api<Job> = Api::namespaced(self.client.clone(), ns);
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        if let Err(e) = api.delete(name, &dp).await {
            tracing::info!(job = name, error = %e, "error deleting job from cronjob");
            self.recorder
                .record(&*cj, true, "FailedDelete", format!("Deleted job: {e}"));
            return false;
        }
        remove_from_active(cj, job.metadata.uid.as_deref().unwrap_or_default());
        self.recorder.record(
            &*cj,
            false,
            "SuccessfulDelete",
            format!("Deleted job {name}"),
        );
        true
    }

    /// Keeps successfulJobsHistoryLimit completed and failedJobsHistoryLimit failed jobs,
    /// deleting the oldest others. Returns whether the status changed.
    async fn cleanup_finished_jobs(&self, cj: &mut CronJob, jobs: &[Arc<Job>]) -> bool {
        let spec = cj.spec.clone().unwrap_or_default();
        let mut update = false;
        for (type_, limit) in [
            (job::COMPLETE, spec.successful_jobs_history_limit),
            (job::FAILED, spec.failed_jobs_history_limit),
        ] {
            let Some(limit) = limit else { continue };
            let mut finished: Vec<&Arc<Job>> = jobs
                .iter()
                .filter(|j| job::finished(j).is_some_and(|c| c.type_ == type_))
                .collect();
            let surplus = finished.len().saturating_sub(limit.max(0) as usize);
            if surplus == 0 {
                continue;
            }
            // Oldest first; jobs that never started last; names break ties.
            finished.sort_by(|a, b| match (start_time(a), start_time(b)) {
                (Some(x), Some(y)) if x != y => x.cmp(&y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                _ => a.metadata.name.cmp(&b.metadata.name),
            });
            for j in finished.into_iter().take(surplus) {
                if self.delete_job(cj, j).await {
                    update = true;
                }
            }
        }
        update
    }
}

/// The owner reference a CronJob puts on its jobs.
pub fn owner_reference(cj: &CronJob) -> OwnerReference {
    pods::controller_ref("batch/v1", "CronJob", &cj.metadata)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use k8s_openapi::api::batch::v1::{CronJobSpec, CronJobStatus, JobTemplateSpec};

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn cronjob(
        schedule: &str,
        created: &str,
        last: Option<&str>,
        deadline: Option<i64>,
    ) -> CronJob {
        CronJob {
            metadata: ObjectMeta {
                name: Some("hello".into()),
                namespace: Some("default".into()),
                uid: Some("cj-uid".into()),
                creation_timestamp: Some(Time(ts(created))),
                ..Default::default()
            },
            spec: Some(CronJobSpec {
                schedule: schedule.into(),
                starting_deadline_seconds: deadline,
                job_template: JobTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some([("app".to_string(), "hello".to_string())].into()),
                        ..Default::default()
                    }),
                    spec: Some(Default::default()),
                },
                ..Default::default()
            }),
            status: Some(CronJobStatus {
                last_schedule_time: last.map(|l| Time(ts(l))),
                ..Default::default()
            }),
        }
    }

    fn most_recent(cj: &CronJob, now: &str, deadline: bool) -> (Option<String>, Missed) {
        let s = Schedule::parse(&cj.spec.as_ref().unwrap().schedule).unwrap();
        let (_, t, m) =
            most_recent_schedule_time(cj, ts(now), &s, &TimeZone::UTC, deadline).unwrap();
        (t.map(|t| t.to_string()), m)
    }

    #[test]
    fn nothing_due_before_the_first_scheduled_time() {
        let cj = cronjob("0 * * * *", "2024-01-01T10:10:00Z", None, None);
        assert_eq!(
            most_recent(&cj, "2024-01-01T10:59:59Z", true),
            (None, Missed::None)
        );
        assert_eq!(
            most_recent(&cj, "2024-01-01T11:00:00Z", true),
            (Some("2024-01-01T11:00:00Z".into()), Missed::None)
        );
    }

    #[test]
    fn only_the_latest_missed_time_runs() {
        let cj = cronjob(
            "*/10 * * * *",
            "2024-01-01T00:00:00Z",
            Some("2024-01-01T10:00:00Z"),
            None,
        );
        assert_eq!(
            most_recent(&cj, "2024-01-01T10:35:00Z", true),
            (Some("2024-01-01T10:30:00Z".into()), Missed::Few)
        );
        // Over a hundred missed: still the latest, with a warning.
        let cj = cronjob(
            "* * * * *",
            "2024-01-01T00:00:00Z",
            Some("2024-01-01T00:00:00Z"),
            None,
        );
        assert_eq!(
            most_recent(&cj, "2024-01-02T00:00:30Z", true),
            (Some("2024-01-02T00:00:00Z".into()), Missed::Many)
        );
    }

    #[test]
    fn starting_deadline_bounds_how_far_back_to_look() {
        let cj = cronjob(
            "0 * * * *",
            "2024-01-01T00:00:00Z",
            Some("2024-01-01T05:00:00Z"),
            Some(600),
        );
        // 10:00 is more than 600 s before 10:30: nothing to start.
        assert_eq!(
            most_recent(&cj, "2024-01-01T10:30:00Z", true),
            (None, Missed::None)
        );
        assert_eq!(
            most_recent(&cj, "2024-01-01T10:05:00Z", true),
            (Some("2024-01-01T10:00:00Z".into()), Missed::None)
        );
        // Without the deadline (the requeue computation) the missed time is seen.
        assert_eq!(
            most_recent(&cj, "2024-01-01T10:30:00Z", false).0,
            Some("2024-01-01T10:00:00Z".into())
        );
    }

    #[test]
    fn requeues_just_after_the_next_scheduled_time() {
        let cj = cronjob(
            "*/5 * * * *",
            "2024-01-01T00:00:00Z",
            Some("2024-01-01T10:00:00Z"),
            None,
        );
        let s = Schedule::parse("*/5 * * * *").unwrap();
        let d = next_schedule_delay(&cj, ts("2024-01-01T10:03:00Z"), &s, &TimeZone::UTC).unwrap();
        assert_eq!(d, Duration::from_secs(120) + NEXT_SCHEDULE_DELTA);
        let never = Schedule::parse("0 0 30 2 *").unwrap();
        assert_eq!(
            next_schedule_delay(&cj, ts("2024-01-01T10:03:00Z"), &never, &TimeZone::UTC),
            None
        );
    }

    #[test]
    fn jobs_are_named_by_minute_and_annotated_with_their_time() {
        let mut cj = cronjob("* * * * *", "2024-01-01T00:00:00Z", None, None);
        let t = ts("2024-01-01T10:00:00Z");
        let j = job_from_template(&cj, t).unwrap();
        assert_eq!(j.metadata.name.as_deref(), Some("hello-28401720"));
        assert_eq!(
            j.metadata
                .annotations
                .as_ref()
                .unwrap()
                .get(SCHEDULED_TIMESTAMP)
                .map(String::as_str),
            Some("2024-01-01T10:00:00Z")
        );
        assert_eq!(
            j.metadata
                .labels
                .as_ref()
                .unwrap()
                .get("app")
                .map(String::as_str),
            Some("hello")
        );
        let owner = &j.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("CronJob", Some(true))
        );
        if load_time_zone("Asia/Tokyo").is_ok() {
            cj.spec.as_mut().unwrap().time_zone = Some("Asia/Tokyo".into());
            let j = job_from_template(&cj, t).unwrap();
            assert_eq!(
                j.metadata
                    .annotations
                    .unwrap()
                    .get(SCHEDULED_TIMESTAMP)
                    .map(String::as_str),
                Some("2024-01-01T19:00:00+09:00")
            );
        }
    }

    #[test]
    fn active_list_bookkeeping() {
        let mut cj = cronjob("* * * * *", "2024-01-01T00:00:00Z", None, None);
        let job = Job {
            metadata: ObjectMeta {
                name: Some("hello-1".into()),
                namespace: Some("default".into()),
                uid: Some("j1".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        cj.status.as_mut().unwrap().active = Some(vec![reference(&job)]);
        assert!(in_active(&cj, "j1"));
        remove_from_active(&mut cj, "j1");
        assert!(!in_active(&cj, "j1"));
        assert!(cj.status.unwrap().active.is_none());
        assert_eq!(
            owner_reference(&cronjob("* * * * *", "2024-01-01T00:00:00Z", None, None)).uid,
            "cj-uid"
        );
    }
}
