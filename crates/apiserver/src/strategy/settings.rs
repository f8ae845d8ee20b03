//! LimitRange's API defaults and PodPreset's validation (Kubernetes 1.19's).

use serde_json::Value;

use super::Strategy;
use crate::error::Cause;

/// LimitRanges are stored with their type Container defaults filled in, as Kubernetes
/// defaults them when decoding (LimitRanger reads them so).
pub struct LimitRangeStrategy;

impl Strategy for LimitRangeStrategy {
    fn defaults(&self, obj: &mut Value) {
        crate::admission::limit_ranger::with_defaults(obj);
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
