//! Namespaces: DNS-label names, `Active` on create, the `kubernetes` finalizer.

use serde_json::{Value, json};

use super::Strategy;

pub struct NamespaceStrategy;

impl Strategy for NamespaceStrategy {
    fn prepare_for_create(&self, obj: &mut Value) {
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

    fn name_is_label(&self) -> bool {
        true
    }

    fn field_selectors(&self) -> &'static [&'static str] {
        &["status.phase"]
    }
}
