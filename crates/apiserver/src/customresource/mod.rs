//! Custom kinds: each served version of a CustomResourceDefinition becomes a
//! [`KindRegistration`] (upstream's `apiextensions-apiserver` `crdHandler` and its
//! per-version storage): names and scope from the CRD, decoding that prunes by the
//! version's structural schema ([`codec`]), a strategy that defaults and validates by it
//! ([`strategy`]), the printer columns ([`printer`]), the `status` and `scale` subresources,
//! and conversion between versions (by `apiVersion`, or by the CRD's conversion webhook). The [`controller`] registers them as
//! CRDs come and go.

mod codec;
pub mod controller;
mod jsonpath;
mod printer;
mod strategy;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use apiextensions::schema::Structural;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
use serde_json::{Value, json};

use crate::error::{ApiError, Cause};
use crate::kinds::KindRegistration;
use crate::registry::hooks::StoreHooks;
use crate::resources::ResourceInfo;
use crate::scale::{ScalePaths, ScaleSelector};

/// A string that lives as long as the process (registrations hold `&'static str`, as
/// built-in kinds do; a CRD's names are leaked once per registration).
fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

fn leak_list(v: Option<&Value>) -> &'static [&'static str] {
    let list: Vec<&'static str> = v
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(leak)
        .collect();
    Box::leak(list.into_boxed_slice())
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn versions(crd: &Value) -> &[Value] {
    crd.pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// A version's `openAPIV3Schema`, typed.
fn version_schema(version: &Value) -> Result<Option<JSONSchemaProps>, String> {
    match version.pointer("/schema/openAPIV3Schema") {
        None => Ok(None),
        Some(s) => serde_json::from_value(s.clone())
            .map(Some)
            .map_err(|e| e.to_string()),
    }
}

fn cause_of(e: &apiextensions::field::FieldError) -> Cause {
    Cause {
        reason: e.reason(),
        field: e.field.clone(),
        message: e.message(),
    }
}

/// A CEL rule's error (a violation, or a rule that does not compile) as a cause.
fn rule_cause(field: String, reason: cel::Reason, value: Option<Value>, detail: String) -> Cause {
    use apiextensions::field::{ErrorType, FieldError};
    let error_type = match reason {
        cel::Reason::FieldValueInvalid => ErrorType::Invalid,
        cel::Reason::FieldValueForbidden => ErrorType::Forbidden,
        cel::Reason::FieldValueRequired => ErrorType::Required,
        cel::Reason::FieldValueDuplicate => ErrorType::Duplicate,
        cel::Reason::FieldValueNotSupported => ErrorType::NotSupported,
    };
    cause_of(&FieldError {
        error_type,
        field,
        bad_value: value,
        detail,
    })
}

/// A version's CEL rules, compiled; `None` when its schema has none.
fn compile_rules(schema: &JSONSchemaProps, path: &str) -> Result<Option<cel::Rules>, Vec<Cause>> {
    match cel::Rules::new(schema, path) {
        Ok(rules) if rules.is_empty() => Ok(None),
        Ok(rules) => Ok(Some(rules)),
        Err(errors) => Err(errors
            .into_iter()
            .map(|e| rule_cause(e.field, e.reason, e.value, e.message))
            .collect()),
    }
}

/// The errors of each version's schema: not structural, bad patterns or defaults, rules
/// that do not compile or cost too much.
pub fn schema_errors(crd: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (i, v) in versions(crd).iter().enumerate() {
        let path = format!("spec.versions[{i}].schema.openAPIV3Schema");
        match version_schema(v) {
            Ok(Some(schema)) => {
                if let Err(errors) = Structural::new(&schema, &path) {
                    causes.extend(errors.iter().map(cause_of));
                }
                if let Err(errors) = compile_rules(&schema, &path) {
                    causes.extend(errors);
                }
            }
            Ok(None) => {}
            Err(e) => causes.push(Cause::invalid(path, "", &e)),
        }
    }
    causes
}

/// Sets a CRD condition, keeping its transition time when the status does not change.
pub fn set_condition(crd: &mut Value, kind: &str, status: &str, reason: &str, message: &str) {
    if !crd.get("status").is_some_and(Value::is_object) {
        crd["status"] = json!({});
    }
    let conditions = crd["status"]
        .as_object_mut()
        .map(|s| s.entry("conditions").or_insert_with(|| json!([])));
    let Some(list) = conditions.and_then(Value::as_array_mut) else {
        return;
    };
    let now = crate::meta::now_rfc3339();
    match list.iter_mut().find(|c| str_at(c, "/type") == kind) {
        Some(c) => {
            if str_at(c, "/status") != status {
                c["lastTransitionTime"] = json!(now);
            }
            c["status"] = json!(status);
            c["reason"] = json!(reason);
            c["message"] = json!(message);
        }
        None => list.push(json!({
            "type": kind, "status": status, "lastTransitionTime": now,
            "reason": reason, "message": message,
        })),
    }
}

/// Kubernetes' version priority (`CompareKubeAwareVersionStrings`), highest first: GA by
/// major version, then betas, then alphas (each by major, then minor), then versions not of
/// that form, alphabetically. Discovery lists a CRD's versions in this order and prefers
/// the first.
fn kube_aware(a: &str, b: &str) -> std::cmp::Ordering {
    fn key(v: &str) -> Option<(u8, u64, u64)> {
        let rest = v.strip_prefix('v')?;
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let major: u64 = rest[..digits].parse().ok()?;
        match &rest[digits..] {
            "" => Some((3, major, 0)),
            tail => {
                let (stability, minor) = if let Some(m) = tail.strip_prefix("beta") {
                    (2, m)
                } else {
                    (1, tail.strip_prefix("alpha")?)
                };
                Some((stability, major, minor.parse().ok()?))
            }
        }
    }
    match (key(a), key(b)) {
        (Some(x), Some(y)) => y.cmp(&x),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// A deprecated version's warning: its own, or upstream's default naming the newest served
/// version that is not deprecated.
fn deprecation_warning(crd: &Value, version: &Value) -> Option<String> {
    if version.get("deprecated") != Some(&json!(true)) {
        return None;
    }
    if let Some(w) = version.get("deprecationWarning").and_then(Value::as_str) {
        return Some(w.to_string());
    }
    let (group, kind) = (str_at(crd, "/spec/group"), str_at(crd, "/spec/names/kind"));
    let name = str_at(version, "/name");
    let mut msg = format!("{group}/{name} {kind} is deprecated");
    let mut newer: Vec<&str> = versions(crd)
        .iter()
        .filter(|v| {
            v.get("served") == Some(&json!(true)) && v.get("deprecated") != Some(&json!(true))
        })
        .map(|v| str_at(v, "/name"))
        .filter(|v| kube_aware(v, name).is_lt())
        .collect();
    newer.sort_by(|a, b| kube_aware(a, b));
    if let Some(best) = newer.first() {
        msg.push_str(&format!("; use {group}/{best} {kind}"));
    }
    Some(msg)
}

/// A `.spec.replicas` path (a CRD's scale paths) as a JSON pointer.
fn pointer_of(path: &str) -> String {
    path.trim_start_matches('.')
        .split('.')
        .fold(String::new(), |mut p, step| {
            p.push('/');
            p.push_str(step);
            p
        })
}

/// Refuses creates of a kind whose CRD is being deleted (upstream's CRD handler does, with
/// this message), so that deleting its objects ends.
struct TerminatingHooks(Arc<AtomicBool>);

#[async_trait::async_trait]
impl StoreHooks for TerminatingHooks {
    async fn begin_create(
        &self,
        _store: &Arc<dyn store::Store>,
        _obj: &mut Value,
    ) -> crate::error::ApiResult<()> {
        if self.0.load(Ordering::Acquire) {
            return Err(ApiError::new(
                405,
                "MethodNotAllowed",
                "create not allowed while custom resource definition is terminating",
            ));
        }
        Ok(())
    }
}

/// One registration per served version of `crd`, and the switch that marks them
/// terminating; `Err` when a schema does not compile (the CRD was validated when written,
/// so only a CRD stored by an older server).
pub fn registrations(
    crd: &Value,
    registry: &Arc<crate::registry::Registry>,
) -> Result<(Vec<KindRegistration>, Arc<AtomicBool>), String> {
    let terminating = Arc::new(AtomicBool::new(false));
    let group = leak(str_at(crd, "/spec/group"));
    let names = crd.pointer("/spec/names").cloned().unwrap_or_default();
    let kind = leak(str_at(&names, "/kind"));
    let plural = leak(str_at(&names, "/plural"));
    let singular = match str_at(&names, "/singular") {
        "" => kind.to_ascii_lowercase(),
        s => s.to_string(),
    };
    let namespaced = str_at(crd, "/spec/scope") != "Cluster";
    let short_names = leak_list(names.get("shortNames"));
    let categories = leak_list(names.get("categories"));
    let all = versions(crd);
    let storage = all
        .iter()
        .find(|v| v.get("storage") == Some(&json!(true)))
        .map(|v| format!("{group}/{}", str_at(v, "/name")));
    let mut out = Vec::new();
    let mut served: Vec<&Value> = all
        .iter()
        .filter(|v| v.get("served") == Some(&json!(true)))
        .collect();
    served.sort_by(|a, b| kube_aware(str_at(a, "/name"), str_at(b, "/name")));
    for v in served {
        let version = leak(str_at(v, "/name"));
        let path = "openAPIV3Schema";
        let schema = version_schema(v)?.unwrap_or_default();
        let structural = Structural::new(&schema, path).map_err(|errors| {
            errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message()))
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        let structural = Arc::new(structural);
        let rules = compile_rules(&schema, path).map_err(|errors| {
            errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        let status = v.pointer("/subresources/status").is_some();
        let scale = v.pointer("/subresources/scale");
        let mut subresources = Vec::new();
        if status {
            subresources.push("status");
        }
        if scale.is_some() {
            subresources.push("scale");
        }
        let info = ResourceInfo {
            group,
            version,
            kind,
            plural,
            singular: singular.clone(),
            namespaced,
            short_names,
            categories,
            subresources: Box::leak(subresources.into_boxed_slice()),
            create_only: false,
            read_only: false,
        };
        let selectable: Vec<&'static str> = v
            .get("selectableFields")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|f| leak(str_at(f, "/jsonPath").trim_start_matches('.')))
            .collect();
        let mut kind_reg = KindRegistration::untyped(info)
            .with_typed(crate::typed::Typed::by_schema(codec::SchemaCodec::new(
                structural.clone(),
                &schema,
                group,
                version,
                kind,
            )))
            .with_strategy(strategy::CustomResourceStrategy {
                schema: structural,
                rules,
                status,
                selectable: Box::leak(selectable.into_boxed_slice()),
            })
            .with_printer(printer::ColumnPrinter::new(
                v.get("additionalPrinterColumns"),
            ))
            .with_hooks(TerminatingHooks(terminating.clone()));
        if let Some(scale) = scale {
            kind_reg = kind_reg.with_scale(ScalePaths {
                spec_replicas: pointer_of(str_at(scale, "/specReplicasPath")),
                status_replicas: pointer_of(str_at(scale, "/statusReplicasPath")),
                selector: ScaleSelector::Text(
                    scale
                        .get("labelSelectorPath")
                        .and_then(Value::as_str)
                        .map(pointer_of),
                ),
            });
        }
        if let Some(warning) = deprecation_warning(crd, v) {
            kind_reg = kind_reg.with_deprecation(leak(&warning));
        }
        if all.len() > 1
            && let Some(storage) = &storage
        {
            kind_reg = match crd.pointer("/spec/conversion/webhook/clientConfig") {
                Some(client) if str_at(crd, "/spec/conversion/strategy") == "Webhook" => kind_reg
                    .with_conversion(crate::conversion::Webhook {
                        storage: storage.clone(),
                        webhook: json!({"name": str_at(crd, "/metadata/name"), "clientConfig": client}),
                        registry: registry.clone(),
                    }),
                _ => kind_reg.with_conversion(crate::conversion::ApiVersion {
                    storage: storage.clone(),
                }),
            };
        }
        out.push(kind_reg);
    }
    Ok((out, terminating))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_in_kubernetes_priority_order() {
        let mut v = vec![
            "v1beta1",
            "foo10",
            "v11alpha2",
            "v2",
            "v1",
            "v12alpha1",
            "v10beta3",
            "v3beta1",
            "foo1",
            "v11beta2",
            "v10",
        ];
        v.sort_by(|a, b| kube_aware(a, b));
        assert_eq!(
            v,
            [
                "v10",
                "v2",
                "v1",
                "v11beta2",
                "v10beta3",
                "v3beta1",
                "v1beta1",
                "v12alpha1",
                "v11alpha2",
                "foo1",
                "foo10"
            ]
        );
    }

    #[test]
    fn deprecated_versions_name_the_newest_replacement() {
        let crd = json!({"spec": {"group": "g.io", "names": {"kind": "K"}, "versions": [
            {"name": "v1beta1", "served": true, "deprecated": true},
            {"name": "v1", "served": true},
            {"name": "v2", "served": false},
        ]}});
        let v = &crd["spec"]["versions"];
        assert_eq!(
            deprecation_warning(&crd, &v[0]).as_deref(),
            Some("g.io/v1beta1 K is deprecated; use g.io/v1 K")
        );
        assert_eq!(deprecation_warning(&crd, &v[1]), None);
    }
}
