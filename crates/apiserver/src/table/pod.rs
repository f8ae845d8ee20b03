//! The Pod table, as upstream's `printPod`: READY, STATUS (the printer's derived reason),
//! RESTARTS, AGE; wide: IP, NODE, NOMINATED NODE, READINESS GATES.

use serde_json::{Value, json};

use super::{Column, NAME, Printer, col, int_col, or_none, s};

pub const PRINTER: Printer = Printer { columns, cells };

fn columns() -> Vec<Column> {
    vec![
        NAME,
        col("Ready", 0),
        col("Status", 0),
        int_col("Restarts", 0),
        col("Age", 0),
        col("IP", 1),
        col("Node", 1),
        col("Nominated Node", 1),
        col("Readiness Gates", 1),
    ]
}

fn cells(obj: &Value, name: Value, age: Value) -> Vec<Value> {
    let (status, restarts, ready, total) = pod_status(obj);
    vec![
        name,
        json!(format!("{ready}/{total}")),
        json!(status),
        json!(restarts),
        age,
        json!(or_none(s(obj.pointer("/status/podIP")))),
        json!(or_none(s(obj.pointer("/spec/nodeName")))),
        json!(or_none(s(obj.pointer("/status/nominatedNodeName")))),
        json!("<none>"),
    ]
}

/// The STATUS column of a pod, as kubectl's printer derives it.
fn pod_status(obj: &Value) -> (String, i64, usize, usize) {
    let status = &obj["status"];
    let mut reason = s(status.get("reason"));
    if reason.is_empty() {
        reason = s(status.get("phase"));
    }
    let statuses = status
        .get("containerStatuses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let total = obj
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let mut ready = 0;
    let mut restarts = 0;
    for c in statuses.iter().rev() {
        restarts += c.get("restartCount").and_then(Value::as_i64).unwrap_or(0);
        if let Some(r) = c.pointer("/state/waiting/reason").and_then(Value::as_str) {
            reason = r.into();
        } else if let Some(t) = c.pointer("/state/terminated") {
            reason = match t.get("reason").and_then(Value::as_str) {
                Some(r) => r.into(),
                None => format!("ExitCode:{}", s(t.get("exitCode"))),
            };
        } else if c.get("ready").and_then(Value::as_bool) == Some(true) {
            ready += 1;
        }
    }
    if obj.pointer("/metadata/deletionTimestamp").is_some() {
        reason = "Terminating".into();
    }
    (reason, restarts, ready, total)
}
