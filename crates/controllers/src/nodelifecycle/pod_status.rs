//! Pods of a node that went silent are no longer Ready (upstream's MarkPodsNotReady): their
//! kubelet cannot say so, and Services must stop sending them traffic.

use std::sync::Arc;

use anyhow::{Context, anyhow};
use k8s_openapi::api::core::v1::{Pod, PodCondition, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};

use client_go::events::Recorder;
use client_go::informer::key_of;

/// Puts `cond` into `status` (upstream's UpdatePodCondition): the transition time is now
/// unless the status stays; true when anything changed.
pub fn update_pod_condition(status: &mut PodStatus, mut cond: PodCondition) -> bool {
    let now = Time(Timestamp::from_second(Timestamp::now().as_second()).unwrap_or_default());
    cond.last_transition_time = Some(now);
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let Some(old) = conditions.iter_mut().find(|c| c.type_ == cond.type_) else {
        conditions.push(cond);
        return true;
    };
    if cond.status == old.status {
        cond.last_transition_time = old.last_transition_time.clone();
    }
    let changed = *old != cond;
    *old = cond;
    changed
}

/// Sets the Ready condition of each of `pods` bound to `node` to False, with a
/// `NodeNotReady` warning on each changed pod.
pub async fn mark_pods_not_ready(
    client: &Client,
    recorder: &Recorder,
    pods: &[Arc<Pod>],
    node: &str,
) -> anyhow::Result<()> {
    let mut failed = Vec::new();
    for cached in pods {
        if cached.spec.as_ref().and_then(|s| s.node_name.as_deref()) != Some(node) {
            continue;
        }
        let mut pod = (**cached).clone();
        let status = pod.status.get_or_insert_with(Default::default);
        let Some(ready) = status
            .conditions
            .as_deref()
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .cloned()
        else {
            continue;
        };
        let not_ready = PodCondition {
            status: "False".into(),
            ..ready
        };
        if !update_pod_condition(status, not_ready) {
            continue;
        }
        let key = key_of(&pod);
        tracing::debug!(pod = %key, %node, "marking pod not ready");
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        match api
            .replace_status(&name, &PostParams::default(), &pod)
            .await
        {
            Ok(_) => {}
            // Gone already: nothing left to do for it.
            Err(kube::Error::Api(e)) if e.code == 404 => continue,
            Err(e) => {
                tracing::info!(pod = %key, error = %e, "failed to mark pod not ready");
                failed.push(format!("{key}: {e}"));
            }
        }
        recorder.record(&pod, true, "NodeNotReady", "Node is not ready".into());
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(anyhow!("{}", failed.join("; ")))
            .with_context(|| format!("marking pods on node {node} not ready"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cond(type_: &str, status: &str, at: Option<&str>) -> PodCondition {
        PodCondition {
            type_: type_.into(),
            status: status.into(),
            last_transition_time: at.map(|t| Time(t.parse().unwrap())),
            ..Default::default()
        }
    }

    #[test]
    fn conditions_keep_their_transition_time_while_their_status_stays() {
        let t = "2025-01-01T00:00:00Z";
        let mut s = PodStatus {
            conditions: Some(vec![cond("Ready", "True", Some(t))]),
            ..Default::default()
        };
        assert!(!update_pod_condition(&mut s, cond("Ready", "True", None)));
        assert!(update_pod_condition(&mut s, cond("Ready", "False", None)));
        let ready = &s.conditions.as_ref().unwrap()[0];
        assert_eq!(ready.status, "False");
        assert_ne!(ready.last_transition_time, Some(Time(t.parse().unwrap())));
        assert!(update_pod_condition(
            &mut s,
            cond("DisruptionTarget", "True", None)
        ));
        assert_eq!(s.conditions.as_ref().unwrap().len(), 2);
    }
}
