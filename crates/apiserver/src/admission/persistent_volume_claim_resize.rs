//! PersistentVolumeClaimResize: an update raising a claim's `spec.resources.requests.storage`
//! is refused (403) unless the stored claim is `Bound` and both the stored and the new claim
//! name the same class (the beta annotation winning over `storageClassName`), a StorageClass
//! that exists with `allowVolumeExpansion: true`. Keeping or lowering the request, and the
//! `status` subresource, are not its business. (Upstream's plugin of the same name, since
//! 1.11 without the PersistentVolume lister and volume plugin check.)

use common::storage::claims;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use serde_json::Value;

use crate::admission::support::forbidden;
use crate::admission::{Attributes, Lister, Operation};
use crate::error::ApiResult;

/// Upstream's refusal of an unbound claim's growth, word for word.
const NOT_BOUND: &str = "Only bound persistent volume claims can be expanded";
/// Upstream's refusal when the class does not allow expansion, word for word.
const CLASS_DISALLOWS: &str = "only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize";

/// Refuses an update of `claim` that grows it where it may not grow.
pub async fn validate(lister: &dyn Lister, a: &Attributes<'_>, claim: &Value) -> ApiResult<()> {
    if a.operation != Operation::Update || !a.is_core("PersistentVolumeClaim") {
        return Ok(());
    }
    let Some(old) = a.old else {
        return Ok(());
    };
    // What is not a claim is not this plugin's to judge (upstream's failed type assertion);
    // the kind's own validation has run already.
    let (Ok(new), Ok(old)) = (
        serde_json::from_value::<PersistentVolumeClaim>(claim.clone()),
        serde_json::from_value::<PersistentVolumeClaim>(old.clone()),
    ) else {
        return Ok(());
    };
    // A missing request compares as zero, as upstream's zero Quantity.
    let grows = claims::bytes(claims::requested_storage(&new))
        > claims::bytes(claims::requested_storage(&old));
    if !grows {
        return Ok(());
    }
    // The stored claim's phase: the request may not bind and grow it in one write.
    if claims::claim_phase(&old) != claims::PHASE_BOUND {
        return Err(forbidden(a, Some(claim), NOT_BOUND));
    }
    if !class_allows_expansion(lister, &new, &old).await? {
        return Err(forbidden(a, Some(claim), CLASS_DISALLOWS));
    }
    Ok(())
}

/// Whether both claims name the same class and that class allows expansion; no class, a
/// changed class, a missing class and an unset `allowVolumeExpansion` do not.
async fn class_allows_expansion(
    lister: &dyn Lister,
    new: &PersistentVolumeClaim,
    old: &PersistentVolumeClaim,
) -> ApiResult<bool> {
    let class = claims::claim_class(new);
    if class.is_empty() || class != claims::claim_class(old) {
        return Ok(false);
    }
    let info = crate::resources::by_kind("storage.k8s.io", "StorageClass")?;
    // From the cache (a miss reads the store), as upstream's lister. A missing class is a
    // refusal; a failed read is the server's error, not the user's.
    let Some(sc) = lister.get(info, None, class).await? else {
        return Ok(false);
    };
    Ok(sc.get("allowVolumeExpansion").and_then(Value::as_bool) == Some(true))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::admission::lister::memory::{Objects, create};

    fn class(name: &str, allow: Option<bool>) -> Value {
        let mut c = json!({"metadata": {"name": name}, "provisioner": "rkube.io/local-path"});
        if let Some(allow) = allow {
            c["allowVolumeExpansion"] = json!(allow);
        }
        c
    }

    fn claim(class: &str, size: &str, phase: &str) -> Value {
        json!({"metadata": {"name": "data", "namespace": "team"},
            "spec": {"storageClassName": class, "volumeName": "pv-1",
                "resources": {"requests": {"storage": size}}},
            "status": {"phase": phase}})
    }

    fn lister() -> Objects {
        Objects::default()
            .with("storage.k8s.io", "StorageClass", class("grow", Some(true)))
            .with(
                "storage.k8s.io",
                "StorageClass",
                class("fixed", Some(false)),
            )
            .with("storage.k8s.io", "StorageClass", class("unset", None))
    }

    /// The message of the refusal of `new` replacing `old`; `None`: admitted.
    async fn refusal(old: &Value, new: &Value, subresource: Option<&str>) -> Option<String> {
        let info = crate::resources::by_kind("", "PersistentVolumeClaim").unwrap();
        let a = Attributes {
            operation: Operation::Update,
            old: Some(old),
            subresource,
            ..create(info, "team", "data")
        };
        validate(&lister(), &a, new).await.err().map(|e| {
            assert_eq!(e.code, 403);
            e.message
        })
    }

    const REFUSED: &str = "persistentvolumeclaims \"data\" is forbidden: only dynamically \
        provisioned pvc can be resized and the storageclass that provisions the pvc must \
        support resize";

    #[tokio::test]
    async fn a_bound_claim_grows_only_in_a_class_allowing_it() {
        let bound = |c, s| claim(c, s, "Bound");
        assert_eq!(
            refusal(&bound("grow", "1Gi"), &bound("grow", "2Gi"), None).await,
            None
        );
        for class in ["fixed", "unset", "missing", ""] {
            assert_eq!(
                refusal(&bound(class, "1Gi"), &bound(class, "2Gi"), None)
                    .await
                    .as_deref(),
                Some(REFUSED),
                "class {class:?}"
            );
        }
        // Changing the class in the same write is no way around it.
        assert_eq!(
            refusal(&bound("fixed", "1Gi"), &bound("grow", "2Gi"), None)
                .await
                .as_deref(),
            Some(REFUSED)
        );
        // The beta annotation names the class over storageClassName.
        let mut annotated = bound("fixed", "1Gi");
        annotated["metadata"]["annotations"] =
            json!({"volume.beta.kubernetes.io/storage-class": "grow"});
        let mut grown = annotated.clone();
        grown["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
        assert_eq!(refusal(&annotated, &grown, None).await, None);
    }

    #[tokio::test]
    async fn only_bound_claims_grow_and_keeping_or_shrinking_is_not_judged_here() {
        assert_eq!(
            refusal(
                &claim("grow", "1Gi", "Pending"),
                &claim("grow", "1536Mi", "Bound"),
                None
            )
            .await
            .as_deref(),
            Some(
                "persistentvolumeclaims \"data\" is forbidden: Only bound persistent volume \
                 claims can be expanded"
            )
        );
        let fixed = |s| claim("fixed", s, "Bound");
        // Equal amounts in other units are no growth.
        assert_eq!(refusal(&fixed("1Gi"), &fixed("1024Mi"), None).await, None);
        assert_eq!(refusal(&fixed("2Gi"), &fixed("1Gi"), None).await, None);
        // The status subresource is the controllers'.
        assert_eq!(
            refusal(&fixed("1Gi"), &fixed("2Gi"), Some("status")).await,
            None
        );
    }
}
