//! What admission may touch of the cluster's state, as upstream's plugins get listers over
//! the informer caches and nothing else: [`Lister`] reads objects (from the watch cache
//! where there is one), and [`QuotaWriter`] is the one write a plugin makes, ResourceQuota's
//! charge of `status.used` (upstream's quota accessor). Plugins take these, never the
//! registry: what a plugin can do is what its signature says, and a plugin is tested
//! against a few objects in memory. `registry_lister.rs` implements both over the registry.

use std::sync::Arc;

use serde_json::Value;

use crate::error::ApiResult;
use crate::registry::RequestContext;
use crate::resources::ResourceInfo;

/// Reads of other objects (upstream's `GenericLister`): the watch cache as it is now,
/// without waiting for it to catch up with writes in flight.
#[async_trait::async_trait]
pub trait Lister: Send + Sync {
    /// One object of `resource` (`ns` is ignored for cluster-scoped resources); `None` if
    /// there is none. A miss in the cache reads the store, so an object created a moment
    /// ago (a namespace, a service account) is still found.
    async fn get(
        &self,
        resource: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
    ) -> ApiResult<Option<Arc<Value>>>;

    /// Every object of `resource` in `ns` (`None`, or a cluster-scoped resource: all).
    async fn list(&self, resource: &ResourceInfo, ns: Option<&str>) -> ApiResult<Vec<Arc<Value>>>;
}

/// How [`QuotaWriter::update_status`] makes the quota to write from the stored one. (A
/// named type: inside `async_trait` the closure's argument would lose its `for<'a>`.)
pub type StatusUpdate<'f> = dyn FnMut(&Value) -> ApiResult<Value> + Send + 'f;

/// ResourceQuota's reads and writes of the quotas themselves (upstream's `QuotaAccessor`):
/// the usage charged must be the stored one, not the cache's, and a charge is a
/// compare-and-swap, so concurrent writes never overshoot a quota.
#[async_trait::async_trait]
pub trait QuotaWriter: Send + Sync {
    /// The ResourceQuota `ns/name` as stored now; `None` if it is gone.
    async fn quota(&self, ns: &str, name: &str) -> ApiResult<Option<Value>>;

    /// Writes the quota's status as `update` makes it from the stored quota, through the
    /// `status` subresource as `ctx`'s user and admission, retrying `update` on the newer
    /// quota while others change it first. `None`: the quota was deleted meanwhile.
    async fn update_status(
        &self,
        ctx: RequestContext<'_>,
        ns: &str,
        name: &str,
        update: &mut StatusUpdate<'_>,
    ) -> ApiResult<Option<Value>>;
}

/// A [`Lister`] over objects held in memory, for the plugins' unit tests.
#[cfg(test)]
pub(crate) mod memory {
    use std::collections::BTreeMap;

    use super::*;

    /// Objects by (group, kind, namespace, name); cluster-scoped ones with no namespace.
    #[derive(Default)]
    pub(crate) struct Objects(BTreeMap<(String, String, String, String), Arc<Value>>);

    impl Objects {
        /// Adds `obj` as an object of the built-in `group`/`kind`, named by its metadata.
        pub(crate) fn with(mut self, group: &str, kind: &str, obj: Value) -> Self {
            let info = crate::resources::by_kind(group, kind).expect("a served kind");
            let ns = match info.namespaced {
                true => crate::meta::str_at(&obj, "/metadata/namespace").unwrap_or(""),
                false => "",
            };
            let key = (
                group.to_string(),
                kind.to_string(),
                ns.to_string(),
                crate::meta::name(&obj).to_string(),
            );
            self.0.insert(key, Arc::new(obj));
            self
        }
    }

    /// A create of `name` in `ns` by a user, as the registry hands it to admission.
    pub(crate) fn create<'a>(
        info: &'a ResourceInfo,
        ns: &'a str,
        name: &'a str,
    ) -> crate::admission::Attributes<'a> {
        crate::admission::Attributes {
            operation: crate::admission::Operation::Create,
            info,
            namespace: ns,
            name,
            subresource: None,
            old: None,
            user: None,
            dry_run: false,
        }
    }

    fn scoped<'a>(resource: &ResourceInfo, ns: Option<&'a str>) -> Option<&'a str> {
        ns.filter(|_| resource.namespaced)
    }

    #[async_trait::async_trait]
    impl Lister for Objects {
        async fn get(
            &self,
            resource: &ResourceInfo,
            ns: Option<&str>,
            name: &str,
        ) -> ApiResult<Option<Arc<Value>>> {
            let key = (
                resource.group.to_string(),
                resource.kind.to_string(),
                scoped(resource, ns).unwrap_or("").to_string(),
                name.to_string(),
            );
            Ok(self.0.get(&key).cloned())
        }

        async fn list(
            &self,
            resource: &ResourceInfo,
            ns: Option<&str>,
        ) -> ApiResult<Vec<Arc<Value>>> {
            let ns = scoped(resource, ns);
            Ok(self
                .0
                .iter()
                .filter(|((g, k, n, _), _)| {
                    g == resource.group && k == resource.kind && ns.is_none_or(|ns| ns == n)
                })
                .map(|(_, obj)| obj.clone())
                .collect())
        }
    }
}
