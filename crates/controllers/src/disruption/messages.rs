//! Event texts in upstream's words, with Go's formatting where they print a value.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// A selector as Go's generated `(*LabelSelector).String()` prints it (the `%v` of upstream's
/// UnmanagedPods event): `&LabelSelector{MatchLabels:map[string]string{app: web,},...}`.
pub fn go_selector(selector: Option<&LabelSelector>) -> String {
    let Some(s) = selector else {
        return "nil".to_string();
    };
    let labels: String = s
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}: {v},"))
        .collect();
    let exprs: String = s
        .match_expressions
        .iter()
        .flatten()
        .map(|e| {
            let values = e.values.as_deref().unwrap_or_default().join(" ");
            format!(
                "LabelSelectorRequirement{{Key:{},Operator:{},Values:[{values}],}},",
                e.key, e.operator
            )
        })
        .collect();
    format!(
        "&LabelSelector{{MatchLabels:map[string]string{{{labels}}},MatchExpressions:[]LabelSelectorRequirement{{{exprs}}},}}"
    )
}

pub fn unmanaged_pods(selector: Option<&LabelSelector>) -> String {
    format!(
        "Pods selected by this PodDisruptionBudget (selector: {}) were found to be unmanaged. As a result, the status of the PDB cannot be calculated correctly, which may result in undefined behavior. To account for these pods please set \".spec.minAvailable\" field of the PDB to an integer value.",
        go_selector(selector)
    )
}

/// Upstream prints the budget's namespace twice (its arguments are namespace, namespace).
pub fn not_deleted(pdb_namespace: &str) -> String {
    format!("Pod was expected by PDB {pdb_namespace}/{pdb_namespace} to be deleted but it wasn't")
}

pub fn multiple_budgets(namespace: &str, pod: &str, chosen: &str) -> String {
    format!(
        "Pod {namespace:?}/{pod:?} matches multiple PodDisruptionBudgets.  Chose {chosen:?} arbitrarily."
    )
}

/// Why a selector cannot be used (apimachinery's `LabelSelectorAsSelector` errors), if so.
pub fn selector_error(selector: &LabelSelector) -> Option<String> {
    selector.match_expressions.iter().flatten().find_map(|e| {
        let empty = e.values.as_ref().is_none_or(Vec::is_empty);
        match e.operator.as_str() {
            "In" | "NotIn" if empty => {
                Some("for 'in', 'notin' operators, values set can't be empty".to_string())
            }
            "Exists" | "DoesNotExist" if !empty => {
                Some("values set must be empty for exists and does not exist".to_string())
            }
            "In" | "NotIn" | "Exists" | "DoesNotExist" => None,
            op => Some(format!("{op:?} is not a valid label selector operator")),
        }
    })
}
