//! NamespaceLifecycle: nothing is created in a namespace that does not exist (404) or is
//! being deleted (403, with the `NamespaceTerminating` cause controllers look for, so they
//! neither retry nor report what cannot succeed). Namespaces themselves, cluster-scoped
//! objects and access reviews (which create nothing) are exempt. Deleting the system
//! namespaces is refused by the handler.

use serde_json::{Value, json};

use crate::admission::{Attributes, Operation, support::forbidden_unnamed};
use crate::error::{ApiError, ApiResult};
use crate::registry::Registry;

/// Resources that are "created" without storing anything, so need no live namespace.
const ACCESS_REVIEWS: [(&str, &str); 1] = [("authorization.k8s.io", "localsubjectaccessreviews")];

/// Refuses a create into a missing or terminating namespace.
pub async fn admit(registry: &Registry, a: &Attributes<'_>, obj: &Value) -> ApiResult<()> {
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
    let ns = match registry.get_cached(&ns_info, None, a.namespace).await {
        Ok(ns) => ns,
        Err(e) if e.code == 404 => return Err(ApiError::not_found(&ns_info, a.namespace)),
        Err(e) => return Err(e),
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

    #[test]
    fn terminating_by_phase_or_deletion_mark() {
        assert!(!terminating(&json!({"status": {"phase": "Active"}})));
        assert!(terminating(&json!({"status": {"phase": "Terminating"}})));
        assert!(terminating(
            &json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}})
        ));
    }
}
