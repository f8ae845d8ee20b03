//! DefaultIngressClass: an Ingress created without a class (no `spec.ingressClassName` and no
//! `kubernetes.io/ingress.class` annotation) gets the default IngressClass — the one
//! annotated `ingressclass.kubernetes.io/is-default-class: "true"`, the newest when several
//! are (ties: the first name), as upstream picks it. Without a default class the Ingress is
//! left alone; ingress controllers then decide by the default class themselves.

use std::sync::Arc;

use k8s_openapi::api::networking::v1::IngressClass;
use serde_json::{Value, json};

use crate::admission::support::forbidden_unnamed;
use crate::admission::{Attributes, Lister, Operation};
use crate::error::ApiResult;

const GROUP: &str = "networking.k8s.io";
/// On an IngressClass: Ingresses without a class get this one.
const IS_DEFAULT_CLASS: &str = "ingressclass.kubernetes.io/is-default-class";
/// On an Ingress: the class, as named before `spec.ingressClassName` existed.
const CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// Whether the Ingress names a class at all (the field, or the annotation with any value).
fn has_class(ingress: &Value) -> bool {
    ingress
        .pointer("/spec/ingressClassName")
        .is_some_and(|c| !c.is_null())
        || ingress
            .pointer("/metadata/annotations")
            .and_then(Value::as_object)
            .is_some_and(|a| a.contains_key(CLASS_ANNOTATION))
}

fn is_default(class: &IngressClass) -> bool {
    class
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(IS_DEFAULT_CLASS))
        .is_some_and(|v| v == "true")
}

/// The newest class marked default; equal creation times: the first name.
fn default_class(classes: &[Arc<IngressClass>]) -> Option<&Arc<IngressClass>> {
    let created = |c: &IngressClass| {
        c.metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.as_nanosecond())
    };
    classes.iter().filter(|c| is_default(c)).min_by(|a, b| {
        created(b)
            .cmp(&created(a))
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    })
}

/// Fills `spec.ingressClassName` of a new Ingress without a class.
pub async fn admit(lister: &dyn Lister, a: &Attributes<'_>, ingress: &mut Value) -> ApiResult<()> {
    if a.operation != Operation::Create
        || a.info.group != GROUP
        || a.info.kind != "Ingress"
        || a.subresource.is_some()
        || has_class(ingress)
    {
        return Ok(());
    }
    let info = crate::resources::by_kind(GROUP, "IngressClass")?;
    // From the watch cache without waiting, as upstream's lister.
    let stored = lister.list(info, None).await?;
    let mut all = Vec::with_capacity(stored.len());
    for c in stored.iter() {
        match serde_json::from_value::<IngressClass>((**c).clone()) {
            Ok(c) => all.push(Arc::new(c)),
            Err(e) => {
                return Err(forbidden_unnamed(
                    a,
                    Some(ingress),
                    format!("reading ingress classes: {e}"),
                ));
            }
        }
    }
    let Some(default) = default_class(&all) else {
        return Ok(());
    };
    let name = default.metadata.name.clone().unwrap_or_default();
    if let Some(obj) = ingress.as_object_mut() {
        let spec = obj.entry("spec").or_insert_with(|| json!({}));
        if !spec.is_object() {
            *spec = json!({});
        }
        spec["ingressClassName"] = json!(name);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_field_or_the_annotation_is_a_class() {
        assert!(!has_class(&json!({"spec": {}})));
        assert!(!has_class(&json!({"spec": {"ingressClassName": null}})));
        assert!(has_class(&json!({"spec": {"ingressClassName": "x"}})));
        assert!(has_class(&json!({"metadata": {"annotations": {
            "kubernetes.io/ingress.class": ""}}, "spec": {}})));
    }

    #[test]
    fn the_newest_default_then_the_first_name() {
        let class = |name: &str, default: bool, created: &str| {
            Arc::new(
                serde_json::from_value::<IngressClass>(json!({
                    "metadata": {"name": name, "creationTimestamp": created,
                        "annotations": {IS_DEFAULT_CLASS: default.to_string()}},
                }))
                .unwrap_or_default(),
            )
        };
        let name = |c: Option<&Arc<IngressClass>>| c.and_then(|c| c.metadata.name.clone());
        let old = class("old", true, "2026-01-01T00:00:00Z");
        let new = class("new", true, "2026-01-02T00:00:00Z");
        let newest = class("newest", false, "2026-01-03T00:00:00Z");
        let all = [old.clone(), new.clone(), newest];
        assert_eq!(name(default_class(&all)), Some("new".into()));
        let tie = [
            class("b", true, "2026-01-01T00:00:00Z"),
            class("a", true, "2026-01-01T00:00:00Z"),
        ];
        assert_eq!(name(default_class(&tie)), Some("a".into()));
        assert_eq!(name(default_class(&[])), None);
    }
}
