//! LimitRange's API defaults and PodPreset's validation (Kubernetes 1.19's).

use serde_json::Value;

use super::Strategy;
use crate::error::Cause;

/// LimitRanges are stored with their type Container defaults filled in, as Kubernetes
/// defaults them when decoding (LimitRanger reads them so).
pub struct LimitRangeStrategy;

impl Strategy for LimitRangeStrategy {
    fn defaults(&self, obj: &mut Value) {
        with_defaults(obj);
    }
}

/// The LimitRange's API defaults (SetDefaults_LimitRange), so ranges stored without them
/// act as Kubernetes' would: for type Container a missing `default` is the `max`, a missing
/// `defaultRequest` the `default`, else the `min`.
pub(crate) fn with_defaults(lr: &mut Value) {
    let Some(limits) = lr.pointer_mut("/spec/limits").and_then(Value::as_array_mut) else {
        return;
    };
    for l in limits {
        if l.get("type").and_then(Value::as_str) != Some("Container") {
            continue;
        }
        let list = |l: &Value, k: &str| {
            l.get(k)
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default()
        };
        let (max, min) = (list(l, "max"), list(l, "min"));
        let mut default = list(l, "default");
        let mut request = list(l, "defaultRequest");
        for (k, v) in &max {
            default.entry(k.clone()).or_insert_with(|| v.clone());
        }
        for (k, v) in default.iter().chain(&min) {
            request.entry(k.clone()).or_insert_with(|| v.clone());
        }
        if !default.is_empty() {
            l["default"] = Value::Object(default);
        }
        if !request.is_empty() {
            l["defaultRequest"] = Value::Object(request);
        }
    }
}

pub struct PodPresetStrategy;

impl Strategy for PodPresetStrategy {
    fn validate(&self, obj: &Value) -> Vec<Cause> {
        let spec = obj.get("spec");
        let has = |f: &str| spec.and_then(|s| s.get(f)).is_some_and(|v| !v.is_null());
        if ["env", "envFrom", "volumes", "volumeMounts"]
            .iter()
            .any(|f| has(f))
        {
            return Vec::new();
        }
        // Upstream names the four fields as one path.
        vec![Cause {
            reason: "FieldValueRequired",
            field: "spec.volumes.env.envFrom.volumeMounts".into(),
            message: "Required value: must specify at least one".into(),
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_preset_must_inject_something() {
        let empty = json!({"spec": {"selector": {}}});
        assert_eq!(PodPresetStrategy.validate(&empty).len(), 1);
        let env = json!({"spec": {"env": [{"name": "A"}]}});
        assert!(PodPresetStrategy.validate(&env).is_empty());
    }

    #[test]
    fn limit_ranges_get_their_defaults() {
        let mut lr = json!({"spec": {"limits": [{"type": "Container", "max": {"cpu": "1"}}]}});
        LimitRangeStrategy.defaults(&mut lr);
        assert_eq!(lr["spec"]["limits"][0]["default"], json!({"cpu": "1"}));
        assert_eq!(
            lr["spec"]["limits"][0]["defaultRequest"],
            json!({"cpu": "1"})
        );
    }
}
