//! The TTL-after-finished controller (Kubernetes' `pkg/controller/ttlafterfinished`): a Job
//! with `ttlSecondsAfterFinished` is deleted (Foreground, so its pods go first) that many
//! seconds after its Complete or Failed condition became true.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Preconditions, PropagationPolicy};
use kube::{Api, Client};

use crate::job;
use client_go::informer::{Change, Informer, key_of};
use client_go::queue::WorkQueue;
use client_go::reconciler::{self, Action, Reconciler};

pub struct TtlAfterFinishedController {
    client: Client,
    jobs: Informer<Job>,
    queue: Arc<WorkQueue>,
}

/// A finished job with a TTL, not already being deleted.
fn needs_cleanup(j: &Job) -> bool {
    j.metadata.deletion_timestamp.is_none()
        && j.spec
            .as_ref()
            .and_then(|s| s.ttl_seconds_after_finished)
            .is_some()
        && job::finished(j).is_some()
}

/// Time left before the job may go (zero when it may go now); `None` when it needs no
/// cleanup.
pub fn time_left(j: &Job, now: Timestamp) -> Option<Duration> {
    if !needs_cleanup(j) {
        return None;
    }
    let ttl = j.spec.as_ref()?.ttl_seconds_after_finished?;
    let Some(finished_at) = job::finished(j)?.last_transition_time.as_ref() else {
        tracing::warn!(job = %key_of(j), "finished job without a finish time; not cleaning it up");
        return None;
    };
    if finished_at.0 > now {
        tracing::warn!(job = %key_of(j), "job finished in the future (clock skew?); cleanup deferred");
    }
    let expires = finished_at.0.as_millisecond() + i64::from(ttl.max(0)) * 1000;
    let left = expires - now.as_millisecond();
    Some(Duration::from_millis(left.max(0) as u64))
}

impl TtlAfterFinishedController {
    pub fn new(client: Client, jobs: Informer<Job>) -> Arc<Self> {
        let c = Arc::new(TtlAfterFinishedController {
            client,
            jobs,
            queue: WorkQueue::new(),
        });
        let me = c.clone();
        c.jobs.on_change(move |ch: &Change<Job>| {
            if let Some(j) = &ch.new
                && needs_cleanup(j)
            {
                me.queue.add(key_of(j.as_ref()));
            }
        });
        c
    }

    pub async fn run(self: Arc<Self>, workers: usize) {
        reconciler::run(&self, &self.queue, &[&self.jobs], workers).await;
    }
}

impl Reconciler for TtlAfterFinishedController {
    const NAME: &'static str = "ttl-after-finished";

    async fn reconcile(self: &Arc<Self>, key: &str) -> anyhow::Result<Action> {
        let Some(cached) = self.jobs.get_key(key) else {
            return Ok(Action::Done);
        };
        match time_left(&cached, Timestamp::now()) {
            None => return Ok(Action::Done),
            Some(left) if !left.is_zero() => return Ok(Action::RequeueAfter(left)),
            Some(_) => {}
        }
        // The cache may be stale (a TTL just changed): decide on a fresh read.
        let ns = cached.metadata.namespace.as_deref().unwrap_or_default();
        let name = cached.metadata.name.as_deref().unwrap_or_default();
        let api: Api<Job> = Api::namespaced(self.client.clone(), ns);
        let fresh = match api.get(name).await {
            Ok(j) => j,
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(Action::Done),
            Err(e) => return Err(e).context("reading the job"),
        };
        match time_left(&fresh, Timestamp::now()) {
            None => return Ok(Action::Done),
            Some(left) if !left.is_zero() => return Ok(Action::RequeueAfter(left)),
            Some(_) => {}
        }
        tracing::info!(job = key, "deleting finished job whose TTL expired");
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Foreground),
            preconditions: Some(Preconditions {
                uid: fresh.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(name, &dp).await {
            Ok(_) => Ok(Action::Done),
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(Action::Done),
            Err(e) => Err(e).context("deleting the job"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use k8s_openapi::api::batch::v1::{JobCondition, JobSpec, JobStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    #[test]
    fn expires_ttl_seconds_after_the_finish() {
        let at = |s: &str| -> Timestamp { s.parse().unwrap() };
        let mut j = Job {
            spec: Some(JobSpec {
                ttl_seconds_after_finished: Some(100),
                ..Default::default()
            }),
            status: Some(JobStatus::default()),
            ..Default::default()
        };
        let now = at("2024-01-01T00:01:00Z");
        assert_eq!(time_left(&j, now), None, "not finished");
        j.status.as_mut().unwrap().conditions = Some(vec![JobCondition {
            type_: "Complete".into(),
            status: "True".into(),
            last_transition_time: Some(Time(at("2024-01-01T00:00:00Z"))),
            ..Default::default()
        }]);
        assert_eq!(time_left(&j, now), Some(Duration::from_secs(40)));
        assert_eq!(
            time_left(&j, at("2024-01-01T00:05:00Z")),
            Some(Duration::ZERO)
        );
        j.spec.as_mut().unwrap().ttl_seconds_after_finished = None;
        assert_eq!(time_left(&j, now), None, "no TTL");
    }
}
