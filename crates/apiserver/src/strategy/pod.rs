//! Pods: Kubernetes' defaults (restartPolicy, dnsPolicy, grace period, imagePullPolicy from
//! the image tag, ...), the QoS class, and the rule that a pod's spec is mostly immutable.

use serde_json::{Value, json};

use super::{Strategy, SubUpdate, set_default};
use crate::error::Cause;
use crate::meta;

pub struct PodStrategy;

/// `Always` for `:latest` or untagged images, else `IfNotPresent` (digests count as tags).
pub fn default_pull_policy(image: &str) -> &'static str {
    let last = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') {
        return "IfNotPresent";
    }
    match last.split_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn default_container(c: &mut Value) {
    if let Some(image) = c.get("image").and_then(Value::as_str) {
        let policy = default_pull_policy(image);
        set_default(c, "imagePullPolicy", json!(policy));
    }
    set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
    set_default(c, "terminationMessagePolicy", json!("File"));
    set_default(c, "resources", json!({}));
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            set_default(p, "protocol", json!("TCP"));
        }
    }
}

/// Kubernetes' QoS class of a pod spec.
pub fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .filter_map(|k| spec.get(*k).and_then(Value::as_array))
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let limits = c.pointer("/resources/limits").and_then(Value::as_object);
        let requests = c.pointer("/resources/requests").and_then(Value::as_object);
        if limits.is_some_and(|l| !l.is_empty()) || requests.is_some_and(|r| !r.is_empty()) {
            any = true;
        }
        for res in ["cpu", "memory"] {
            let limit = limits.and_then(|l| l.get(res));
            // A request defaults to the limit.
            let request = requests.and_then(|r| r.get(res)).or(limit);
            if limit.is_none() || request != limit {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// The spec with the fields a pod update may change blanked out.
fn immutable_part(spec: &Value) -> Value {
    let mut s = spec.clone();
    for list in ["containers", "initContainers"] {
        if let Some(cs) = s.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs {
                if let Some(m) = c.as_object_mut() {
                    m.remove("image");
                }
            }
        }
    }
    if let Some(m) = s.as_object_mut() {
        for k in [
            "activeDeadlineSeconds",
            "tolerations",
            "terminationGracePeriodSeconds",
        ] {
            m.remove(k);
        }
    }
    s
}

/// Kubernetes' defaults for a pod spec (also applied to workload pod templates).
pub fn default_pod_spec(spec: &mut Value) {
    if spec.is_object() {
        set_default(spec, "restartPolicy", json!("Always"));
        set_default(spec, "dnsPolicy", json!("ClusterFirst"));
        set_default(spec, "terminationGracePeriodSeconds", json!(30));
        set_default(spec, "schedulerName", json!("default-scheduler"));
        set_default(spec, "securityContext", json!({}));
        set_default(spec, "enableServiceLinks", json!(true));
        for list in ["containers", "initContainers", "ephemeralContainers"] {
            if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
                cs.iter_mut().for_each(default_container);
            }
        }
    }
}

/// A container's name (a DNS label, unique among the pod's containers, `seen` so far) and
/// image (required), as upstream validates every kind of container.
fn check_name_and_image(
    c: &Value,
    field: &str,
    seen: &mut std::collections::HashSet<String>,
    causes: &mut Vec<Cause>,
) {
    match c.get("name").and_then(Value::as_str) {
        None | Some("") => causes.push(Cause::required(format!("{field}.name"))),
        Some(n) => {
            if let Some(cause) = meta::check_label(&format!("{field}.name"), n) {
                causes.push(cause);
            } else if !seen.insert(n.to_string()) {
                causes.push(Cause {
                    reason: "FieldValueDuplicate",
                    field: format!("{field}.name"),
                    message: format!("Duplicate value: \"{n}\""),
                });
            }
        }
    }
    if c.get("image")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        causes.push(Cause::required(format!("{field}.image")));
    }
}

/// Fields an ephemeral container may not have (upstream's `validateEphemeralContainers`).
const NOT_FOR_EPHEMERAL: [&str; 5] = [
    "ports",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
];

/// An update through `pods/{name}/ephemeralcontainers` (`kubectl debug`): only
/// `spec.ephemeralContainers` changes, existing ones neither change nor go, new ones are
/// checked as upstream checks them. Returns the stored pod with the new list.
fn update_ephemeral(old: &Value, new: &Value) -> Result<Value, Vec<Cause>> {
    let list = |pod: &Value| -> Vec<Value> {
        pod.pointer("/spec/ephemeralContainers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let mut wanted = list(new);
    wanted.iter_mut().for_each(default_container);
    let existing = list(old);
    let mut causes = Vec::new();
    for e in &existing {
        let name = e.get("name").and_then(Value::as_str).unwrap_or_default();
        match wanted
            .iter()
            .position(|w| w.get("name").and_then(Value::as_str) == Some(name))
        {
            None => causes.push(Cause::forbidden(
                "spec.ephemeralContainers",
                &format!("existing ephemeral containers {name:?} may not be removed"),
            )),
            Some(i) if &wanted[i] != e => causes.push(Cause::forbidden(
                format!("spec.ephemeralContainers[{i}]"),
                &format!("existing ephemeral containers {name:?} may not be changed"),
            )),
            Some(_) => {}
        }
    }
    let mut names: std::collections::HashSet<String> = ["containers", "initContainers"]
        .iter()
        .filter_map(|l| old.pointer(&format!("/spec/{l}")).and_then(Value::as_array))
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
        .collect();
    for (i, c) in wanted.iter().enumerate() {
        let field = format!("spec.ephemeralContainers[{i}]");
        check_name_and_image(c, &field, &mut names, &mut causes);
        for f in NOT_FOR_EPHEMERAL {
            if c.get(f).is_some_and(|v| !v.is_null()) {
                causes.push(Cause::forbidden(
                    format!("{field}.{f}"),
                    "cannot be set for an Ephemeral Container",
                ));
            }
        }
        if c.get("resources")
            .and_then(Value::as_object)
            .is_some_and(|r| r.values().any(|v| !v.is_null() && v != &json!({})))
        {
            causes.push(Cause::forbidden(
                format!("{field}.resources"),
                "cannot be set for an Ephemeral Container",
            ));
        }
    }
    if !causes.is_empty() {
        return Err(causes);
    }
    let mut out = old.clone();
    if !out.get("spec").is_some_and(Value::is_object) {
        out["spec"] = json!({});
    }
    out["spec"]["ephemeralContainers"] = Value::Array(wanted);
    Ok(out)
}

impl Strategy for PodStrategy {
    fn defaults(&self, obj: &mut Value) {
        // priority and preemptionPolicy come from Priority admission, on create.
        default_pod_spec(&mut obj["spec"]);
    }

    fn prepare_for_create(&self, obj: &mut Value, _user: Option<&crate::user::UserInfo>) {
        let qos = qos_class(&obj["spec"]);
        obj["status"] = json!({"phase": "Pending", "qosClass": qos});
    }

    fn validate(&self, obj: &Value) -> Vec<Cause> {
        let mut causes = Vec::new();
        let containers = obj.pointer("/spec/containers").and_then(Value::as_array);
        match containers {
            None => causes.push(Cause::required("spec.containers")),
            Some(cs) if cs.is_empty() => causes.push(Cause::required("spec.containers")),
            Some(_) => {}
        }
        let mut seen = std::collections::HashSet::new();
        for list in ["containers", "initContainers"] {
            let Some(cs) = obj
                .pointer(&format!("/spec/{list}"))
                .and_then(Value::as_array)
            else {
                continue;
            };
            for (i, c) in cs.iter().enumerate() {
                let field = format!("spec.{list}[{i}]");
                check_name_and_image(c, &field, &mut seen, &mut causes);
            }
        }
        if let Some(p) = obj.pointer("/spec/restartPolicy").and_then(Value::as_str)
            && !matches!(p, "Always" | "OnFailure" | "Never")
        {
            causes.push(Cause {
                reason: "FieldValueNotSupported",
                field: "spec.restartPolicy".into(),
                message: format!(
                    "Unsupported value: \"{p}\": supported values: \"Always\", \"OnFailure\", \"Never\""
                ),
            });
        }
        causes
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        if immutable_part(&new["spec"]) != immutable_part(&old["spec"]) {
            return vec![Cause::forbidden(
                "spec",
                "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
            )];
        }
        Vec::new()
    }

    fn field_selectors(&self) -> &'static [&'static str] {
        &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ]
    }

    /// `ephemeralcontainers` (`kubectl debug`): only the ephemeral containers change.
    fn update_subresource(&self, subresource: &str, new: &Value, old: &Value) -> SubUpdate {
        (subresource == "ephemeralcontainers").then(|| update_ephemeral(old, new))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_from_tag() {
        assert_eq!(default_pull_policy("nginx"), "Always");
        assert_eq!(default_pull_policy("nginx:latest"), "Always");
        assert_eq!(default_pull_policy("nginx:1.27"), "IfNotPresent");
        assert_eq!(default_pull_policy("localhost:5000/busybox"), "Always");
        assert_eq!(
            default_pull_policy("localhost:5000/busybox:1"),
            "IfNotPresent"
        );
        assert_eq!(default_pull_policy("busybox@sha256:abc"), "IfNotPresent");
    }

    #[test]
    fn qos() {
        let c = |r: Value| json!({"containers": [{"name": "a", "resources": r}]});
        assert_eq!(qos_class(&c(json!({}))), "BestEffort");
        assert_eq!(
            qos_class(&c(json!({"limits": {"cpu": "1", "memory": "1Gi"}}))),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&c(json!({"requests": {"cpu": "1"}}))),
            "Burstable"
        );
    }
}

#[cfg(test)]
mod ephemeral_tests {
    use super::*;

    #[test]
    fn ephemeral_containers_are_added_only_and_checked_as_upstream() {
        let old = json!({"spec": {"containers": [{"name": "app", "image": "a"}]}});
        let add = json!({"spec": {"ephemeralContainers": [{"name": "dbg", "image": "busybox:1"}]}});
        let with = update_ephemeral(&old, &add).unwrap();
        assert_eq!(with["spec"]["containers"], old["spec"]["containers"]);
        assert_eq!(
            with["spec"]["ephemeralContainers"][0]["terminationMessagePolicy"],
            json!("File")
        );
        // Removing or changing one that exists is refused.
        let gone =
            update_ephemeral(&with, &json!({"spec": {"ephemeralContainers": []}})).unwrap_err();
        assert_eq!(
            gone[0].message,
            "Forbidden: existing ephemeral containers \"dbg\" may not be removed"
        );
        let changed = json!({"spec": {"ephemeralContainers": [{"name": "dbg", "image": "other"}]}});
        assert_eq!(
            update_ephemeral(&with, &changed).unwrap_err()[0].field,
            "spec.ephemeralContainers[0]"
        );
        // A name taken by a container, and what an ephemeral container may not have.
        let bad = json!({"spec": {"ephemeralContainers": [
            {"name": "app", "image": "b", "ports": [{"containerPort": 80}]}]}});
        let causes = update_ephemeral(&old, &bad).unwrap_err();
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.ephemeralContainers[0].name",
                "spec.ephemeralContainers[0].ports"
            ]
        );
    }
}
