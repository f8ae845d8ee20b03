//! Roles, ClusterRoles and their bindings: names are path segments (so `system:node` is a
//! valid name), every rule needs verbs, and a binding's roleRef never changes.

use serde_json::Value;

use super::Strategy;
use crate::error::Cause;

pub struct RbacStrategy {
    pub kind: &'static str,
}

impl Strategy for RbacStrategy {
    fn own_name_rule(&self) -> bool {
        true
    }

    fn validate_name(&self, name: &str) -> Option<Cause> {
        if name == "." || name == ".." {
            return Some(Cause::invalid(
                "metadata.name",
                name,
                "may not be '.' or '..'",
            ));
        }
        name.contains(['/', '%'])
            .then(|| Cause::invalid("metadata.name", name, "may not contain '/' or '%'"))
    }

    fn validate(&self, obj: &Value) -> Vec<Cause> {
        let mut causes = Vec::new();
        match self.kind {
            "Role" | "ClusterRole" => {
                let rules = obj.get("rules").and_then(Value::as_array);
                for (i, r) in rules.into_iter().flatten().enumerate() {
                    let len = |k: &str| r.get(k).and_then(Value::as_array).map_or(0, Vec::len);
                    if len("verbs") == 0 {
                        causes.push(Cause::required(format!("rules[{i}].verbs")));
                    }
                    if len("nonResourceURLs") > 0 {
                        if self.kind == "Role" {
                            causes.push(Cause::invalid(
                                format!("rules[{i}].nonResourceURLs"),
                                "",
                                "namespaced rules cannot apply to non-resource URLs",
                            ));
                        }
                        if len("apiGroups") > 0 || len("resources") > 0 || len("resourceNames") > 0
                        {
                            causes.push(Cause::invalid(
                                format!("rules[{i}].nonResourceURLs"),
                                "",
                                "rules cannot apply to both regular resources and non-resource URLs",
                            ));
                        }
                    } else {
                        if len("apiGroups") == 0 {
                            causes.push(Cause {
                                reason: "FieldValueRequired",
                                field: format!("rules[{i}].apiGroups"),
                                message: "Required value: resource rules must supply at least one api group".into(),
                            });
                        }
                        if len("resources") == 0 {
                            causes.push(Cause {
                                reason: "FieldValueRequired",
                                field: format!("rules[{i}].resources"),
                                message: "Required value: resource rules must supply at least one resource".into(),
                            });
                        }
                    }
                }
            }
            _ => {
                let kind = obj.pointer("/roleRef/kind").and_then(Value::as_str);
                let name = obj.pointer("/roleRef/name").and_then(Value::as_str);
                let allowed: &[&str] = if self.kind == "RoleBinding" {
                    &["Role", "ClusterRole"]
                } else {
                    &["ClusterRole"]
                };
                match kind {
                    Some(k) if allowed.contains(&k) => {}
                    Some(k) => causes.push(Cause {
                        reason: "FieldValueNotSupported",
                        field: "roleRef.kind".into(),
                        message: format!(
                            "Unsupported value: \"{k}\": supported values: {}",
                            allowed
                                .iter()
                                .map(|a| format!("\"{a}\""))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    }),
                    None => causes.push(Cause::required("roleRef.kind")),
                }
                if name.is_none_or(str::is_empty) {
                    causes.push(Cause::required("roleRef.name"));
                }
            }
        }
        causes
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        if matches!(self.kind, "RoleBinding" | "ClusterRoleBinding")
            && new.get("roleRef") != old.get("roleRef")
        {
            return vec![Cause::invalid(
                "roleRef",
                new.get("roleRef").cloned().unwrap_or_default(),
                "cannot change roleRef",
            )];
        }
        Vec::new()
    }
}
