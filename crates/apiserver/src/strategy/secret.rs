//! Secrets: `stringData` is write-only, merged into `data` (base64) on every write as
//! Kubernetes converts it; the type defaults to Opaque and never changes.

use base64::Engine;
use serde_json::{Value, json};

use super::Strategy;
use crate::error::Cause;

pub struct SecretStrategy;

impl Strategy for SecretStrategy {
    fn defaults(&self, obj: &mut Value) {
        super::set_default(obj, "type", json!("Opaque"));
        let Some(string_data) = obj.as_object_mut().and_then(|o| o.remove("stringData")) else {
            return;
        };
        let Some(entries) = string_data.as_object() else {
            return;
        };
        if !obj.get("data").is_some_and(Value::is_object) {
            obj["data"] = json!({});
        }
        for (k, v) in entries {
            let text = v.as_str().unwrap_or_default();
            obj["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(text));
        }
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        if new.get("type") != old.get("type") {
            return vec![Cause::invalid(
                "type",
                new.get("type").and_then(Value::as_str).unwrap_or(""),
                "field is immutable",
            )];
        }
        Vec::new()
    }

    fn field_selectors(&self) -> &'static [&'static str] {
        &["type"]
    }
}
