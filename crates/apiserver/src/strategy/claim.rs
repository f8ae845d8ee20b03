//! PersistentVolumeClaims: start `Pending`, volumeMode Filesystem by default; upstream's
//! validation of the spec (access modes, a positive storage request, volume mode, class
//! name) and of updates: the spec is fixed once created but for what binding and expansion
//! change (`volumeName` once, a class set once where there was none, the storage request of
//! a bound claim, `volumeAttributesClassName`), and the request never goes down to the
//! capacity the claim already has.

use serde_json::{Value, json};

use super::volume::{check_access_modes, check_volume_mode, storage_bytes};
use super::{Strategy, set_default};
use crate::error::Cause;
use crate::meta;
use common::storage::annotations::BETA_STORAGE_CLASS;
use common::storage::claims::PHASE_BOUND;

/// Upstream's refusal of any other spec change, its first line word for word (upstream
/// appends a Go diff of the two specs).
const SPEC_IMMUTABLE: &str = "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims";

pub struct ClaimStrategy;

impl Strategy for ClaimStrategy {
    fn defaults(&self, obj: &mut Value) {
        if let Some(spec) = obj.get_mut("spec") {
            set_default(spec, "volumeMode", json!("Filesystem"));
        }
    }

    fn prepare_for_create(&self, obj: &mut Value, _user: Option<&crate::user::UserInfo>) {
        obj["status"] = json!({"phase": "Pending"});
    }

    fn validate(&self, obj: &Value) -> Vec<Cause> {
        let spec = &obj["spec"];
        let mut causes = Vec::new();
        if modes(spec).is_empty() {
            causes.push(Cause {
                message: "Required value: at least 1 access mode is required".into(),
                ..Cause::required("spec.accessModes")
            });
        }
        causes.extend(check_access_modes(spec, "spec.accessModes"));
        match spec.pointer("/resources/requests/storage") {
            None | Some(Value::Null) => causes.push(Cause::required("spec.resources[storage]")),
            Some(q) if storage_bytes(q) <= 0 => causes.push(Cause::invalid(
                "spec.resources[storage]",
                q.as_str().unwrap_or_default(),
                "must be greater than zero",
            )),
            Some(_) => {}
        }
        causes.extend(check_volume_mode(spec, "spec.volumeMode"));
        if let Some(class) = spec.get("storageClassName").and_then(Value::as_str)
            && !class.is_empty()
        {
            causes.extend(meta::check_subdomain("spec.storageClassName", class));
        }
        causes
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        let mut causes = Vec::new();
        let (mut new_spec, mut old_spec) = (new["spec"].clone(), old["spec"].clone());
        // The binder names the volume once.
        if old_spec
            .get("volumeName")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            copy_field(&new_spec, &mut old_spec, "volumeName");
        }
        let old_beta = annotation(old, BETA_STORAGE_CLASS);
        let new_beta = annotation(new, BETA_STORAGE_CLASS);
        let old_class = old_spec.get("storageClassName").and_then(Value::as_str);
        let new_class = new_spec.get("storageClassName").and_then(Value::as_str);
        if let Some(beta) = old_beta
            && old_class.is_none()
            && new_class == Some(beta)
            && new_beta.is_none_or(|b| b == beta)
        {
            // The beta annotation's class moved to the field.
            remove_field(&mut new_spec, "storageClassName");
        } else {
            if old_beta != new_beta {
                causes.push(Cause::invalid(
                    format!("metadata.annotations.{BETA_STORAGE_CLASS}"),
                    new_beta.unwrap_or_default(),
                    "field is immutable",
                ));
            }
            // A claim without a class gets one once (the retroactive default class).
            if old_beta.is_none() && old_class.is_none() && new_class.is_some_and(|c| !c.is_empty())
            {
                remove_field(&mut new_spec, "storageClassName");
            }
        }
        let bound = new.pointer("/status/phase").and_then(Value::as_str) == Some(PHASE_BOUND);
        let (old_size, new_size) = (request(&old_spec), request(&new_spec));
        // A bound claim's request may change (expansion); equal amounts in other units are no
        // change for anyone.
        if bound || old_size == new_size {
            copy_request(&old_spec, &mut new_spec);
        }
        copy_field(&new_spec, &mut old_spec, "volumeAttributesClassName");
        if new_spec != old_spec {
            causes.push(Cause::forbidden("spec", SPEC_IMMUTABLE));
        }
        let capacity = old
            .pointer("/status/capacity/storage")
            .map_or(0, storage_bytes);
        // Lowering is allowed only back towards the capacity, to recover from a failed
        // expansion; Kubernetes never shrinks a volume.
        if new_size < old_size && new_size <= capacity {
            causes.push(Cause::forbidden(
                "spec.resources.requests.storage",
                "field can not be less than status.capacity",
            ));
        }
        if new["spec"].get("volumeMode") != old["spec"].get("volumeMode") {
            causes.push(immutable("volumeMode", &new["spec"]["volumeMode"]));
        }
        causes
    }
}

/// `field.Invalid(path, value, "field is immutable")`.
pub(super) fn immutable(path: &str, value: &Value) -> Cause {
    Cause::invalid(path, value, "field is immutable")
}

fn modes(spec: &Value) -> &[Value] {
    spec.get("accessModes")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

/// The storage request in bytes (0 when absent, as upstream's zero Quantity).
fn request(spec: &Value) -> i64 {
    spec.pointer("/resources/requests/storage")
        .map_or(0, storage_bytes)
}

fn copy_field(from: &Value, to: &mut Value, key: &str) {
    match from.get(key) {
        Some(v) => to[key] = v.clone(),
        None => remove_field(to, key),
    }
}

fn remove_field(obj: &mut Value, key: &str) {
    if let Some(m) = obj.as_object_mut() {
        m.remove(key);
    }
}

/// Puts `from`'s storage request into `to` (leaving `to` without one if `from` has none).
fn copy_request(from: &Value, to: &mut Value) {
    let old = from.pointer("/resources/requests/storage").cloned();
    match (old, to.pointer_mut("/resources/requests")) {
        (Some(q), Some(Value::Object(requests))) => {
            requests.insert("storage".into(), q);
        }
        (None, Some(Value::Object(requests))) => {
            requests.remove("storage");
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(storage: &str, phase: &str) -> Value {
        let mut c = json!({
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage}}},
            "status": {"phase": phase},
        });
        ClaimStrategy.defaults(&mut c);
        c
    }

    fn fields(causes: &[Cause]) -> Vec<String> {
        causes.iter().map(Cause::line).collect()
    }

    #[test]
    fn a_claim_needs_modes_and_a_positive_request() {
        assert!(ClaimStrategy.validate(&claim("1Gi", "Pending")).is_empty());
        let mut c = claim("0", "Pending");
        c["spec"]["accessModes"] = json!([]);
        c["spec"]["volumeMode"] = json!("Raw");
        assert_eq!(
            fields(&ClaimStrategy.validate(&c)),
            [
                "spec.accessModes: Required value: at least 1 access mode is required",
                "spec.resources[storage]: Invalid value: \"0\": must be greater than zero",
                "spec.volumeMode: Unsupported value: \"Raw\": supported values: \"Block\", \"Filesystem\"",
            ]
        );
        c["spec"]["accessModes"] = json!(["ReadWriteOncePod", "ReadWriteOnce", "Shared"]);
        c["spec"]["resources"] = json!({});
        c["spec"]["volumeMode"] = json!("Block");
        assert_eq!(
            fields(&ClaimStrategy.validate(&c)),
            [
                "spec.accessModes: Unsupported value: \"Shared\": supported values: \"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\"",
                "spec.accessModes: Forbidden: may not use ReadWriteOncePod with other access modes",
                "spec.resources[storage]: Required value",
            ]
        );
    }

    #[test]
    fn only_a_bound_claims_request_changes() {
        let old = claim("1Gi", "Bound");
        let grown = claim("2Gi", "Bound");
        assert!(ClaimStrategy.validate_update(&grown, &old).is_empty());
        // The same amount in other units is no change, bound or not.
        let pending = claim("1Gi", "Pending");
        assert!(
            ClaimStrategy
                .validate_update(&claim("1024Mi", "Pending"), &pending)
                .is_empty()
        );
        assert_eq!(
            fields(&ClaimStrategy.validate_update(&claim("2Gi", "Pending"), &pending)),
            [format!("spec: Forbidden: {SPEC_IMMUTABLE}")]
        );
        let mut modes = claim("1Gi", "Bound");
        modes["spec"]["accessModes"] = json!(["ReadWriteMany"]);
        assert_eq!(
            fields(&ClaimStrategy.validate_update(&modes, &old)),
            [format!("spec: Forbidden: {SPEC_IMMUTABLE}")]
        );
    }

    #[test]
    fn the_request_goes_down_only_to_above_the_capacity() {
        let mut old = claim("3Gi", "Bound");
        old["status"]["capacity"] = json!({"storage": "2Gi"});
        let to = |storage: &str| {
            let mut new = claim(storage, "Bound");
            new["status"] = old["status"].clone();
            fields(&ClaimStrategy.validate_update(&new, &old))
        };
        assert_eq!(
            to("2Gi"),
            [
                "spec.resources.requests.storage: Forbidden: field can not be less than status.capacity"
            ]
        );
        assert!(to("2500Mi").is_empty());
    }

    #[test]
    fn binding_names_the_volume_once_and_a_class_is_set_once() {
        let old = claim("1Gi", "Pending");
        let mut bound = old.clone();
        bound["spec"]["volumeName"] = json!("pv-1");
        assert!(ClaimStrategy.validate_update(&bound, &old).is_empty());
        let mut moved = bound.clone();
        moved["spec"]["volumeName"] = json!("pv-2");
        assert_eq!(ClaimStrategy.validate_update(&moved, &bound).len(), 1);

        let mut classed = old.clone();
        classed["spec"]["storageClassName"] = json!("local-path");
        assert!(ClaimStrategy.validate_update(&classed, &old).is_empty());
        let mut other = classed.clone();
        other["spec"]["storageClassName"] = json!("fast");
        assert_eq!(ClaimStrategy.validate_update(&other, &classed).len(), 1);
    }

    #[test]
    fn the_beta_class_annotation_moves_to_the_field_but_does_not_change() {
        let mut old = claim("1Gi", "Pending");
        old["metadata"]["annotations"] = json!({BETA_STORAGE_CLASS: "slow"});
        let mut moved = old.clone();
        moved["spec"]["storageClassName"] = json!("slow");
        assert!(ClaimStrategy.validate_update(&moved, &old).is_empty());
        let mut changed = old.clone();
        changed["metadata"]["annotations"] = json!({BETA_STORAGE_CLASS: "fast"});
        assert_eq!(
            fields(&ClaimStrategy.validate_update(&changed, &old)),
            [format!(
                "metadata.annotations.{BETA_STORAGE_CLASS}: Invalid value: \"fast\": field is immutable"
            )]
        );
    }
}
