//! APIServices (kube-aggregator's `pkg/registry/apiservice` strategy and
//! `pkg/apis/apiregistration/validation`): the name is `<version>.<group>` (`v1.` for the
//! core group), the priorities are in range, and a local APIService (no `service`) has no
//! TLS settings; a remote one names its Service and trusts a caBundle or skips
//! verification, not both. Status is the availability controller's.

use serde_json::{Value, json};

use super::{Strategy, set_default};
use crate::error::Cause;
use crate::meta;

pub struct ApiServiceStrategy;

fn str_at<'a>(obj: &'a Value, ptr: &str) -> &'a str {
    meta::str_at(obj, ptr).unwrap_or("")
}

impl Strategy for ApiServiceStrategy {
    fn defaults(&self, obj: &mut Value) {
        // A Service's port defaults to 443 (the v1 API's default).
        if let Some(service) = obj.pointer_mut("/spec/service")
            && service.is_object()
        {
            set_default(service, "port", json!(443));
        }
    }

    fn prepare_for_create(&self, obj: &mut Value, _user: Option<&crate::user::UserInfo>) {
        obj["status"] = json!({});
    }

    fn own_name_rule(&self) -> bool {
        true
    }

    /// Upstream's `path.IsValidPathSegmentName`: `v1.` is a valid name; the rest of the
    /// rule (`<version>.<group>`) needs the spec, in [`Strategy::validate`].
    fn validate_name(&self, name: &str) -> Option<Cause> {
        let bad = if name == "." || name == ".." {
            Some(format!("may not be '{name}'"))
        } else {
            ["/", "%"]
                .iter()
                .find(|c| name.contains(**c))
                .map(|c| format!("may not contain '{c}'"))
        };
        bad.map(|detail| Cause::invalid("metadata.name", name, &detail))
    }

    fn validate(&self, obj: &Value) -> Vec<Cause> {
        let mut causes = Vec::new();
        let group = str_at(obj, "/spec/group");
        let version = str_at(obj, "/spec/version");
        let required = format!("{version}.{group}");
        let name = meta::name(obj);
        if !name.is_empty() && name != required {
            causes.push(Cause::invalid(
                "metadata.name",
                name,
                &format!("must be `spec.version+\".\"+spec.group`: {required:?}"),
            ));
        }
        if group.is_empty() && version != "v1" {
            causes.push(Cause::required("spec.group"));
        }
        if !group.is_empty() {
            causes.extend(meta::check_subdomain("spec.group", group));
        }
        causes.extend(check_version(version));
        let int = |ptr: &str| obj.pointer(ptr).and_then(Value::as_i64).unwrap_or(0);
        let group_priority = int("/spec/groupPriorityMinimum");
        if !(1..=20000).contains(&group_priority) {
            causes.push(Cause::invalid(
                "spec.groupPriorityMinimum",
                group_priority,
                "must be positive and less than 20000",
            ));
        }
        let version_priority = int("/spec/versionPriority");
        if !(1..=1000).contains(&version_priority) {
            causes.push(Cause::invalid(
                "spec.versionPriority",
                version_priority,
                "must be positive and less than 1000",
            ));
        }
        let ca_bundle = str_at(obj, "/spec/caBundle");
        let insecure = obj
            .pointer("/spec/insecureSkipTLSVerify")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let Some(service) = obj.pointer("/spec/service").filter(|s| !s.is_null()) else {
            if !ca_bundle.is_empty() {
                // Upstream counts the decoded bytes.
                let bytes = base64_len(ca_bundle);
                causes.push(Cause::invalid(
                    "spec.caBundle",
                    format!("{bytes} bytes"),
                    "local APIServices may not have a caBundle",
                ));
            }
            if insecure {
                causes.push(Cause::invalid(
                    "spec.insecureSkipTLSVerify",
                    true,
                    "local APIServices may not have insecureSkipTLSVerify",
                ));
            }
            return causes;
        };
        for field in ["namespace", "name"] {
            if str_at(service, &format!("/{field}")).is_empty() {
                causes.push(Cause::required(format!("spec.service.{field}")));
            }
        }
        let port = service.get("port").and_then(Value::as_i64).unwrap_or(443);
        if !(1..=65535).contains(&port) {
            causes.push(Cause::invalid(
                "spec.service.port",
                port,
                "port is not valid: must be between 1 and 65535, inclusive",
            ));
        }
        if insecure && !ca_bundle.is_empty() {
            causes.push(Cause::invalid(
                "spec.insecureSkipTLSVerify",
                true,
                "may not be true if caBundle is present",
            ));
        }
        causes
    }
}

/// A version must be a DNS-1035 label: a DNS-1123 label that starts with a letter.
fn check_version(version: &str) -> Option<Cause> {
    let label_ok = meta::check_label("spec.version", version).is_none();
    (!label_ok || !version.starts_with(|c: char| c.is_ascii_lowercase())).then(|| {
        Cause::invalid(
            "spec.version",
            version,
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
        )
    })
}

fn base64_len(s: &str) -> usize {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_or(s.len(), |b| b.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_service(name: &str, spec: Value) -> Value {
        json!({"metadata": {"name": name}, "spec": spec})
    }

    #[test]
    fn names_priorities_and_tls_are_checked_as_upstream() {
        let s = ApiServiceStrategy;
        let ok = api_service(
            "v1alpha1.wardle.example.com",
            json!({"group": "wardle.example.com", "version": "v1alpha1",
                "groupPriorityMinimum": 1000, "versionPriority": 15,
                "service": {"namespace": "wardle", "name": "api", "port": 443}, "caBundle": "Zm9v"}),
        );
        assert!(s.validate(&ok).is_empty(), "{:?}", s.validate(&ok));
        assert!(s.validate_name("v1.").is_none());
        assert!(s.validate_name("a/b").is_some());
        let local = api_service(
            "v1.",
            json!({"version": "v1", "groupPriorityMinimum": 18000, "versionPriority": 1}),
        );
        assert!(s.validate(&local).is_empty());
        let bad = api_service(
            "wrong",
            json!({"group": "x.io", "version": "v1", "groupPriorityMinimum": 0,
                "versionPriority": 1001, "caBundle": "Zm9v", "insecureSkipTLSVerify": true}),
        );
        let fields: Vec<String> = s.validate(&bad).into_iter().map(|c| c.field).collect();
        assert_eq!(
            fields,
            [
                "metadata.name",
                "spec.groupPriorityMinimum",
                "spec.versionPriority",
                "spec.caBundle",
                "spec.insecureSkipTLSVerify"
            ]
        );
    }
}
