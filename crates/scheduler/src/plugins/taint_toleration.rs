//! TaintToleration: NoSchedule and NoExecute taints keep out pods that do not tolerate
//! them; PreferNoSchedule taints lower a node's score by how many the pod does not tolerate.

use k8s_openapi::api::core::v1::{Taint, Toleration};

use crate::framework::{CycleState, Plugin, Status, default_normalize};
use crate::nodeinfo::NodeInfo;

pub struct TaintToleration;

/// Whether `t` tolerates `taint` (Kubernetes' ToleratesTaint).
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = t.effect.as_deref().filter(|e| !e.is_empty())
        && effect != taint.effect
    {
        return false;
    }
    let key = t.key.as_deref().unwrap_or_default();
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        // An empty key with Exists tolerates everything.
        "Exists" => true,
        "Equal" | "" => {
            t.value.as_deref().unwrap_or_default() == taint.value.as_deref().unwrap_or_default()
                && !key.is_empty()
        }
        _ => false,
    }
}

fn tolerations(state: &CycleState) -> &[Toleration] {
    state
        .pod
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default()
}

fn taints(node: &NodeInfo) -> &[Taint] {
    node.node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default()
}

impl Plugin for TaintToleration {
    fn name(&self) -> &'static str {
        "TaintToleration"
    }
    fn filter(&self, state: &CycleState, node: &NodeInfo) -> Status {
        let tols = tolerations(state);
        let untolerated = taints(node).iter().find(|taint| {
            matches!(taint.effect.as_str(), "NoSchedule" | "NoExecute")
                && !tols.iter().any(|t| tolerates(t, taint))
        });
        match untolerated {
            None => Status::Success,
            Some(t) => Status::unresolvable(format!(
                "node(s) had untolerated taint {{{}: {}}}",
                t.key,
                t.value.as_deref().unwrap_or_default()
            )),
        }
    }
    fn score(&self, state: &CycleState, node: &NodeInfo) -> i64 {
        let tols: Vec<&Toleration> = tolerations(state)
            .iter()
            .filter(|t| {
                t.effect
                    .as_deref()
                    .is_none_or(|e| e.is_empty() || e == "PreferNoSchedule")
            })
            .collect();
        taints(node)
            .iter()
            .filter(|taint| taint.effect == "PreferNoSchedule")
            .filter(|taint| !tols.iter().any(|t| tolerates(t, taint)))
            .count() as i64
    }
    fn normalize(&self, _state: &CycleState, scores: &mut [i64]) {
        default_normalize(scores, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tol(key: &str, op: &str, value: &str, effect: &str) -> Toleration {
        Toleration {
            key: Some(key.into()).filter(|k: &String| !k.is_empty()),
            operator: Some(op.into()),
            value: Some(value.into()).filter(|v: &String| !v.is_empty()),
            effect: Some(effect.into()).filter(|e: &String| !e.is_empty()),
            toleration_seconds: None,
        }
    }

    #[test]
    fn tolerations_match_as_kubernetes_matches_them() {
        let taint = Taint {
            key: "dedicated".into(),
            value: Some("gpu".into()),
            effect: "NoSchedule".into(),
            time_added: None,
        };
        assert!(tolerates(
            &tol("dedicated", "Equal", "gpu", "NoSchedule"),
            &taint
        ));
        assert!(tolerates(&tol("dedicated", "Equal", "gpu", ""), &taint));
        assert!(tolerates(&tol("dedicated", "Exists", "", ""), &taint));
        assert!(tolerates(&tol("", "Exists", "", ""), &taint));
        assert!(!tolerates(
            &tol("dedicated", "Equal", "cpu", "NoSchedule"),
            &taint
        ));
        assert!(!tolerates(
            &tol("dedicated", "Equal", "gpu", "NoExecute"),
            &taint
        ));
        assert!(!tolerates(&tol("other", "Exists", "", ""), &taint));
    }
}
