//! The eviction manager's pod admit handler (upstream's `managerImpl.Admit`): while the node
//! has a pressure condition, new pods that would make it worse are refused at the kubelet
//! (the scheduler's taints are only advice a pod can tolerate or a direct `nodeName` skips).
//! Memory pressure alone refuses BestEffort pods (they have no request the scheduler
//! accounted for), unless they tolerate the `memory-pressure` NoSchedule taint; any other
//! condition refuses every pod. Critical pods are always let in. A refused pod is left
//! `Failed` with reason `Evicted`, as upstream's `rejectPod` leaves it.

use std::collections::{BTreeSet, HashSet};
use std::sync::Mutex;

use k8s_openapi::api::core::v1::{Pod, PodStatus, Taint};
use tracing::info;

use super::Pressure;
use crate::events::EventTarget;
use crate::resources::{QosClass, is_critical_pod, qos_class};
use crate::status::{self, StatusManager};

/// The reason of a refused pod, upstream's eviction `Reason`.
pub const REASON: &str = "Evicted";

/// Why a pod was refused: the event's reason and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub reason: &'static str,
    pub message: String,
}

/// Whether the node, with the pressure `conditions` True, takes `pod`.
pub fn admit(pod: &Pod, conditions: &BTreeSet<&'static str>) -> Result<(), Rejection> {
    if conditions.is_empty() || is_critical_pod(pod) {
        return Ok(());
    }
    if conditions.len() == 1 && conditions.contains("MemoryPressure") {
        if qos_class(pod) != QosClass::BestEffort {
            return Ok(());
        }
        let taint = Taint {
            key: "node.kubernetes.io/memory-pressure".into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        let tolerations = pod.spec.as_ref().and_then(|s| s.tolerations.as_deref());
        if tolerations
            .unwrap_or_default()
            .iter()
            .any(|t| common::scheduling::tolerates(t, &taint))
        {
            return Ok(());
        }
    }
    // Go's `%v` of a slice of condition types: `[MemoryPressure DiskPressure]`.
    let list: Vec<&str> = conditions.iter().copied().collect();
    Err(Rejection {
        reason: REASON,
        message: format!("The node had condition: [{}]. ", list.join(" ")),
    })
}

/// What a refused pod's status becomes (upstream's `rejectPod`): Failed, the reason, the
/// message after "Pod was rejected: ", its QoS class kept.
pub fn rejected_status(pod: &Pod, rejection: &Rejection) -> PodStatus {
    PodStatus {
        phase: Some("Failed".into()),
        reason: Some(rejection.reason.into()),
        message: Some(format!("Pod was rejected: {}", rejection.message)),
        qos_class: Some(qos_class(pod).as_str().into()),
        ..Default::default()
    }
}

/// Admission at the door of the pod workers: pods new to this kubelet go through [`admit`];
/// refused ones get their Failed status and an event, and are never handed to a worker
/// while the API still shows them running-to-be (their status write may lag behind other
/// updates), so nothing of theirs starts.
pub struct PodAdmission {
    pressure: Pressure,
    status: StatusManager,
    events: client_go::events::Recorder,
    /// Pods refused and not yet seen Failed or deleting in the API.
    rejected: Mutex<HashSet<String>>,
}

impl PodAdmission {
    pub fn new(
        pressure: Pressure,
        status: StatusManager,
        events: client_go::events::Recorder,
    ) -> Self {
        PodAdmission {
            pressure,
            status,
            events,
            rejected: Mutex::new(HashSet::new()),
        }
    }

    fn rejected(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.rejected.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `pod` (an update for a pod with no worker yet when `new`) may go to the pod
    /// workers. Terminal and deleting pods always may: their workers only clean up.
    pub fn let_in(&self, pod: &Pod, new: bool) -> bool {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if status::is_terminal(pod) || pod.metadata.deletion_timestamp.is_some() {
            self.rejected().remove(&uid);
            return true;
        }
        if self.rejected().contains(&uid) {
            return false;
        }
        if !new {
            return true;
        }
        let Err(rejection) = admit(pod, &self.pressure.conditions()) else {
            return true;
        };
        info!(
            pod = %format!(
                "{}/{}",
                pod.metadata.namespace.as_deref().unwrap_or_default(),
                pod.metadata.name.as_deref().unwrap_or_default()
            ),
            message = %rejection.message,
            "pod refused: the node is under pressure"
        );
        EventTarget::pod(&self.events, pod).warning(rejection.reason, rejection.message.clone());
        self.status.set(pod, &rejected_status(pod, &rejection));
        self.rejected().insert(uid);
        false
    }

    /// The pod is gone from the API.
    pub fn forget(&self, uid: &str) {
        self.rejected().remove(uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "default"},
            "spec": spec}))
        .unwrap_or_default()
    }

    fn set(cs: &[&'static str]) -> BTreeSet<&'static str> {
        cs.iter().copied().collect()
    }

    #[test]
    fn memory_pressure_refuses_best_effort_pods_only() {
        let best_effort = pod(json!({"containers": [{"name": "c"}]}));
        let burstable = pod(json!({"containers": [{"name": "c",
            "resources": {"requests": {"memory": "10Mi"}}}]}));
        let tolerating = pod(json!({"containers": [{"name": "c"}], "tolerations": [
            {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists",
             "effect": "NoSchedule"}]}));
        let critical = pod(json!({"containers": [{"name": "c"}], "priority": 2000000000}));
        let memory = set(&["MemoryPressure"]);
        assert_eq!(admit(&best_effort, &set(&[])), Ok(()));
        let refused = admit(&best_effort, &memory).unwrap_err();
        assert_eq!(refused.reason, "Evicted");
        assert_eq!(
            refused.message,
            "The node had condition: [MemoryPressure]. "
        );
        assert_eq!(admit(&burstable, &memory), Ok(()));
        assert_eq!(admit(&tolerating, &memory), Ok(()));
        assert_eq!(admit(&critical, &memory), Ok(()));
        let st = rejected_status(&best_effort, &refused);
        assert_eq!(st.phase.as_deref(), Some("Failed"));
        assert_eq!(st.reason.as_deref(), Some("Evicted"));
        assert_eq!(
            st.message.as_deref(),
            Some("Pod was rejected: The node had condition: [MemoryPressure]. ")
        );
        assert_eq!(st.qos_class.as_deref(), Some("BestEffort"));
    }

    #[test]
    fn other_pressure_refuses_every_pod_but_critical_ones() {
        let burstable = pod(json!({"containers": [{"name": "c",
            "resources": {"requests": {"cpu": "10m"}}}]}));
        let tolerating = pod(json!({"containers": [{"name": "c"}], "tolerations": [
            {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists"}]}));
        let static_pod = {
            let mut p = pod(json!({"containers": [{"name": "c"}]}));
            p.metadata.annotations =
                Some([("kubernetes.io/config.source".to_owned(), "file".to_owned())].into());
            p
        };
        let disk = set(&["DiskPressure"]);
        assert_eq!(
            admit(&burstable, &disk).unwrap_err().message,
            "The node had condition: [DiskPressure]. "
        );
        assert_eq!(
            admit(&tolerating, &set(&["MemoryPressure", "PIDPressure"]))
                .unwrap_err()
                .message,
            "The node had condition: [MemoryPressure PIDPressure]. "
        );
        assert_eq!(admit(&static_pod, &disk), Ok(()));
    }
}
