//! NodeRestriction: a kubelet (`system:node:<name>`) writes only its own Node, and of pods
//! only its mirror pods and the status of pods bound to it. Together with the Node
//! authorizer this keeps one node's credentials from touching another node's work.

use serde_json::Value;

use super::{Attributes, Operation};
use crate::authz::node::NodeAuthorizer;
use crate::error::{ApiError, ApiResult};

const MIRROR: &str = "kubernetes.io/config.mirror";

pub fn validate(a: &Attributes<'_>, obj: &Value) -> ApiResult<()> {
    let Some(node) = a.user.and_then(NodeAuthorizer::node_of) else {
        return Ok(());
    };
    if !a.info.group.is_empty() {
        return Ok(());
    }
    let forbidden = |what: &str| {
        ApiError::forbidden(format!(
            "{} \"{}\" is forbidden: {what}",
            a.info.plural, a.name
        ))
    };
    let node_of = |v: &Value| {
        v.pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    match (a.info.kind, a.subresource, a.operation) {
        ("Node", _, _) if a.name != node => Err(forbidden(&format!(
            "node \"{node}\" is not allowed to modify node \"{}\"",
            a.name
        ))),
        ("Pod", None, Operation::Create) => {
            let mirror = obj
                .pointer("/metadata/annotations")
                .and_then(|m| m.get(MIRROR))
                .is_some();
            if !mirror {
                return Err(forbidden(&format!(
                    "pod does not have \"{MIRROR}\" annotation, node \"{node}\" can only create mirror pods"
                )));
            }
            if node_of(obj) != node {
                return Err(forbidden(&format!(
                    "node \"{node}\" can only create pods with spec.nodeName set to itself"
                )));
            }
            if let Some(what) = references(obj) {
                return Err(forbidden(&format!(
                    "node \"{node}\" can not create pods that reference {what}"
                )));
            }
            let owners = obj
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .map_or(&[][..], Vec::as_slice);
            match owners {
                [] => {}
                [owner] => {
                    let is = |k: &str, v: &str| owner.get(k).and_then(Value::as_str) == Some(v);
                    if !(is("apiVersion", "v1") && is("kind", "Node") && is("name", node)) {
                        return Err(forbidden(&format!(
                            "node \"{node}\" can only create pods with an owner reference set to itself"
                        )));
                    }
                }
                _ => {
                    return Err(forbidden(&format!(
                        "node \"{node}\" can only create pods with a single owner reference set to itself"
                    )));
                }
            }
            Ok(())
        }
        ("Pod", Some("status"), _) => {
            if a.old.map(node_of).unwrap_or_default() != node {
                return Err(forbidden(&format!(
                    "node \"{node}\" can only update pod status for pods with spec.nodeName set to itself"
                )));
            }
            Ok(())
        }
        ("Pod", None, Operation::Update) => Err(forbidden(&format!(
            "node \"{node}\" can only update pod status"
        ))),
        _ => Ok(()),
    }
}

/// What other API objects a pod references, in upstream's order of checks: a service
/// account, secrets, configmaps, persistentvolumeclaims, resourceclaims (a node may create
/// only mirror pods of static pods, which can use none of them).
fn references(pod: &Value) -> Option<&'static str> {
    let spec = pod.get("spec")?;
    let str_at = |v: &Value, p: &str| {
        v.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    if !str_at(spec, "/serviceAccountName").is_empty() {
        return Some("a service account");
    }
    let list = |v: &Value, key: &str| -> Vec<Value> {
        v.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let containers: Vec<Value> = ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| list(spec, k))
        .collect();
    let volumes = list(spec, "volumes");
    let projected: Vec<Value> = volumes
        .iter()
        .flat_map(|v| {
            v.pointer("/projected/sources")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    // Any field of this name anywhere in a volume source (secretRef of the many plugins).
    fn has_key(v: &Value, key: &str) -> bool {
        match v {
            Value::Object(m) => m.iter().any(|(k, x)| k == key || has_key(x, key)),
            Value::Array(a) => a.iter().any(|x| has_key(x, key)),
            _ => false,
        }
    }
    let env_refs = |kind: &str, env_from: &str| {
        containers.iter().any(|c| {
            list(c, "env")
                .iter()
                .any(|e| e.pointer(&format!("/valueFrom/{kind}")).is_some())
                || list(c, "envFrom").iter().any(|e| e.get(env_from).is_some())
        })
    };
    let secrets = !list(spec, "imagePullSecrets").is_empty()
        || env_refs("secretKeyRef", "secretRef")
        || volumes.iter().any(|v| {
            v.get("secret").is_some()
                || has_key(v, "secretRef")
                || has_key(v, "nodePublishSecretRef")
                || has_key(v, "secretName") && v.get("azureFile").is_some()
        })
        || projected.iter().any(|p| p.get("secret").is_some());
    if secrets {
        return Some("secrets");
    }
    let configmaps = env_refs("configMapKeyRef", "configMapRef")
        || volumes.iter().any(|v| v.get("configMap").is_some())
        || projected.iter().any(|p| p.get("configMap").is_some());
    if configmaps {
        return Some("configmaps");
    }
    if volumes
        .iter()
        .any(|v| v.get("persistentVolumeClaim").is_some())
    {
        return Some("persistentvolumeclaims");
    }
    if !list(spec, "resourceClaims").is_empty() {
        return Some("resourceclaims");
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::references;

    #[test]
    fn mirror_pods_may_reference_nothing() {
        let pod = |spec: Value| json!({"spec": spec});
        let c = |extra: Value| {
            let mut c = json!({"name": "c", "image": "busybox"});
            for (k, v) in extra.as_object().cloned().unwrap_or_default() {
                c[k] = v;
            }
            pod(json!({"containers": [c]}))
        };
        assert_eq!(references(&c(json!({}))), None);
        assert_eq!(
            references(&pod(json!({"serviceAccountName": "x", "containers": []}))),
            Some("a service account")
        );
        assert_eq!(
            references(&c(json!({"envFrom": [{"configMapRef": {"name": "cm"}}]}))),
            Some("configmaps")
        );
        assert_eq!(
            references(&c(
                json!({"env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]})
            )),
            Some("secrets")
        );
        assert_eq!(
            references(&pod(
                json!({"containers": [], "volumes": [{"name": "v", "projected": {"sources": [{"configMap": {"name": "cm"}}]}}]})
            )),
            Some("configmaps")
        );
        assert_eq!(
            references(&pod(
                json!({"containers": [], "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "c"}}]})
            )),
            Some("persistentvolumeclaims")
        );
        assert_eq!(
            references(&pod(
                json!({"containers": [], "volumes": [{"name": "v", "hostPath": {"path": "/x"}}]})
            )),
            None
        );
    }
}
