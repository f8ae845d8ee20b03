//! The arithmetic of a budget's status (upstream's `getExpectedPodCount`, `countHealthyPods`,
//! `buildDisruptedPodMap`, `updatePdbStatus` and the `DisruptionAllowed` condition helpers):
//! pure functions of the budget, its pods and the time, so they are tested without a server.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

/// Upstream's `DeletionTimeout`: how long an eviction the API server approved may take to show
/// as a deleted pod before the disruption is given back.
pub const DELETION_TIMEOUT: Duration = Duration::from_secs(120);

pub const CONDITION: &str = "DisruptionAllowed";
pub const SUFFICIENT_PODS: &str = "SufficientPods";
pub const INSUFFICIENT_PODS: &str = "InsufficientPods";
pub const SYNC_FAILED: &str = "SyncFailed";

/// Whether the pod's Ready condition is True (upstream's `IsPodReady`: "healthy").
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// apimachinery's `GetScaledValueFromIntOrPercent` rounding up: an integer as is, `N%` of
/// `total`.
pub fn scaled_value(v: &IntOrString, total: i32) -> anyhow::Result<i32> {
    match v {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let Some(number) = s.strip_suffix('%') else {
                anyhow::bail!("invalid type: string is not a percentage");
            };
            let percent: i64 = number
                .parse()
                .map_err(|e| anyhow::anyhow!("invalid value \"{s}\": {e}"))?;
            let scaled = (percent * i64::from(total) + 99).div_euclid(100);
            Ok(i32::try_from(scaled)?)
        }
    }
}

/// Whether the budget needs its pods' controllers' scale: maxUnavailable, or minAvailable as
/// a percentage.
pub fn needs_scale(pdb: &PodDisruptionBudget) -> bool {
    let spec = pdb.spec.as_ref();
    spec.is_some_and(|s| s.max_unavailable.is_some())
        || matches!(
            spec.and_then(|s| s.min_available.as_ref()),
            Some(IntOrString::String(_))
        )
}

/// What the budget asks for, given how many pods it selects and (when [`needs_scale`]) the
/// summed scale of their controllers: `(expectedPods, desiredHealthy)`.
pub fn expected_and_desired(
    pdb: &PodDisruptionBudget,
    pod_count: usize,
    scale: i32,
) -> anyhow::Result<(i32, i32)> {
    let spec = pdb.spec.as_ref();
    if let Some(max) = spec.and_then(|s| s.max_unavailable.as_ref()) {
        let max = scaled_value(max, scale)?;
        return Ok((scale, (scale - max).max(0)));
    }
    match spec.and_then(|s| s.min_available.as_ref()) {
        Some(IntOrString::Int(min)) => Ok((i32::try_from(pod_count)?, *min)),
        Some(min @ IntOrString::String(_)) => Ok((scale, scaled_value(min, scale)?)),
        None => Ok((0, 0)),
    }
}

/// The entries of `disruptedPods` still pending at `now` for the pods that exist and are not
/// yet being deleted, with when to look again (the earliest deadline), and the pods whose
/// eviction expired without their deletion (upstream's NotDeleted).
pub struct DisruptedPods {
    pub pending: BTreeMap<String, Time>,
    pub recheck: Option<Timestamp>,
    pub expired: Vec<String>,
}

pub fn build_disrupted_pods(
    pods: &[&Pod],
    pdb: &PodDisruptionBudget,
    now: Timestamp,
) -> DisruptedPods {
    let mut out = DisruptedPods {
        pending: BTreeMap::new(),
        recheck: None,
        expired: Vec::new(),
    };
    let Some(listed) = pdb.status.as_ref().and_then(|s| s.disrupted_pods.as_ref()) else {
        return out;
    };
    for pod in pods {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let name = pod.metadata.name.clone().unwrap_or_default();
        let Some(at) = listed.get(&name) else {
            continue;
        };
        let deadline = deadline_of(at);
        if deadline < now {
            out.expired.push(name);
        } else {
            out.recheck = Some(out.recheck.map_or(deadline, |r| r.min(deadline)));
            out.pending.insert(name, at.clone());
        }
    }
    out
}

fn deadline_of(at: &Time) -> Timestamp {
    at.0.checked_add(DELETION_TIMEOUT).unwrap_or(at.0)
}

/// Ready pods that are neither being deleted nor about to be (an approved eviction).
pub fn count_healthy(pods: &[&Pod], disrupted: &BTreeMap<String, Time>, now: Timestamp) -> i32 {
    let counted = pods.iter().filter(|pod| {
        if pod.metadata.deletion_timestamp.is_some() {
            return false;
        }
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        if disrupted.get(name).is_some_and(|at| deadline_of(at) > now) {
            return false;
        }
        is_ready(pod)
    });
    i32::try_from(counted.count()).unwrap_or(i32::MAX)
}

/// The numbers a sync computed.
pub struct Computed {
    pub current_healthy: i32,
    pub desired_healthy: i32,
    pub expected_pods: i32,
    pub disrupted_pods: BTreeMap<String, Time>,
}

/// The budget with its new status, or `None` when the status already says all this
/// (upstream's `updatePdbStatus`: no write then).
pub fn updated(
    pdb: &PodDisruptionBudget,
    c: Computed,
    now: Timestamp,
) -> Option<PodDisruptionBudget> {
    // Nothing is allowed while no pods are expected: a budget whose first pods appear is
    // safe until this controller has counted them.
    let mut allowed = c.current_healthy - c.desired_healthy;
    if c.expected_pods <= 0 || allowed <= 0 {
        allowed = 0;
    }
    let generation = pdb.metadata.generation.unwrap_or(0);
    let old = pdb.status.clone().unwrap_or_default();
    let disrupted = (!c.disrupted_pods.is_empty()).then_some(c.disrupted_pods);
    let unchanged = old.current_healthy == c.current_healthy
        && old.desired_healthy == c.desired_healthy
        && old.expected_pods == c.expected_pods
        && old.disruptions_allowed == allowed
        && old.disrupted_pods.clone().filter(|m| !m.is_empty()) == disrupted
        && old.observed_generation.unwrap_or(0) == generation
        && conditions_up_to_date(pdb);
    if unchanged {
        return None;
    }
    let mut new = pdb.clone();
    new.status = Some(PodDisruptionBudgetStatus {
        current_healthy: c.current_healthy,
        desired_healthy: c.desired_healthy,
        expected_pods: c.expected_pods,
        disruptions_allowed: allowed,
        disrupted_pods: disrupted,
        observed_generation: Some(generation),
        conditions: old.conditions,
    });
    update_disruption_allowed_condition(&mut new, now);
    Some(new)
}

/// The budget as upstream's `failSafe` leaves it: nothing allowed, `SyncFailed` saying why.
pub fn fail_safe(pdb: &PodDisruptionBudget, why: &str, now: Timestamp) -> PodDisruptionBudget {
    let mut new = pdb.clone();
    let status = new.status.get_or_insert_with(Default::default);
    status.disruptions_allowed = 0;
    let observed = status.observed_generation.unwrap_or(0);
    set_status_condition(
        status.conditions.get_or_insert_with(Vec::new),
        "False",
        SYNC_FAILED,
        why,
        observed,
        now,
    );
    new
}

/// component-helpers' `UpdateDisruptionAllowedCondition`.
pub fn update_disruption_allowed_condition(pdb: &mut PodDisruptionBudget, now: Timestamp) {
    let status = pdb.status.get_or_insert_with(Default::default);
    let observed = status.observed_generation.unwrap_or(0);
    let (value, reason) = if status.disruptions_allowed > 0 {
        ("True", SUFFICIENT_PODS)
    } else {
        ("False", INSUFFICIENT_PODS)
    };
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    set_status_condition(conditions, value, reason, "", observed, now);
}

/// component-helpers' `ConditionsAreUpToDate`.
pub fn conditions_up_to_date(pdb: &PodDisruptionBudget) -> bool {
    let Some(status) = pdb.status.as_ref() else {
        return false;
    };
    let Some(c) = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == CONDITION)
    else {
        return false;
    };
    if status.observed_generation.unwrap_or(0) != pdb.metadata.generation.unwrap_or(0) {
        return false;
    }
    if status.disruptions_allowed > 0 {
        c.status == "True" && c.reason == SUFFICIENT_PODS
    } else {
        c.status == "False" && c.reason == INSUFFICIENT_PODS
    }
}

/// apimachinery's `SetStatusCondition` for `DisruptionAllowed`: the transition time moves
/// only when the status does.
fn set_status_condition(
    conditions: &mut Vec<Condition>,
    status: &str,
    reason: &str,
    message: &str,
    observed: i64,
    now: Timestamp,
) {
    let observed = (observed != 0).then_some(observed);
    match conditions.iter_mut().find(|c| c.type_ == CONDITION) {
        Some(c) => {
            if c.status != status {
                c.status = status.to_string();
                c.last_transition_time = Time(now);
            }
            c.reason = reason.to_string();
            c.message = message.to_string();
            c.observed_generation = observed;
        }
        None => conditions.push(Condition {
            type_: CONDITION.to_string(),
            status: status.to_string(),
            reason: reason.to_string(),
            message: message.to_string(),
            observed_generation: observed,
            last_transition_time: Time(now),
        }),
    }
}
