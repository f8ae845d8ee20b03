//! The Node table, as upstream's `printNode`: STATUS as kubectl's printer writes it (`Ready`,
//! `NotReady` for a Ready condition False or Unknown, `Unknown` without one, then
//! `,SchedulingDisabled` for a cordoned node), ROLES, AGE, VERSION; wide: addresses, OS image,
//! kernel and runtime.

use serde_json::{Value, json};

use super::{Column, NAME, Printer, col, or_none, s};

pub const PRINTER: Printer = Printer { columns, cells };

fn columns() -> Vec<Column> {
    vec![
        NAME,
        col("Status", 0),
        col("Roles", 0),
        col("Age", 0),
        col("Version", 0),
        col("Internal-IP", 1),
        col("External-IP", 1),
        col("OS-Image", 1),
        col("Kernel-Version", 1),
        col("Container-Runtime", 1),
    ]
}

fn cells(obj: &Value, name: Value, age: Value) -> Vec<Value> {
    let roles: Vec<String> = obj
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|l| {
            l.keys()
                .filter_map(|k| {
                    k.strip_prefix("node-role.kubernetes.io/")
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    let addr = |t: &str| {
        obj.pointer("/status/addresses")
            .and_then(Value::as_array)
            .and_then(|a| {
                a.iter()
                    .find(|x| x.get("type").and_then(Value::as_str) == Some(t))
            })
            .map(|x| s(x.get("address")))
            .unwrap_or_default()
    };
    vec![
        name,
        json!(status(obj)),
        json!(or_none(roles.join(","))),
        age,
        json!(s(obj.pointer("/status/nodeInfo/kubeletVersion"))),
        json!(or_none(addr("InternalIP"))),
        json!(or_none(addr("ExternalIP"))),
        json!(s(obj.pointer("/status/nodeInfo/osImage"))),
        json!(s(obj.pointer("/status/nodeInfo/kernelVersion"))),
        json!(s(obj.pointer("/status/nodeInfo/containerRuntimeVersion"))),
    ]
}

fn status(obj: &Value) -> String {
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
