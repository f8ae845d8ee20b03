//! HorizontalPodAutoscaler defaults (`autoscaling/v2` and `/v1`), as upstream's
//! `SetDefaults_HorizontalPodAutoscaler`: one replica at least, 80% CPU utilization when no
//! metric is given, and a given `behavior` completed with the scale-up and scale-down rules
//! the controller would otherwise assume.

use serde_json::{Value, json};

use super::{Strategy, set_default};

/// The CPU utilization an HPA without metrics targets (`autoscaling.DefaultCPUUtilization`).
const DEFAULT_CPU_UTILIZATION: i64 = 80;

pub struct HpaStrategy {
    /// `v1` has `targetCPUUtilizationPercentage` where `v2` has `metrics`.
    pub v1: bool,
}

impl Strategy for HpaStrategy {
    fn defaults(&self, obj: &mut Value) {
        let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) else {
            return;
        };
        set_default(spec, "minReplicas", json!(1));
        if self.v1 {
            set_default(
                spec,
                "targetCPUUtilizationPercentage",
                json!(DEFAULT_CPU_UTILIZATION),
            );
            return;
        }
        if spec
            .get("metrics")
            .is_none_or(|m| m.as_array().is_none_or(Vec::is_empty))
        {
            spec["metrics"] = json!([{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": DEFAULT_CPU_UTILIZATION}}}]);
        }
        if let Some(behavior) = spec.get_mut("behavior").filter(|b| b.is_object()) {
            scaling_rules(
                behavior,
                "scaleUp",
                0,
                json!([{"type": "Pods", "value": 4, "periodSeconds": 15},
                       {"type": "Percent", "value": 100, "periodSeconds": 15}]),
            );
            scaling_rules(
                behavior,
                "scaleDown",
                300,
                json!([{"type": "Percent", "value": 100, "periodSeconds": 15}]),
            );
        }
    }

    fn tracks_generation(&self) -> bool {
        true
    }
}

/// `GenerateHPAScaleUpRules` / `GenerateHPAScaleDownRules`: each unset part of the rules
/// takes the default.
fn scaling_rules(behavior: &mut Value, key: &str, window: i64, policies: Value) {
    set_default(behavior, key, json!({}));
    let rules = &mut behavior[key];
    set_default(rules, "stabilizationWindowSeconds", json!(window));
    set_default(rules, "selectPolicy", json!("Max"));
    set_default(rules, "policies", policies);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_defaults_as_upstream() {
        let mut hpa =
            json!({"spec": {"maxReplicas": 3, "behavior": {"scaleDown": {"selectPolicy": "Min"}}}});
        HpaStrategy { v1: false }.defaults(&mut hpa);
        assert_eq!(hpa["spec"]["minReplicas"], json!(1));
        assert_eq!(
            hpa["spec"]["metrics"][0]["resource"]["target"],
            json!({"type": "Utilization", "averageUtilization": 80})
        );
        assert_eq!(
            hpa["spec"]["behavior"]["scaleUp"],
            json!({"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
                {"type": "Pods", "value": 4, "periodSeconds": 15},
                {"type": "Percent", "value": 100, "periodSeconds": 15}]})
        );
        assert_eq!(
            hpa["spec"]["behavior"]["scaleDown"]["selectPolicy"],
            json!("Min")
        );
        assert_eq!(
            hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"],
            json!(300)
        );
        // No behavior given: none made up.
        let mut plain = json!({"spec": {"maxReplicas": 3, "minReplicas": 2}});
        HpaStrategy { v1: false }.defaults(&mut plain);
        assert!(plain["spec"].get("behavior").is_none());
        assert_eq!(plain["spec"]["minReplicas"], json!(2));
    }

    #[test]
    fn v1_defaults_as_upstream() {
        let mut hpa = json!({"spec": {"maxReplicas": 3}});
        HpaStrategy { v1: true }.defaults(&mut hpa);
        assert_eq!(hpa["spec"]["minReplicas"], json!(1));
        assert_eq!(hpa["spec"]["targetCPUUtilizationPercentage"], json!(80));
    }
}
