//! DefaultTolerationSeconds: a new pod tolerates the `not-ready` and `unreachable` NoExecute
//! taints for 300 seconds unless it already tolerates them, so a node that stops reporting
//! evicts its pods after five minutes rather than at once.

use serde_json::{Value, json};

use crate::admission::{Attributes, Operation};

const NOT_READY: &str = "node.kubernetes.io/not-ready";
const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// Upstream's `--default-not-ready-toleration-seconds` and `--default-unreachable-...`.
const DEFAULT_SECONDS: i64 = 300;

/// Adds the two tolerations to a new pod where missing.
pub fn admit(a: &Attributes<'_>, pod: &mut Value) {
    if a.operation != Operation::Create || !a.is_core("Pod") {
        return;
    }
    add_tolerations(pod);
}

fn add_tolerations(pod: &mut Value) {
    let existing: Vec<Value> = pod
        .pointer("/spec/tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    // An empty key tolerates every taint, an empty effect every effect.
    let tolerates = |key: &str| {
        existing.iter().any(|t| {
            let k = t.get("key").and_then(Value::as_str).unwrap_or("");
            let e = t.get("effect").and_then(Value::as_str).unwrap_or("");
            (k == key || k.is_empty()) && (e == "NoExecute" || e.is_empty())
        })
    };
    let mut added = Vec::new();
    for key in [NOT_READY, UNREACHABLE] {
        if !tolerates(key) {
            added.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": DEFAULT_SECONDS}));
        }
    }
    if added.is_empty() {
        return;
    }
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let mut all = existing;
    all.extend(added);
    spec.insert("tolerations".into(), Value::Array(all));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(pod: &Value) -> Vec<String> {
        pod["spec"]["tolerations"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|t| {
                        format!(
                            "{}:{}",
                            t["key"].as_str().unwrap_or(""),
                            t["tolerationSeconds"]
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn adds_both_when_missing() {
        let mut pod = json!({"spec": {"containers": []}});
        add_tolerations(&mut pod);
        assert_eq!(
            keys(&pod),
            [format!("{NOT_READY}:300"), format!("{UNREACHABLE}:300")]
        );
        assert_eq!(pod["spec"]["tolerations"][0]["operator"], "Exists");
        assert_eq!(pod["spec"]["tolerations"][0]["effect"], "NoExecute");
    }

    #[test]
    fn keeps_existing_tolerations() {
        let mut pod = json!({"spec": {"tolerations": [
            {"key": NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10}
        ]}});
        add_tolerations(&mut pod);
        assert_eq!(
            keys(&pod),
            [format!("{NOT_READY}:10"), format!("{UNREACHABLE}:300")]
        );
        // A wildcard toleration (no key, no effect) tolerates both.
        let mut pod = json!({"spec": {"tolerations": [{"operator": "Exists"}]}});
        add_tolerations(&mut pod);
        assert_eq!(pod["spec"]["tolerations"].as_array().map(Vec::len), Some(1));
        // A NoSchedule toleration of the key does not count.
        let mut pod = json!({"spec": {"tolerations": [{"key": UNREACHABLE, "operator": "Exists", "effect": "NoSchedule"}]}});
        add_tolerations(&mut pod);
        assert_eq!(pod["spec"]["tolerations"].as_array().map(Vec::len), Some(3));
    }
}
