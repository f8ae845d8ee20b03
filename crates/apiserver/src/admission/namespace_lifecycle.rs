//! NamespaceLifecycle: nothing is created in a namespace that does not exist (404) or is
//! being deleted (403, with the `NamespaceTerminating` cause controllers look for, so they
//! neither retry nor report what cannot succeed). Namespaces themselves, cluster-scoped
//! objects and access reviews (which create nothing) are exempt. Deleting the system
//! namespaces is refused by the handler.

use serde_json::{Value, json};

use crate::admission::{Attributes, Lister, Operation, support::forbidden_unnamed};
use crate::error::{ApiError, ApiResult};

/// Resources that are "created" without storing anything, so need no live namespace.
const ACCESS_REVIEWS: [(&str, &str); 1] = [("authorization.k8s.io", "localsubjectaccessreviews")];

/// Refuses a create into a missing or terminating namespace.
pub async fn admit(lister: &dyn Lister, a: &Attributes<'_>, obj: &Value) -> ApiResult<()> {
    if a.operation != Operation::Create
        || a.namespace.is_empty()
        || !a.info.namespaced
        || (a.info.group.is_empty() && a.info.kind == "Namespace")
        || ACCESS_REVIEWS.contains(&(a.info.group, a.info.plural))
    {
        return Ok(());
    }
    let ns_info = crate::resources::namespace_info();
    // From the cache, as upstream's lister (a miss reads the store: a namespace created a
    // moment ago is found). A store read per write would cost a write's worth of SQLite time.
    let Some(ns) = lister.get(&ns_info, None, a.namespace).await? else {
        return Err(ApiError::not_found(&ns_info, a.namespace));
    };
    if terminating(&ns) {
        let mut err = forbidden_unnamed(
            a,
            Some(obj),
            format_args!(
                "unable to create new content in namespace {} because it is being terminated",
                a.namespace
            ),
        );
        if let Some(d) = err.details.as_mut() {
            d["causes"] = json!([{
                "reason": "NamespaceTerminating",
                "message": format!("namespace {} is being terminated", a.namespace),
                "field": "metadata.namespace",
            }]);
        }
        return Err(err);
    }
    Ok(())
}

/// Whether a namespace is being deleted (its phase says so once the deletion is marked).
fn terminating(ns: &Value) -> bool {
    ns.pointer("/metadata/deletionTimestamp").is_some()
        || crate::meta::str_at(ns, "/status/phase") == Some("Terminating")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::lister::memory::{Objects, create};

    /// The plugin needs nothing but a lister: a few namespaces in memory decide it.
    #[tokio::test]
    async fn refuses_missing_and_terminating_namespaces_from_the_lister() {
        let lister = Objects::default()
            .with(
                "",
                "Namespace",
                json!({"metadata": {"name": "live"}, "status": {"phase": "Active"}}),
            )
            .with(
                "",
                "Namespace",
                json!({"metadata": {"name": "going"}, "status": {"phase": "Terminating"}}),
            );
        let info = crate::resources::by_kind("", "ConfigMap").unwrap();
        let cm = json!({"metadata": {"name": "cm"}});

        admit(&lister, &create(info, "live", "cm"), &cm)
            .await
            .unwrap();

        let e = admit(&lister, &create(info, "going", "cm"), &cm)
            .await
            .unwrap_err();
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "configmaps \"cm\" is forbidden: unable to create new content in namespace going because it is being terminated"
        );
        assert_eq!(
            e.details.unwrap()["causes"][0]["reason"],
            "NamespaceTerminating"
        );

        let e = admit(&lister, &create(info, "nowhere", "cm"), &cm)
            .await
            .unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (404, "namespaces \"nowhere\" not found")
        );

        // Namespaces themselves are created without one.
        let ns_info = crate::resources::by_kind("", "Namespace").unwrap();
        admit(&lister, &create(ns_info, "", "nowhere"), &json!({}))
            .await
            .unwrap();
    }

    #[test]
    fn terminating_by_phase_or_deletion_mark() {
        assert!(!terminating(&json!({"status": {"phase": "Active"}})));
        assert!(terminating(&json!({"status": {"phase": "Terminating"}})));
        assert!(terminating(
            &json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}})
        ));
    }
}
