//! Pod re-creation back-off after failures (upstream's DefaultJobPodFailureBackOff doubling
//! to MaxJobPodFailureBackOff) and when a failed pod ended.

use super::*;

/// Consecutive pod failures since the last success, and when the last one happened.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Backoff {
    pub(super) failures: u32,
    pub(super) last_failure: Option<Timestamp>,
}

impl Backoff {
    /// The record after the pods that finished since the last one: a success resets the
    /// count to the failures that came after it.
    pub(super) fn after(mut self, succeeded: &[Arc<Pod>], failed: &[Arc<Pod>]) -> Backoff {
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
    pub(super) fn remaining(&self, now: Timestamp) -> Duration {
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
pub(super) fn finished_time(pod: &Pod) -> Timestamp {
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
