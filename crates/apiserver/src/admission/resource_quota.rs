//! ResourceQuota (validating, last in the chain as upstream orders it): a namespaced create
//! (or an update that can grow usage, as a Service's type or a claim's size) is measured
//! with `common::quota`; if every ResourceQuota of the namespace covering it still fits,
//! each is charged by writing its `status.used` (compare-and-swap on its resourceVersion)
//! before the object is stored, so concurrent creates can never overshoot a quota, even
//! across API servers. What is charged and then not stored (a failed write) is given back
//! by the resource quota controller's recalculation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use common::quota::{self, Evaluator, Operation as QuotaOp, ResourceList};
use serde_json::Value;

use super::{Attributes, Operation};
use crate::error::{ApiError, ApiResult};
use crate::registry::{Admit, Registry, RequestContext};
use crate::resources::ResourceInfo;

/// Per-namespace charging locks: writes of one namespace charge one at a time here, so they
/// do not all race on the same quota's resourceVersion (upstream batches per namespace).
/// Correctness does not depend on it: the compare-and-swap does.
type Locks = Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>;

fn locks() -> &'static Locks {
    static LOCKS: OnceLock<Locks> = OnceLock::new();
    LOCKS.get_or_init(Locks::default)
}

/// The ResourceQuota resource (from the served table, looked up once).
fn quota_info() -> ApiResult<&'static ResourceInfo> {
    static INFO: OnceLock<Option<ResourceInfo>> = OnceLock::new();
    INFO.get_or_init(|| {
        crate::resources::all()
            .into_iter()
            .find(|r| r.group.is_empty() && r.kind == "ResourceQuota")
    })
    .as_ref()
    .ok_or_else(|| ApiError::internal("resourcequotas are not served"))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Kubernetes' admission `NewForbidden` message: `pods "p" is forbidden: <why>`.
fn forbidden(a: &Attributes<'_>, why: &str) -> ApiError {
    let resource = a.info.qualified();
    if a.name.is_empty() {
        ApiError::forbidden(format!("{resource} is forbidden: {why}"))
    } else {
        ApiError::forbidden(format!("{resource} \"{}\" is forbidden: {why}", a.name))
    }
}

/// Checks the write against the namespace's quotas and charges them. A charge is a write of
/// the quota's status through `admission`, as the request's user (upstream's quota accessor
/// writes through the API too); admission returns at once here for a subresource.
pub async fn validate(
    registry: &Registry,
    admission: &dyn Admit,
    a: &Attributes<'_>,
    obj: &Value,
) -> ApiResult<()> {
    // Subresources (status, binding, scale) and deletes never grow usage; cluster-scoped
    // objects have no quota.
    if a.subresource.is_some() || a.namespace.is_empty() {
        return Ok(());
    }
    let op = match a.operation {
        Operation::Create => QuotaOp::Create,
        Operation::Update => QuotaOp::Update,
        Operation::Delete => return Ok(()),
    };
    let Some(ev) = Evaluator::for_resource(a.info.group, a.info.plural) else {
        return Ok(());
    };
    if !ev.handles(op) {
        return Ok(());
    }
    let info = quota_info()?;
    // Which quotas exist comes from the watch cache (cheap, and a namespace without quotas
    // is the common case); their usage is then read from the store.
    let cached = registry.cached_objects(info, Some(a.namespace)).await?;
    // Only quotas that cover the object (by their limits and scopes, which rarely change)
    // are read again and charged; other writes of the namespace pass without waiting.
    let names: Vec<String> = cached
        .iter()
        .filter(|q| ev.matches(q, obj))
        .map(|q| crate::meta::name(q).to_string())
        .collect();
    if names.is_empty() {
        return Ok(());
    }

    let lock = {
        let mut map = locks().lock().unwrap_or_else(|e| e.into_inner());
        map.entry(a.namespace.to_string()).or_default().clone()
    };
    let guard = lock.lock().await;
    let ctx = RequestContext::new(a.user, admission);
    let result = check_and_charge(registry, ctx, a, op, &ev, &names, obj).await;
    drop(guard);
    {
        let mut map = locks().lock().unwrap_or_else(|e| e.into_inner());
        // Only the map's reference and ours left: nobody waits on this namespace.
        if Arc::strong_count(&lock) <= 2 {
            map.remove(a.namespace);
        }
    }
    result
}

async fn check_and_charge(
    registry: &Registry,
    ctx: RequestContext<'_>,
    a: &Attributes<'_>,
    op: QuotaOp,
    ev: &Evaluator,
    names: &[String],
    obj: &Value,
) -> ApiResult<()> {
    let info = quota_info()?;
    let mut quotas = Vec::with_capacity(names.len());
    for name in names {
        match registry.get(info, Some(a.namespace), name).await {
            Ok(q) => quotas.push(q),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let now = now();
    let charges =
        quota::check_request(&quotas, ev, op, obj, a.old, now).map_err(|why| forbidden(a, &why))?;
    if a.dry_run || charges.is_empty() {
        return Ok(());
    }
    let mut charged: Vec<(String, ResourceList)> = Vec::new();
    for (i, requested) in charges {
        let name = crate::meta::name(&quotas[i]).to_string();
        match charge(registry, ctx, info, a, &name, &requested).await {
            Ok(()) => charged.push((name, requested)),
            Err(e) => {
                refund(registry, ctx, info, a.namespace, &charged).await;
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Adds `requested` to the quota's `status.used` if it still fits, retrying while others
/// change the quota first.
async fn charge(
    registry: &Registry,
    ctx: RequestContext<'_>,
    info: &ResourceInfo,
    a: &Attributes<'_>,
    name: &str,
    requested: &ResourceList,
) -> ApiResult<()> {
    let result = registry
        .update_with(ctx, info, Some(a.namespace), name, Some("status"), |cur| {
            let used = quota::charge(cur, requested, true).map_err(|why| forbidden(a, &why))?;
            Ok(with_used(cur, &used))
        })
        .await;
    match result {
        Ok(_) => Ok(()),
        // Deleted meanwhile: nothing left to charge.
        Err(e) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Gives back what was charged to earlier quotas when a later one refused.
async fn refund(
    registry: &Registry,
    ctx: RequestContext<'_>,
    info: &ResourceInfo,
    namespace: &str,
    charged: &[(String, ResourceList)],
) {
    for (name, requested) in charged {
        let result = registry
            .update_with(ctx, info, Some(namespace), name, Some("status"), |cur| {
                let used = quota::parse_list(cur.pointer("/status/used"));
                Ok(with_used(
                    cur,
                    &quota::subtract_non_negative(&used, requested),
                ))
            })
            .await;
        if let Err(e) = result {
            // The controller's recalculation corrects it.
            tracing::warn!(namespace, quota = %name, error = %e.message, "could not give back a quota charge");
        }
    }
}

fn with_used(quota: &Value, used: &ResourceList) -> Value {
    let mut q = quota.clone();
    if let Some(status) = q.get_mut("status").and_then(Value::as_object_mut) {
        status.insert("used".into(), quota::to_json(used));
    }
    q
}
