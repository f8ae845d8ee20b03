//! CustomResourceDefinitions (upstream's `pkg/registry/customresourcedefinition` strategy
//! and `pkg/apis/apiextensions/validation`): defaulted names, the checks that make a CRD
//! servable (names, scope, exactly one storage version, a structural schema per version),
//! and deletion held by the cleanup finalizer until its objects are gone.

use serde_json::{Value, json};

use super::{Strategy, set_default};
use crate::error::Cause;
use crate::meta;
use crate::registry::hooks::StoreHooks;

/// The finalizer the CRD controller removes once every custom object is deleted.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

pub struct CrdStrategy;

fn str_at<'a>(obj: &'a Value, ptr: &str) -> &'a str {
    meta::str_at(obj, ptr).unwrap_or("")
}

/// A DNS-1035 label: what plural names, singular names and version names must be.
fn check_dns1035(field: &str, value: &str) -> Option<Cause> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value.starts_with(|c: char| c.is_ascii_lowercase())
        && !value.ends_with('-')
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    (!ok).then(|| {
        Cause::invalid(
            field,
            value,
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
        )
    })
}

fn validate_names(names: &Value, causes: &mut Vec<Cause>) {
    let plural = str_at(names, "/plural");
    if plural.is_empty() {
        causes.push(Cause::required("spec.names.plural"));
    } else {
        causes.extend(check_dns1035("spec.names.plural", plural));
    }
    let singular = str_at(names, "/singular");
    if !singular.is_empty() {
        causes.extend(check_dns1035("spec.names.singular", singular));
    }
    for (field, value) in [
        ("spec.names.kind", str_at(names, "/kind")),
        ("spec.names.listKind", str_at(names, "/listKind")),
    ] {
        if value.is_empty() {
            causes.push(Cause::required(field));
        } else if !value.chars().all(|c| c.is_ascii_alphanumeric()) {
            causes.push(Cause::invalid(
                field,
                value,
                "may have mixed case, but should otherwise match: ^[a-zA-Z][a-zA-Z0-9]*$",
            ));
        }
    }
    if !str_at(names, "/kind").is_empty() && str_at(names, "/kind") == str_at(names, "/listKind") {
        causes.push(Cause::invalid(
            "spec.names.listKind",
            str_at(names, "/listKind"),
            "kind and listKind may not be the same",
        ));
    }
    for (i, s) in names
        .get("shortNames")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        causes.extend(check_dns1035(
            &format!("spec.names.shortNames[{i}]"),
            s.as_str().unwrap_or(""),
        ));
    }
}

fn validate_versions(crd: &Value, causes: &mut Vec<Cause>) {
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if versions.is_empty() {
        causes.push(Cause::invalid(
            "spec.versions",
            json!(versions),
            "must have exactly one version marked as storage version",
        ));
        return;
    }
    let storage = versions
        .iter()
        .filter(|v| v.get("storage") == Some(&json!(true)))
        .count();
    if storage != 1 {
        causes.push(Cause::invalid(
            "spec.versions",
            json!(versions),
            "must have exactly one version marked as storage version",
        ));
    }
    if !versions
        .iter()
        .any(|v| v.get("served") == Some(&json!(true)))
    {
        causes.push(Cause::invalid(
            "spec.versions",
            json!(versions),
            "must have at least one version marked as served",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, v) in versions.iter().enumerate() {
        let name = str_at(v, "/name");
        let field = format!("spec.versions[{i}].name");
        if name.is_empty() {
            causes.push(Cause::required(field));
            continue;
        }
        causes.extend(check_dns1035(&field, name));
        if !seen.insert(name) {
            causes.push(Cause {
                reason: "FieldValueDuplicate",
                field,
                message: format!("Duplicate value: {}", json!(name)),
            });
        }
        if v.pointer("/schema/openAPIV3Schema").is_none() {
            causes.push(Cause::required(format!(
                "spec.versions[{i}].schema.openAPIV3Schema"
            )));
        }
    }
    causes.extend(crate::customresource::schema_errors(crd));
}

impl Strategy for CrdStrategy {
    fn defaults(&self, obj: &mut Value) {
        if let Some(names) = obj.pointer_mut("/spec/names") {
            let kind = str_at(names, "/kind").to_string();
            if !kind.is_empty() {
                set_default(names, "singular", json!(kind.to_ascii_lowercase()));
                set_default(names, "listKind", json!(format!("{kind}List")));
            }
        }
        if let Some(spec) = obj.get_mut("spec") {
            set_default(spec, "conversion", json!({"strategy": "None"}));
        }
        // A webhook conversion's review versions default as upstream's.
        if let Some(conversion) = obj.pointer_mut("/spec/conversion")
            && str_at(conversion, "/strategy") == "Webhook"
            && let Some(webhook) = conversion.get_mut("webhook")
        {
            set_default(webhook, "conversionReviewVersions", json!(["v1"]));
        }
    }

    fn prepare_for_create(&self, obj: &mut Value, _user: Option<&crate::user::UserInfo>) {
        // Status is the controller's; it starts with the storage version recorded.
        let stored: Vec<Value> = obj
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|v| v.get("storage") == Some(&json!(true)))
            .filter_map(|v| v.get("name").cloned())
            .collect();
        obj["status"] = json!({
            "acceptedNames": {"kind": "", "plural": ""},
            "storedVersions": stored,
        });
    }

    fn validate(&self, obj: &Value) -> Vec<Cause> {
        let mut causes = Vec::new();
        let group = str_at(obj, "/spec/group");
        let plural = str_at(obj, "/spec/names/plural");
        let name = meta::name(obj);
        if name != format!("{plural}.{group}") {
            causes.push(Cause::invalid(
                "metadata.name",
                name,
                "must be spec.names.plural+\".\"+spec.group",
            ));
        }
        if group.is_empty() {
            causes.push(Cause::required("spec.group"));
        } else if !group.contains('.') {
            causes.push(Cause::invalid(
                "spec.group",
                group,
                "should be a domain with at least one dot",
            ));
        } else {
            causes.extend(meta::check_subdomain("spec.group", group));
        }
        match str_at(obj, "/spec/scope") {
            "Namespaced" | "Cluster" => {}
            "" => causes.push(Cause::required("spec.scope")),
            other => causes.push(Cause {
                reason: "FieldValueNotSupported",
                field: "spec.scope".into(),
                message: format!(
                    "Unsupported value: {}: supported values: \"Cluster\", \"Namespaced\"",
                    json!(other)
                ),
            }),
        }
        match obj.pointer("/spec/names") {
            Some(names) => validate_names(names, &mut causes),
            None => causes.push(Cause::required("spec.names")),
        }
        validate_versions(obj, &mut causes);
        match str_at(obj, "/spec/conversion/strategy") {
            "None" | "" => {}
            "Webhook" => {
                if obj
                    .pointer("/spec/conversion/webhook/clientConfig")
                    .is_none()
                {
                    causes.push(Cause::required("spec.conversion.webhook.clientConfig"));
                }
            }
            other => causes.push(Cause {
                reason: "FieldValueNotSupported",
                field: "spec.conversion.strategy".into(),
                message: format!(
                    "Unsupported value: {}: supported values: \"None\", \"Webhook\"",
                    json!(other)
                ),
            }),
        }
        if obj.pointer("/spec/preserveUnknownFields") == Some(&json!(true)) {
            causes.push(Cause::invalid(
                "spec.preserveUnknownFields",
                json!(true),
                "must be false in order to use defaults in the schema",
            ));
        }
        causes
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        let mut causes = Vec::new();
        for (field, ptr) in [
            ("spec.group", "/spec/group"),
            ("spec.names.plural", "/spec/names/plural"),
            ("spec.scope", "/spec/scope"),
        ] {
            if str_at(new, ptr) != str_at(old, ptr) {
                causes.push(Cause::invalid(
                    field,
                    str_at(new, ptr),
                    "field is immutable",
                ));
            }
        }
        causes
    }

    fn tracks_generation(&self) -> bool {
        true
    }
}

/// Deleting a CRD first marks it and adds the cleanup finalizer (upstream's CRD REST
/// `Delete`), so that its objects are deleted before it goes.
pub struct CrdHooks;

#[async_trait::async_trait]
impl StoreHooks for CrdHooks {
    fn holds_deletion(&self, obj: &Value) -> bool {
        obj.pointer("/metadata/deletionTimestamp").is_none()
    }

    fn mark_deleting(&self, obj: &mut Value) {
        let m = meta::metadata_mut(obj);
        let finalizers = m.entry("finalizers").or_insert_with(|| json!([]));
        if let Some(list) = finalizers.as_array_mut()
            && !list.iter().any(|f| f == CLEANUP_FINALIZER)
        {
            list.push(json!(CLEANUP_FINALIZER));
        }
        crate::customresource::set_condition(
            obj,
            "Terminating",
            "True",
            "InstanceDeletionPending",
            "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon",
        );
    }
}
