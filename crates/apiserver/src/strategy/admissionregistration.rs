//! Mutating- and ValidatingWebhookConfiguration: admissionregistration.k8s.io/v1's defaults
//! and the validation the admission webhooks rely on (see admission/webhook.rs).

use serde_json::{Value, json};

use super::{Strategy, set_default};
use crate::error::Cause;

pub struct WebhookStrategy {
    pub mutating: bool,
}

impl Strategy for WebhookStrategy {
    fn defaults(&self, obj: &mut Value) {
        let Some(hooks) = obj.get_mut("webhooks").and_then(Value::as_array_mut) else {
            return;
        };
        for h in hooks {
            set_default(h, "failurePolicy", json!("Fail"));
            set_default(h, "matchPolicy", json!("Equivalent"));
            set_default(h, "timeoutSeconds", json!(10));
            set_default(h, "namespaceSelector", json!({}));
            set_default(h, "objectSelector", json!({}));
            if self.mutating {
                set_default(h, "reinvocationPolicy", json!("Never"));
            }
            if let Some(svc) = h.pointer_mut("/clientConfig/service") {
                set_default(svc, "port", json!(443));
            }
            for r in h
                .get_mut("rules")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                set_default(r, "scope", json!("*"));
            }
        }
    }

    fn validate(&self, obj: &Value) -> Vec<Cause> {
        let mut causes = Vec::new();
        let hooks = obj.get("webhooks").and_then(Value::as_array);
        for (i, h) in hooks.into_iter().flatten().enumerate() {
            let f = |field: &str| format!("webhooks[{i}].{field}");
            let s = |field: &str| h.get(field).and_then(Value::as_str).unwrap_or("");
            if h.get("name")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                causes.push(Cause::required(f("name")));
            }
            // v1 allows only webhooks without side effects on dry run (v1beta1 had more).
            match s("sideEffects") {
                "None" | "NoneOnDryRun" => {}
                "" => causes.push(Cause {
                    message: "Required value: must specify one of None, NoneOnDryRun".into(),
                    ..Cause::required(f("sideEffects"))
                }),
                other => causes.push(Cause::not_supported(
                    f("sideEffects"),
                    other,
                    &["None", "NoneOnDryRun"],
                )),
            }
            if !matches!(s("failurePolicy"), "" | "Fail" | "Ignore") {
                causes.push(Cause::not_supported(
                    f("failurePolicy"),
                    s("failurePolicy"),
                    &["Fail", "Ignore"],
                ));
            }
            if let Some(t) = h.get("timeoutSeconds").and_then(Value::as_i64)
                && !(1..=30).contains(&t)
            {
                causes.push(Cause::invalid(
                    f("timeoutSeconds"),
                    t,
                    "the timeout value must be between 1 and 30 seconds",
                ));
            }
            let versions = h.get("admissionReviewVersions").and_then(Value::as_array);
            if !versions
                .into_iter()
                .flatten()
                .any(|v| matches!(v.as_str(), Some("v1" | "v1beta1")))
            {
                causes.push(Cause {
                    message: "Required value: must specify one of v1, v1beta1".into(),
                    ..Cause::required(f("admissionReviewVersions"))
                });
            }
            let cc = h.get("clientConfig");
            let has = |k: &str| cc.and_then(|c| c.get(k)).is_some_and(|v| !v.is_null());
            if has("url") == has("service") {
                causes.push(Cause {
                    reason: "FieldValueRequired",
                    field: f("clientConfig"),
                    message: "Required value: exactly one of url or service is required".into(),
                });
            }
        }
        causes
    }
}
