//! Conversion between the versions of a kind that share storage. Objects are stored in one
//! version (the storage version) and converted when served in another, as Kubernetes does.
//! A kind's registration says how ([`Convert`]): HorizontalPodAutoscaler's v1 ([`hpa`]),
//! and custom kinds' versions by their `apiVersion` only ([`ApiVersion`], a CRD's `None`
//! strategy) or by their CRD's conversion webhook ([`Webhook`]).

mod hpa;
mod hpa_v1;
mod webhook;

use std::borrow::Cow;

use serde_json::{Value, json};

use crate::error::ApiResult;
use crate::resources::ResourceInfo;

pub use hpa::HpaV1;
pub use webhook::Webhook;

/// How a served version is converted from and to the one stored.
pub trait Convert: Send + Sync {
    /// A stored object as the served version.
    fn served(&self, info: &ResourceInfo, obj: Value) -> ApiResult<Value>;
    /// A served object in the storage version (borrowed when nothing changes).
    fn stored<'a>(&self, info: &ResourceInfo, obj: &'a Value) -> ApiResult<Cow<'a, Value>>;
}

/// Versions that differ only in `apiVersion` (a CRD's conversion strategy `None`).
pub struct ApiVersion {
    /// `group/version` of the storage version.
    pub storage: String,
}

fn with_api_version(mut obj: Value, api_version: &str) -> Value {
    if obj.get("apiVersion").and_then(Value::as_str) != Some(api_version)
        && let Some(m) = obj.as_object_mut()
    {
        m.insert("apiVersion".into(), json!(api_version));
    }
    obj
}

impl Convert for ApiVersion {
    fn served(&self, info: &ResourceInfo, obj: Value) -> ApiResult<Value> {
        Ok(with_api_version(obj, &info.api_version()))
    }
    fn stored<'a>(&self, _info: &ResourceInfo, obj: &'a Value) -> ApiResult<Cow<'a, Value>> {
        Ok(
            if obj.get("apiVersion").and_then(Value::as_str) == Some(self.storage.as_str()) {
                Cow::Borrowed(obj)
            } else {
                Cow::Owned(with_api_version(obj.clone(), &self.storage))
            },
        )
    }
}

/// Whether `info` may be served in a version other than the one stored.
pub fn needed(info: &ResourceInfo) -> bool {
    crate::kinds::of(info).converter().is_some()
}

/// A stored object as `info`'s version.
pub fn from_storage(info: &ResourceInfo, obj: Value) -> ApiResult<Value> {
    match crate::kinds::of(info).converter() {
        Some(c) => c.served(info, obj),
        None => Ok(obj),
    }
}

/// An object of `info`'s version in the storage version (borrowed when they are the same).
pub fn to_storage<'a>(info: &ResourceInfo, obj: &'a Value) -> ApiResult<Cow<'a, Value>> {
    match crate::kinds::of(info).converter() {
        Some(c) => c.stored(info, obj),
        None => Ok(Cow::Borrowed(obj)),
    }
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
        let v2 = to_storage(&info, &v1).unwrap();
        assert_eq!(
            v2.pointer("/spec/metrics/0/resource/target/averageUtilization"),
            Some(&json!(70))
        );
        // Read back: the same object, with the status Go writes for it.
        let mut want = v1.clone();
        want["status"] = json!({"currentReplicas": 0, "desiredReplicas": 0});
        assert_eq!(from_storage(&info, v2.into_owned()).unwrap(), want);
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
        let v1 = from_storage(&info, v2.clone()).unwrap();
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
        let back = to_storage(&info, &v1).unwrap().into_owned();
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
        let v2 = to_storage(&info, &v1).unwrap();
        assert_eq!(
            v2["spec"]["metrics"],
            json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}])
        );
    }
}
