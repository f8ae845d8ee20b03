//! HorizontalPodAutoscaler, stored as autoscaling/v2 and served as v1 too: what v1 has no
//! field for is carried in annotations ([`super::hpa_v1`]).

use serde_json::{Map, Value, json};

use super::{Convert, hpa_v1};
use crate::error::ApiResult;
use crate::resources::ResourceInfo;

/// autoscaling/v1's conversion from and to the stored v2.
pub struct HpaV1;

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

impl Convert for HpaV1 {
    /// The stored (v2) object as the served version.
    fn served(&self, info: &ResourceInfo, obj: Value) -> ApiResult<Value> {
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
        Ok(out)
    }

    /// A served (v1) object in the storage version.
    fn stored<'a>(
        &self,
        _info: &ResourceInfo,
        obj: &'a Value,
    ) -> ApiResult<std::borrow::Cow<'a, Value>> {
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
        Ok(std::borrow::Cow::Owned(Value::Object(out)))
    }
}
