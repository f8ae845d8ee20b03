//! Conversion between the versions of a kind that share storage. Objects are stored in one
//! version (the storage version) and converted when served in another, as Kubernetes does.
//! Today: HorizontalPodAutoscaler, stored as autoscaling/v2 and served as v1 too.

use serde_json::{Map, Value, json};

use crate::resources::ResourceInfo;

/// Whether `info` is served in a version other than the one stored.
pub fn needed(info: &ResourceInfo) -> bool {
    info.group == "autoscaling" && info.version == "v1"
}

fn cpu_utilization(metrics: Option<&Value>, field: &str) -> Option<Value> {
    metrics?.as_array()?.iter().find_map(|m| {
        (m.get("type").and_then(Value::as_str) == Some("Resource")
            && m.pointer("/resource/name").and_then(Value::as_str) == Some("cpu"))
        .then(|| {
            m.pointer(&format!("/resource/{field}/averageUtilization"))
                .cloned()
        })
        .flatten()
    })
}

fn copy(from: &Value, to: &mut Map<String, Value>, keys: &[&str]) {
    for k in keys {
        if let Some(v) = from.get(*k) {
            to.insert((*k).to_string(), v.clone());
        }
    }
}

/// The stored (v2) object as the served version.
pub fn from_storage(info: &ResourceInfo, obj: Value) -> Value {
    if !needed(info) {
        return obj;
    }
    let mut out = Map::new();
    out.insert("apiVersion".into(), json!("autoscaling/v1"));
    out.insert("kind".into(), json!("HorizontalPodAutoscaler"));
    copy(&obj, &mut out, &["metadata"]);
    let spec = &obj["spec"];
    let mut s = Map::new();
    copy(
        spec,
        &mut s,
        &["scaleTargetRef", "minReplicas", "maxReplicas"],
    );
    if let Some(u) = cpu_utilization(spec.get("metrics"), "target") {
        s.insert("targetCPUUtilizationPercentage".into(), u);
    }
    out.insert("spec".into(), Value::Object(s));
    if let Some(status) = obj.get("status").filter(|s| s.is_object()) {
        let mut st = Map::new();
        copy(
            status,
            &mut st,
            &[
                "observedGeneration",
                "lastScaleTime",
                "currentReplicas",
                "desiredReplicas",
            ],
        );
        if let Some(u) = cpu_utilization(status.get("currentMetrics"), "current") {
            st.insert("currentCPUUtilizationPercentage".into(), u);
        }
        out.insert("status".into(), Value::Object(st));
    }
    let mut out = Value::Object(out);
    // v1's status requires fields v2's does not (`currentReplicas`).
    crate::zero_fields::fill(info, &mut out);
    out
}

/// A served (v1) object in the storage version (borrowed when they are the same).
pub fn to_storage<'a>(info: &ResourceInfo, obj: &'a Value) -> std::borrow::Cow<'a, Value> {
    if !needed(info) {
        return std::borrow::Cow::Borrowed(obj);
    }
    let mut out = Map::new();
    out.insert("apiVersion".into(), json!("autoscaling/v2"));
    out.insert("kind".into(), json!("HorizontalPodAutoscaler"));
    copy(obj, &mut out, &["metadata"]);
    let spec = &obj["spec"];
    let mut s = Map::new();
    copy(
        spec,
        &mut s,
        &["scaleTargetRef", "minReplicas", "maxReplicas"],
    );
    if let Some(u) = spec.get("targetCPUUtilizationPercentage") {
        s.insert(
            "metrics".into(),
            json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": u}}}]),
        );
    }
    out.insert("spec".into(), Value::Object(s));
    if let Some(status) = obj.get("status").filter(|s| s.is_object()) {
        let mut st = Map::new();
        copy(
            status,
            &mut st,
            &[
                "observedGeneration",
                "lastScaleTime",
                "currentReplicas",
                "desiredReplicas",
            ],
        );
        if let Some(u) = status.get("currentCPUUtilizationPercentage") {
            st.insert(
                "currentMetrics".into(),
                json!([{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": u}}}]),
            );
        }
        out.insert("status".into(), Value::Object(st));
    }
    std::borrow::Cow::Owned(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hpa_round_trip() {
        let info = crate::resources::all()
            .into_iter()
            .find(|r| r.group == "autoscaling" && r.version == "v1")
            .unwrap();
        let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"}, "maxReplicas": 5, "targetCPUUtilizationPercentage": 70}});
        let v2 = to_storage(&info, &v1);
        assert_eq!(
            v2.pointer("/spec/metrics/0/resource/target/averageUtilization"),
            Some(&json!(70))
        );
        // Read back: the same object, with the status Go writes for it.
        let mut want = v1.clone();
        want["status"] = json!({"currentReplicas": 0, "desiredReplicas": 0});
        assert_eq!(from_storage(&info, v2.into_owned()), want);
    }
}
