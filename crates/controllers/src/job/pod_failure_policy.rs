//! `spec.podFailurePolicy` (upstream's matchPodFailurePolicy): which rule a failed pod
//! matches, and what that does to the job.

use super::*;

/// The action of the pod failure policy rule a failed pod matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PolicyAction {
    FailJob,
    FailIndex,
    Ignore,
    Count,
}

/// Upstream's matchPodFailurePolicy: the first rule the failed pod matches decides. Returns
/// the job failure message (FailJob), whether the failure counts toward the backoff limits
/// (not for Ignore), and the action.
pub(super) fn match_pod_failure_policy(
    job: &Job,
    pod: &Pod,
) -> (Option<String>, bool, Option<PolicyAction>) {
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
pub(super) fn fail_job_message(job: &Job, all: &[Arc<Pod>]) -> Option<String> {
    job.spec.as_ref()?.pod_failure_policy.as_ref()?;
    let only_failed = only_replace_failed(job);
    all.iter()
        .filter(|p| pod_failed(p, only_failed))
        .find_map(|p| match_pod_failure_policy(job, p).0)
}

/// Failed pods that count toward the backoff limit (not ignored by the pod failure policy).
pub(super) fn counted_failures(job: &Job, failed: &[Arc<Pod>]) -> usize {
    failed
        .iter()
        .filter(|p| match_pod_failure_policy(job, p).1)
        .count()
}
