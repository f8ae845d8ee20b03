//! The Node table's STATUS column as kubectl's printer writes it: `Ready`, `NotReady` (the
//! Ready condition False or Unknown), `Unknown` (no Ready condition at all), then
//! `,SchedulingDisabled` for a cordoned node.

use serde_json::Value;

pub(super) fn status(obj: &Value) -> String {
    let ready = obj
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
        })
        .map(|c| c.get("status").and_then(Value::as_str) == Some("True"));
    let mut status = match ready {
        Some(true) => "Ready",
        Some(false) => "NotReady",
        None => "Unknown",
    }
    .to_string();
    if obj.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push_str(",SchedulingDisabled");
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(ready: Option<&str>, unschedulable: bool) -> Value {
        let conditions: Vec<Value> = ready
            .map(|s| json!({"type": "Ready", "status": s}))
            .into_iter()
            .chain([json!({"type": "MemoryPressure", "status": "False"})])
            .collect();
        json!({"spec": {"unschedulable": unschedulable}, "status": {"conditions": conditions}})
    }

    #[test]
    fn status_column_as_kubectl_prints_it() {
        assert_eq!(status(&node(Some("True"), false)), "Ready");
        assert_eq!(status(&node(Some("False"), false)), "NotReady");
        assert_eq!(status(&node(Some("Unknown"), false)), "NotReady");
        assert_eq!(status(&node(None, false)), "Unknown");
        assert_eq!(status(&json!({"metadata": {"name": "n"}})), "Unknown");
        assert_eq!(
            status(&node(Some("True"), true)),
            "Ready,SchedulingDisabled"
        );
        assert_eq!(
            status(&node(Some("Unknown"), true)),
            "NotReady,SchedulingDisabled"
        );
    }
}
