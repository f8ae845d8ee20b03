//! A custom kind's strategy (upstream's `pkg/registry/customresource` strategy): defaults
//! and validation by the version's structural schema and its CEL rules, status kept apart when the
//! `status` subresource is on, generation counted, and the CRD's selectable fields.

use std::sync::Arc;

use apiextensions::schema::Structural;
use serde_json::Value;

use crate::error::Cause;
use crate::strategy::Strategy;

pub struct CustomResourceStrategy {
    pub schema: Arc<Structural>,
    /// The schema's `x-kubernetes-validations`, compiled; `None` when it has none.
    pub rules: Option<cel::Rules>,
    /// Whether the `status` subresource is on: then status is written only through it.
    pub status: bool,
    /// `selectableFields`, as field selector names (`spec.color`).
    pub selectable: &'static [&'static str],
}

impl Strategy for CustomResourceStrategy {
    fn defaults(&self, obj: &mut Value) {
        self.schema.default(obj);
    }

    fn prepare_for_create(&self, obj: &mut Value, _user: Option<&crate::user::UserInfo>) {
        if self.status
            && let Some(m) = obj.as_object_mut()
        {
            m.remove("status");
        }
    }

    fn validate(&self, obj: &Value) -> Vec<Cause> {
        self.schema
            .validate(obj)
            .iter()
            .map(super::cause_of)
            .collect()
    }

    fn validate_rules(&self, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
        let Some(rules) = &self.rules else {
            return Vec::new();
        };
        rules
            .validate(obj, old)
            .into_iter()
            .map(|v| super::rule_cause(v.field, v.reason, v.value, v.message))
            .collect()
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn field_selectors(&self) -> &'static [&'static str] {
        self.selectable
    }
}
