//! Stale `DisruptionTarget` conditions (upstream's stale pod disruption worker): a pod marked
//! as about to be disrupted that, two minutes on, is neither being deleted nor finished was
//! not disrupted after all, so the condition goes back to False.

use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::{Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};

/// Upstream's `stalePodDisruptionTimeout`.
pub const STALE_TIMEOUT: Duration = Duration::from_secs(120);

/// When the pod's `DisruptionTarget` condition becomes stale (zero: it is), or `None` when it
/// has none that can be (the kubelet's own, or a pod that is going or finished).
pub fn stale_after(pod: &Pod, now: Timestamp) -> Option<Duration> {
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let status = pod.status.as_ref()?;
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return None;
    }
    let c = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "DisruptionTarget")?;
    if c.status != "True" || c.reason.as_deref() == Some("TerminationByKubelet") {
        return None;
    }
    let since = c
        .last_transition_time
        .as_ref()
        .map_or(0, |t| now.as_millisecond() - t.0.as_millisecond());
    let left = i64::try_from(STALE_TIMEOUT.as_millis()).unwrap_or(i64::MAX) - since;
    Some(Duration::from_millis(u64::try_from(left).unwrap_or(0)))
}

/// The pod with its `DisruptionTarget` condition False (upstream's `UpdatePodCondition` with
/// a bare condition: reason and message go).
pub fn reset(pod: &Pod, now: Timestamp) -> Pod {
    let mut pod = pod.clone();
    let conditions = pod
        .status
        .get_or_insert_with(Default::default)
        .conditions
        .get_or_insert_with(Vec::new);
    let bare = PodCondition {
        type_: "DisruptionTarget".into(),
        status: "False".into(),
        last_transition_time: Some(Time(now)),
        ..Default::default()
    };
    match conditions
        .iter_mut()
        .find(|c| c.type_ == "DisruptionTarget")
    {
        Some(c) => *c = bare,
        None => conditions.push(bare),
    }
    pod
}

/// Resets the condition of the pod `key` if it is still stale; `Some(d)`: look again after d.
pub async fn sync(
    client: &Client,
    pods: &client_go::informer::Informer<Pod>,
    key: &str,
) -> anyhow::Result<Option<Duration>> {
    let Some(pod) = pods.get_key(key) else {
        return Ok(None);
    };
    let now = Timestamp::now();
    match stale_after(&pod, now) {
        None => return Ok(None),
        Some(left) if !left.is_zero() => return Ok(Some(left)),
        Some(_) => {}
    }
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    Api::<Pod>::namespaced(client.clone(), ns)
        .replace_status(name, &PostParams::default(), &reset(&pod, now))
        .await
        .context("resetting a stale DisruptionTarget condition")?;
    tracing::info!(pod = key, "reset stale DisruptionTarget condition to False");
    Ok(None)
}
