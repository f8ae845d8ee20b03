//! Namespaces: DNS-label names, `Active` on create, the `kubernetes` finalizer.

use serde_json::{Value, json};

use super::{Strategy, SubUpdate, with_field_of};
use crate::error::Cause;

pub struct NamespaceStrategy;

impl Strategy for NamespaceStrategy {
    fn prepare_for_create(&self, obj: &mut Value, _user: Option<&crate::user::UserInfo>) {
        obj["spec"] = json!({"finalizers": ["kubernetes"]});
        obj["status"] = json!({"phase": "Active"});
        // Kubernetes labels every namespace with its own name.
        let name = crate::meta::name(obj).to_string();
        let labels = crate::meta::metadata_mut(obj)
            .entry("labels")
            .or_insert_with(|| json!({}));
        if let Some(l) = labels.as_object_mut() {
            l.insert("kubernetes.io/metadata.name".into(), json!(name));
        }
    }

    /// `spec.finalizers` changes only through `finalize`; status only through `status`.
    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        match old.pointer("/spec/finalizers").cloned() {
            Some(f) => {
                if !new.get("spec").is_some_and(Value::is_object) {
                    new["spec"] = json!({});
                }
                new["spec"]["finalizers"] = f;
            }
            None => {
                if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
                    spec.remove("finalizers");
                }
            }
        }
    }

    fn name_is_label(&self) -> bool {
        true
    }

    fn field_selectors(&self) -> &'static [&'static str] {
        &["status.phase"]
    }

    /// `finalize` changes `spec.finalizers` and nothing else.
    fn update_subresource(&self, subresource: &str, new: &Value, old: &Value) -> SubUpdate {
        if subresource != "finalize" {
            return None;
        }
        let mut updated = with_field_of(new, old, "spec", "finalizers");
        let causes = validate_finalizers(&updated["spec"]["finalizers"]);
        if !causes.is_empty() {
            return Some(Err(causes));
        }
        // An empty list is no list.
        if updated["spec"]["finalizers"]
            .as_array()
            .is_none_or(Vec::is_empty)
            && let Some(spec) = updated.get_mut("spec").and_then(Value::as_object_mut)
        {
            spec.remove("finalizers");
        }
        Some(Ok(updated))
    }
}

/// Finalizer names Kubernetes defines without a domain prefix.
const STANDARD_FINALIZERS: [&str; 3] = ["foregroundDeletion", "kubernetes", "orphan"];

/// `spec.finalizers` of a namespace `finalize` request: qualified names, and names without
/// a prefix only if Kubernetes defines them.
fn validate_finalizers(finalizers: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (i, f) in finalizers.as_array().into_iter().flatten().enumerate() {
        let field = format!("spec.finalizers[{i}]");
        let name = f.as_str().unwrap_or_default();
        if let Some(detail) = qualified_name_problem(name) {
            causes.push(Cause::invalid(&field, name, &detail));
        } else if !name.contains('/') && !STANDARD_FINALIZERS.contains(&name) {
            causes.push(Cause {
                reason: "FieldValueNotSupported",
                field,
                message: format!(
                    "Unsupported value: \"{name}\": supported values: \"foregroundDeletion\", \"kubernetes\", \"orphan\""
                ),
            });
        }
    }
    causes
}

/// Why `name` is not a qualified name (`[prefix/]name`, as label keys), if it is not.
fn qualified_name_problem(name: &str) -> Option<String> {
    let (prefix, short) = match name.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, name),
    };
    if short.contains('/') {
        return Some("a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')".into());
    }
    if let Some(p) = prefix {
        if p.is_empty() {
            return Some("prefix part must be non-empty".into());
        }
        if let Some(c) = crate::meta::check_subdomain("", p) {
            return Some(format!(
                "prefix part {}",
                c.message
                    .split_once(": ")
                    .map(|(_, d)| d)
                    .unwrap_or_default()
            ));
        }
    }
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if short.is_empty() {
        return Some("name part must be non-empty".into());
    }
    if short.len() > 63 {
        return Some("name part must be no more than 63 characters".into());
    }
    if !short.chars().all(ok_char)
        || !short.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !short.ends_with(|c: char| c.is_ascii_alphanumeric())
    {
        return Some("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')".into());
    }
    None
}
