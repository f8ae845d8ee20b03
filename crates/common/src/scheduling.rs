//! Node selection rules shared by the scheduler and the DaemonSet controller (Kubernetes
//! keeps them in `component-helpers/scheduling`): node selector terms and taint tolerations.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    NodeSelectorRequirement, NodeSelectorTerm, Pod, Taint, Toleration,
};

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(bound)) = (
                value.and_then(|v| v.parse::<i64>().ok()),
                values.first().and_then(|b| b.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if r.operator == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

/// Whether a node (its labels and name) matches one selector term: every expression and
/// field requirement holds; an empty term matches nothing.
pub fn term_matches(t: &NodeSelectorTerm, labels: &BTreeMap<String, String>, name: &str) -> bool {
    let exprs = t.match_expressions.as_deref().unwrap_or_default();
    let fields = t.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs
        .iter()
        .all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| {
            let v = (r.key == "metadata.name").then_some(name);
            requirement_matches(r, v)
        })
}

/// Whether the pod's nodeSelector and required node affinity admit a node.
pub fn node_matches(pod: &Pod, labels: &BTreeMap<String, String>, name: &str) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return true;
    };
    if let Some(sel) = spec.node_selector.as_ref()
        && !sel.iter().all(|(k, v)| labels.get(k) == Some(v))
    {
        return false;
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    match required {
        None => true,
        Some(sel) => sel
            .node_selector_terms
            .iter()
            .any(|t| term_matches(t, labels, name)),
    }
}

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

/// The first NoSchedule/NoExecute taint none of `tolerations` tolerates.
pub fn untolerated<'a>(taints: &'a [Taint], tolerations: &[Toleration]) -> Option<&'a Taint> {
    taints.iter().find(|taint| {
        matches!(taint.effect.as_str(), "NoSchedule" | "NoExecute")
            && !tolerations.iter().any(|t| tolerates(t, taint))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        }
    }

    #[test]
    fn operators() {
        assert!(requirement_matches(
            &req("zone", "In", &["a", "b"]),
            Some("a")
        ));
        assert!(!requirement_matches(&req("zone", "In", &["a"]), None));
        assert!(requirement_matches(&req("zone", "NotIn", &["a"]), None));
        assert!(requirement_matches(&req("zone", "Exists", &[]), Some("")));
        assert!(requirement_matches(&req("cores", "Gt", &["4"]), Some("8")));
        assert!(!requirement_matches(
            &req("cores", "Gt", &["4"]),
            Some("four")
        ));
        assert!(requirement_matches(&req("cores", "Lt", &["4"]), Some("2")));
        let empty = NodeSelectorTerm::default();
        assert!(!term_matches(&empty, &BTreeMap::new(), "n"));
        let by_name = NodeSelectorTerm {
            match_fields: Some(vec![req("metadata.name", "In", &["n1"])]),
            ..Default::default()
        };
        assert!(term_matches(&by_name, &BTreeMap::new(), "n1"));
        assert!(!term_matches(&by_name, &BTreeMap::new(), "n2"));
    }

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
