//! DefaultStorageClass: a claim created without a class (no `storageClassName`, not even
//! `""`, and no beta class annotation) gets the default StorageClass — the one annotated
//! `storageclass.kubernetes.io/is-default-class: "true"`, the newest when several are
//! (upstream since 1.28). Without a default class the claim is left alone; the
//! PersistentVolume controller gives it one later if a default appears.

use std::sync::Arc;

use common::storage::{annotations, classes};
use k8s_openapi::api::storage::v1::StorageClass;
use serde_json::{Value, json};

use crate::admission::support::forbidden_unnamed;
use crate::admission::{Attributes, Lister, Operation};
use crate::error::ApiResult;

/// Whether the claim names a class at all (upstream's PersistentVolumeClaimHasClass).
fn has_class(claim: &Value) -> bool {
    claim
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .is_some_and(|a| a.contains_key(annotations::BETA_STORAGE_CLASS))
        || claim
            .pointer("/spec/storageClassName")
            .is_some_and(|c| !c.is_null())
}

/// Fills `spec.storageClassName` of a new claim without a class.
pub async fn admit(lister: &dyn Lister, a: &Attributes<'_>, claim: &mut Value) -> ApiResult<()> {
    if a.operation != Operation::Create || !a.is_core("PersistentVolumeClaim") || has_class(claim) {
        return Ok(());
    }
    let info = crate::resources::by_kind("storage.k8s.io", "StorageClass")?;
    // From the watch cache without waiting, as upstream's lister.
    let stored = lister.list(info, None).await?;
    let mut all = Vec::with_capacity(stored.len());
    for c in stored.iter() {
        match serde_json::from_value::<StorageClass>((**c).clone()) {
            Ok(c) => all.push(Arc::new(c)),
            Err(e) => {
                return Err(forbidden_unnamed(
                    a,
                    Some(claim),
                    format!("reading storage classes: {e}"),
                ));
            }
        }
    }
    let Some(default) = classes::default_class(&all) else {
        return Ok(());
    };
    let name = default.metadata.name.clone().unwrap_or_default();
    if let Some(spec) = claim.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert("storageClassName".into(), json!(name));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::lister::memory::{Objects, create};

    fn class(name: &str, default: bool, created: &str) -> Value {
        json!({"metadata": {"name": name, "creationTimestamp": created,
            "annotations": {"storageclass.kubernetes.io/is-default-class": default.to_string()}},
            "provisioner": "rkube.io/local-path"})
    }

    /// StorageClasses in memory: a claim without a class gets the newest default one; a
    /// claim asking for no class (`""`) keeps it.
    #[tokio::test]
    async fn the_newest_default_class_from_the_lister() {
        let lister = Objects::default()
            .with(
                "storage.k8s.io",
                "StorageClass",
                class("old-default", true, "2024-01-01T00:00:00Z"),
            )
            .with(
                "storage.k8s.io",
                "StorageClass",
                class("new-default", true, "2025-01-01T00:00:00Z"),
            )
            .with(
                "storage.k8s.io",
                "StorageClass",
                class("newest", false, "2026-01-01T00:00:00Z"),
            );
        let info = crate::resources::by_kind("", "PersistentVolumeClaim").unwrap();
        let a = create(info, "team", "data");

        let mut claim = json!({"metadata": {"name": "data"}, "spec": {}});
        admit(&lister, &a, &mut claim).await.unwrap();
        assert_eq!(claim["spec"]["storageClassName"], "new-default");

        let mut none = json!({"metadata": {"name": "data"}, "spec": {"storageClassName": ""}});
        admit(&lister, &a, &mut none).await.unwrap();
        assert_eq!(none["spec"]["storageClassName"], "");

        let mut claim = json!({"metadata": {"name": "data"}, "spec": {}});
        admit(&Objects::default(), &a, &mut claim).await.unwrap();
        assert_eq!(claim["spec"].get("storageClassName"), None);
    }

    #[test]
    fn an_empty_class_or_the_beta_annotation_is_a_class() {
        assert!(!has_class(&json!({"spec": {}})));
        assert!(!has_class(&json!({"spec": {"storageClassName": null}})));
        assert!(has_class(&json!({"spec": {"storageClassName": ""}})));
        assert!(has_class(&json!({"metadata": {"annotations": {
            "volume.beta.kubernetes.io/storage-class": "x"}}, "spec": {}})));
    }
}
