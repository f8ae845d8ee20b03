//! The APIService table, as kube-aggregator's table convertor: SERVICE is
//! `<namespace>/<name>`, or `Local` for a group this server serves itself; AVAILABLE is
//! `True`, or the condition's status and reason (`False (FailedDiscoveryCheck)`).

use serde_json::{Value, json};

use super::{NAME, Printer, col, s};

pub const API_SERVICE: Printer = Printer {
    columns: || vec![NAME, col("Service", 0), col("Available", 0), col("Age", 0)],
    cells: |obj, name, age| vec![name, json!(service(obj)), json!(available(obj)), age],
};

fn service(obj: &Value) -> String {
    match obj.pointer("/spec/service").filter(|v| v.is_object()) {
        Some(svc) => format!("{}/{}", s(svc.get("namespace")), s(svc.get("name"))),
        None => "Local".into(),
    }
}

fn available(obj: &Value) -> String {
    let cond = obj
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Available"));
    match cond {
        None => "Unknown".into(),
        Some(c) if s(c.get("status")) == "True" => "True".into(),
        Some(c) => format!("{} ({})", s(c.get("status")), s(c.get("reason"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_read_as_kubectl_shows_them() {
        let local = json!({"spec": {}, "status": {"conditions": [{"type": "Available", "status": "True", "reason": "Local"}]}});
        assert_eq!(
            (service(&local), available(&local)),
            ("Local".into(), "True".into())
        );
        let remote = json!({"spec": {"service": {"namespace": "wardle", "name": "api"}},
            "status": {"conditions": [{"type": "Available", "status": "False", "reason": "ServiceNotFound"}]}});
        assert_eq!(
            (service(&remote), available(&remote)),
            ("wardle/api".into(), "False (ServiceNotFound)".into())
        );
    }
}
