//! Conversion between the versions of a kind that share storage. Objects are stored in one
//! version (the storage version) and converted when served in another, as Kubernetes does.
//! Today: HorizontalPodAutoscaler, stored as autoscaling/v2 and served as v1 too, what v1
//! has no field for carried in annotations ([`hpa_v1`]).

mod hpa_v1;

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

/// The fields both versions have, copied as they are.
const SPEC_FIELDS: &[&str] = &["scaleTargetRef", "minReplicas", "maxReplicas"];
const STATUS_FIELDS: &[&str] = &[
    "observedGeneration",
    "lastScaleTime",
    "currentReplicas",
    "desiredReplicas",
];

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
    // What v1 cannot say goes into annotations, as upstream's conversion keeps it.
    let mut annotations = obj
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let converted = |list: Option<&Value>, status: bool, skip_cpu: bool| {
        list.and_then(Value::as_array).map(|ms| {
            Value::Array(
                ms.iter()
                    .filter(|m| !(skip_cpu && hpa_v1::is_cpu_utilization(m)))
                    .map(|m| hpa_v1::to_v1(m, status))
                    .collect(),
            )
        })
    };
    hpa_v1::annotate(
        &mut annotations,
        hpa_v1::METRICS,
        converted(spec.get("metrics"), false, true),
    );
    hpa_v1::annotate(
        &mut annotations,
        hpa_v1::CURRENT_METRICS,
        converted(obj.pointer("/status/currentMetrics"), true, false),
    );
    hpa_v1::annotate(
        &mut annotations,
        hpa_v1::CONDITIONS,
        obj.pointer("/status/conditions").cloned(),
    );
    hpa_v1::annotate(
        &mut annotations,
        hpa_v1::BEHAVIOR,
        spec.get("behavior").cloned(),
    );
    if !annotations.is_empty()
        && let Some(m) = out.get_mut("metadata").and_then(Value::as_object_mut)
    {
        m.insert("annotations".into(), Value::Object(annotations));
    }
    let mut s = Map::new();
    copy(spec, &mut s, SPEC_FIELDS);
    if let Some(u) = cpu_utilization(spec.get("metrics"), "target") {
        s.insert("targetCPUUtilizationPercentage".into(), u);
    }
    out.insert("spec".into(), Value::Object(s));
    if let Some(status) = obj.get("status").filter(|s| s.is_object()) {
        let mut st = Map::new();
        copy(status, &mut st, STATUS_FIELDS);
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
    // The annotations v1 keeps v2's fields in become those fields again.
    let mut kept = Map::new();
    if let Some(a) = out
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
        .and_then(Value::as_object_mut)
    {
        for key in [
            hpa_v1::METRICS,
            hpa_v1::CURRENT_METRICS,
            hpa_v1::CONDITIONS,
            hpa_v1::BEHAVIOR,
        ] {
            if let Some(v) = hpa_v1::take(a, key) {
                kept.insert(key.into(), v);
            }
        }
    }
    if let Some(m) = out.get_mut("metadata").and_then(Value::as_object_mut)
        && m.get("annotations")
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
    {
        m.remove("annotations");
    }
    let to_v2 = |key: &str, status: bool| -> Vec<Value> {
        kept.get(key)
            .and_then(Value::as_array)
            .map(|ms| ms.iter().map(|m| hpa_v1::to_v2(m, status)).collect())
            .unwrap_or_default()
    };
    let spec = &obj["spec"];
    let mut s = Map::new();
    copy(spec, &mut s, SPEC_FIELDS);
    let mut metrics = Vec::new();
    if let Some(u) = spec.get("targetCPUUtilizationPercentage") {
        metrics.push(json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": u}}}));
    }
    metrics.extend(to_v2(hpa_v1::METRICS, false));
    if metrics.is_empty() {
        // v1's implicit target, made explicit as upstream's conversion does.
        metrics.push(json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}));
    }
    s.insert("metrics".into(), Value::Array(metrics));
    if let Some(b) = kept.get(hpa_v1::BEHAVIOR) {
        s.insert("behavior".into(), b.clone());
    }
    out.insert("spec".into(), Value::Object(s));
    if let Some(status) = obj.get("status").filter(|s| s.is_object()) {
        let mut st = Map::new();
        copy(status, &mut st, STATUS_FIELDS);
        let current = to_v2(hpa_v1::CURRENT_METRICS, true);
        if !current.is_empty() {
            // The annotation has more than the percentage (the raw value too).
            st.insert("currentMetrics".into(), Value::Array(current));
        } else if let Some(u) = status.get("currentCPUUtilizationPercentage") {
            st.insert(
                "currentMetrics".into(),
                json!([{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": u}}}]),
            );
        }
        if let Some(c) = kept.get(hpa_v1::CONDITIONS) {
            st.insert("conditions".into(), c.clone());
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

    #[test]
    fn hpa_v2_fields_survive_v1() {
        let info = crate::resources::all()
            .into_iter()
            .find(|r| r.group == "autoscaling" && r.version == "v1")
            .unwrap();
        let v2 = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "annotations": {"team": "a"}},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
                "minReplicas": 1, "maxReplicas": 5,
                "metrics": [
                    {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}},
                    {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "50"}}},
                    {"type": "Object", "object": {"describedObject": {"kind": "Ingress", "name": "main", "apiVersion": "networking.k8s.io/v1"},
                        "metric": {"name": "hits"}, "target": {"type": "Value", "value": "2k"}}}],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}}},
            "status": {"currentReplicas": 2, "desiredReplicas": 3,
                "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 90, "averageValue": "45m"}}}],
                "conditions": [{"type": "AbleToScale", "status": "True", "reason": "SucceededRescale"}]}});
        let v1 = from_storage(&info, v2.clone());
        assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 60);
        assert_eq!(v1["status"]["currentCPUUtilizationPercentage"], 90);
        let a = &v1["metadata"]["annotations"];
        assert_eq!(a["team"], "a");
        let other: Value = serde_json::from_str(a[hpa_v1::METRICS].as_str().unwrap()).unwrap();
        assert_eq!(
            other,
            json!([
            {"type": "Pods", "pods": {"metricName": "qps", "targetAverageValue": "50"}},
            {"type": "Object", "object": {"target": {"kind": "Ingress", "name": "main", "apiVersion": "networking.k8s.io/v1"},
                "metricName": "hits", "targetValue": "2k"}}])
        );
        let current: Value =
            serde_json::from_str(a[hpa_v1::CURRENT_METRICS].as_str().unwrap()).unwrap();
        assert_eq!(
            current,
            json!([{"type": "Resource", "resource": {"name": "cpu", "currentAverageUtilization": 90, "currentAverageValue": "45m"}}])
        );
        // Written back through v1 unchanged: the v2 object again, annotations gone.
        let back = to_storage(&info, &v1).into_owned();
        assert_eq!(back["metadata"]["annotations"], json!({"team": "a"}));
        assert_eq!(back["spec"], v2["spec"]);
        assert_eq!(
            back["status"]["currentMetrics"],
            v2["status"]["currentMetrics"]
        );
        assert_eq!(back["status"]["conditions"], v2["status"]["conditions"]);
    }

    #[test]
    fn a_v1_hpa_without_a_target_gets_upstreams_80_percent() {
        let info = crate::resources::all()
            .into_iter()
            .find(|r| r.group == "autoscaling" && r.version == "v1")
            .unwrap();
        let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 3}});
        let v2 = to_storage(&info, &v1);
        assert_eq!(
            v2["spec"]["metrics"],
            json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}])
        );
    }
}
