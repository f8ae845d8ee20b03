//! Decoding as Kubernetes decodes: every object passes through its `k8s-openapi` type, so a
//! wrongly typed field is a 400, and fields the type does not have are dropped — or, with
//! `fieldValidation=Strict` (kubectl's default), refused with "strict decoding error:
//! unknown field".

use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::resources::ResourceInfo;

/// Round-trips `obj` through the kind's type; returns the normalized object.
fn round_trip(info: &ResourceInfo, obj: &Value) -> Option<Result<Value, String>> {
    use k8s_openapi::api::{
        apps::v1 as apps, autoscaling::v2 as autoscaling, batch::v1 as batch,
        coordination::v1 as coordination, core::v1 as core, discovery::v1 as discovery,
        events::v1 as events, networking::v1 as networking, policy::v1 as policy, rbac::v1 as rbac,
        scheduling::v1 as scheduling, storage::v1 as storage,
    };
    macro_rules! via {
        ($t:ty) => {{
            let r: Result<$t, _> = serde_json::from_value(obj.clone());
            Some(
                r.map_err(|e| e.to_string())
                    .and_then(|t| serde_json::to_value(t).map_err(|e| e.to_string())),
            )
        }};
    }
    match (info.group, info.kind) {
        ("", "Pod") => via!(core::Pod),
        ("", "ReplicationController") => via!(core::ReplicationController),
        ("", "Service") => via!(core::Service),
        ("", "Endpoints") => via!(core::Endpoints),
        ("", "Node") => via!(core::Node),
        ("", "Namespace") => via!(core::Namespace),
        ("", "Secret") => via!(core::Secret),
        ("", "ConfigMap") => via!(core::ConfigMap),
        ("", "ServiceAccount") => via!(core::ServiceAccount),
        ("", "PersistentVolume") => via!(core::PersistentVolume),
        ("", "PersistentVolumeClaim") => via!(core::PersistentVolumeClaim),
        ("", "LimitRange") => via!(core::LimitRange),
        ("", "ResourceQuota") => via!(core::ResourceQuota),
        ("", "Event") => via!(core::Event),
        ("", "PodTemplate") => via!(core::PodTemplate),
        ("apps", "Deployment") => via!(apps::Deployment),
        ("apps", "ReplicaSet") => via!(apps::ReplicaSet),
        ("apps", "DaemonSet") => via!(apps::DaemonSet),
        ("apps", "StatefulSet") => via!(apps::StatefulSet),
        ("apps", "ControllerRevision") => via!(apps::ControllerRevision),
        ("batch", "Job") => via!(batch::Job),
        ("batch", "CronJob") => via!(batch::CronJob),
        ("autoscaling", "HorizontalPodAutoscaler") => via!(autoscaling::HorizontalPodAutoscaler),
        ("networking.k8s.io", "Ingress") => via!(networking::Ingress),
        ("networking.k8s.io", "IngressClass") => via!(networking::IngressClass),
        ("networking.k8s.io", "NetworkPolicy") => via!(networking::NetworkPolicy),
        ("rbac.authorization.k8s.io", "Role") => via!(rbac::Role),
        ("rbac.authorization.k8s.io", "ClusterRole") => via!(rbac::ClusterRole),
        ("rbac.authorization.k8s.io", "RoleBinding") => via!(rbac::RoleBinding),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => via!(rbac::ClusterRoleBinding),
        ("storage.k8s.io", "StorageClass") => via!(storage::StorageClass),
        ("coordination.k8s.io", "Lease") => via!(coordination::Lease),
        ("discovery.k8s.io", "EndpointSlice") => via!(discovery::EndpointSlice),
        ("events.k8s.io", "Event") => via!(events::Event),
        ("policy", "PodDisruptionBudget") => via!(policy::PodDisruptionBudget),
        ("scheduling.k8s.io", "PriorityClass") => via!(scheduling::PriorityClass),
        _ => None,
    }
}

/// Paths (`spec.replica`) present in `original` but not in `typed`: the unknown fields.
/// Nulls are not fields.
fn dropped(original: &Value, typed: &Value, path: &str, out: &mut Vec<String>) {
    match (original, typed) {
        (Value::Object(o), Value::Object(t)) => {
            for (k, v) in o {
                if v.is_null() {
                    continue;
                }
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match t.get(k) {
                    Some(tv) => dropped(v, tv, &p, out),
                    None if is_empty(v) => {}
                    None => out.push(p),
                }
            }
        }
        (Value::Array(o), Value::Array(t)) => {
            for (i, (ov, tv)) in o.iter().zip(t).enumerate() {
                dropped(ov, tv, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Values the typed encoding leaves out even for known fields (empty optional lists/maps).
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.values().all(is_empty),
        _ => false,
    }
}

/// Normalizes `obj` through its type. With `strict`, unknown fields are a 400; otherwise
/// they are dropped. Kinds without a type here pass unchanged.
pub fn decode(info: &ResourceInfo, obj: Value, strict: bool) -> ApiResult<Value> {
    let Some(result) = round_trip(info, &obj) else {
        return Ok(obj);
    };
    let cannot = |detail: String| {
        ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: {detail}",
            info.kind, info.version, info.kind
        ))
    };
    let typed = result.map_err(cannot)?;
    if strict {
        let mut unknown = Vec::new();
        dropped(&obj, &typed, "", &mut unknown);
        if !unknown.is_empty() {
            let list: Vec<String> = unknown
                .iter()
                .map(|u| format!("unknown field \"{u}\""))
                .collect();
            return Err(cannot(format!(
                "strict decoding error: {}",
                list.join(", ")
            )));
        }
    }
    // Keep the client's key order where it can be kept (typed encoding sorts keys).
    Ok(reorder_like(&obj, typed))
}

fn reorder_like(original: &Value, typed: Value) -> Value {
    match (original, typed) {
        (Value::Object(o), Value::Object(mut t)) => {
            let mut out = Map::new();
            for (k, ov) in o {
                if let Some(tv) = t.remove(k) {
                    out.insert(k.clone(), reorder_like(ov, tv));
                }
            }
            out.extend(t);
            Value::Object(out)
        }
        (Value::Array(o), Value::Array(t)) => {
            let mut items: Vec<Value> = Vec::with_capacity(t.len());
            for (i, tv) in t.into_iter().enumerate() {
                items.push(match o.get(i) {
                    Some(ov) => reorder_like(ov, tv),
                    None => tv,
                });
            }
            Value::Array(items)
        }
        (_, t) => t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployments() -> ResourceInfo {
        crate::resources::all()
            .into_iter()
            .find(|r| r.kind == "Deployment")
            .unwrap()
    }

    #[test]
    fn unknown_fields() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
            "spec": {"replica": 3, "selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i", "imagePullPolicyy": "x"}]}}}});
        let err = decode(&deployments(), d.clone(), true).unwrap_err();
        assert!(
            err.message
                .contains("strict decoding error: unknown field \"spec.replica\""),
            "{}",
            err.message
        );
        assert!(
            err.message
                .contains("spec.template.spec.containers[0].imagePullPolicyy"),
            "{}",
            err.message
        );
        let pruned = decode(&deployments(), d, false).unwrap();
        assert!(pruned.pointer("/spec/replica").is_none());
        assert_eq!(
            pruned.pointer("/spec/template/spec/containers/0/name"),
            Some(&json!("c"))
        );
    }

    #[test]
    fn wrong_types_are_bad_requests() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}, "spec": {"replicas": "three"}});
        let err = decode(&deployments(), d, false).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(
            err.message.contains("cannot be handled as a Deployment"),
            "{}",
            err.message
        );
    }
}
