//! The registry as admission's [`Lister`] and [`QuotaWriter`]: the one place in admission
//! that names the registry, so the dependency points from admission down to it (the
//! registry knows admission only as its `Admit` trait).

use std::sync::Arc;

use serde_json::Value;

use super::lister::{Lister, QuotaWriter, StatusUpdate};
use crate::error::ApiResult;
use crate::registry::{Registry, RequestContext};
use crate::resources::ResourceInfo;

/// A 404 as "none": plugins decide what a missing object means.
fn found<T>(read: ApiResult<T>) -> ApiResult<Option<T>> {
    match read {
        Ok(obj) => Ok(Some(obj)),
        Err(e) if e.code == 404 => Ok(None),
        Err(e) => Err(e),
    }
}

#[async_trait::async_trait]
impl Lister for Registry {
    async fn get(
        &self,
        resource: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
    ) -> ApiResult<Option<Arc<Value>>> {
        found(self.get_cached(resource, ns, name).await)
    }

    async fn list(&self, resource: &ResourceInfo, ns: Option<&str>) -> ApiResult<Vec<Arc<Value>>> {
        self.cached_objects(resource, ns).await
    }
}

#[async_trait::async_trait]
impl QuotaWriter for Registry {
    async fn quota(&self, ns: &str, name: &str) -> ApiResult<Option<Value>> {
        let info = crate::resources::by_kind("", "ResourceQuota")?;
        found(Registry::get(self, info, Some(ns), name).await)
    }

    async fn update_status(
        &self,
        ctx: RequestContext<'_>,
        ns: &str,
        name: &str,
        update: &mut StatusUpdate<'_>,
    ) -> ApiResult<Option<Value>> {
        let info = crate::resources::by_kind("", "ResourceQuota")?;
        found(
            self.update_with(ctx, info, Some(ns), name, Some("status"), update)
                .await,
        )
    }
}
