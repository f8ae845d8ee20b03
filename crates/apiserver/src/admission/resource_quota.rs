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

use super::{Attributes, Lister, Operation, QuotaWriter};
use crate::error::{ApiError, ApiResult};
use crate::registry::{Admit, RequestContext};

/// Per-namespace charging locks: writes of one namespace charge one at a time here, so they
/// do not all race on the same quota's resourceVersion (upstream batches per namespace).
/// Correctness does not depend on it: the compare-and-swap does.
type Locks = Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>;

fn locks() -> &'static Locks {
    static LOCKS: OnceLock<Locks> = OnceLock::new();
    LOCKS.get_or_init(Locks::default)
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

/// Checks the write against the namespace's quotas (which exist: `lister`; their usage:
/// `quotas`) and charges them. A charge is a write of the quota's status through
/// `admission`, as the request's user (upstream's quota accessor writes through the API
/// too); admission returns at once here for a subresource.
pub async fn validate(
    lister: &dyn Lister,
    quotas: &dyn QuotaWriter,
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
    let info = crate::resources::by_kind("", "ResourceQuota")?;
    // Which quotas exist comes from the watch cache (cheap, and a namespace without quotas
    // is the common case); their usage is then read from the store.
    let cached = lister.list(info, Some(a.namespace)).await?;
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
    let result = check_and_charge(quotas, ctx, a, op, &ev, &names, obj).await;
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
    quotas: &dyn QuotaWriter,
    ctx: RequestContext<'_>,
    a: &Attributes<'_>,
    op: QuotaOp,
    ev: &Evaluator,
    names: &[String],
    obj: &Value,
) -> ApiResult<()> {
    let mut current = Vec::with_capacity(names.len());
    for name in names {
        // Deleted since the cache listed it: nothing to charge.
        if let Some(q) = quotas.quota(a.namespace, name).await? {
            current.push(q);
        }
    }
    let now = now();
    let charges = quota::check_request(&current, ev, op, obj, a.old, now)
        .map_err(|why| forbidden(a, &why))?;
    if a.dry_run || charges.is_empty() {
        return Ok(());
    }
    let mut charged: Vec<(String, ResourceList)> = Vec::new();
    for (i, requested) in charges {
        let name = crate::meta::name(&current[i]).to_string();
        match charge(quotas, ctx, a, &name, &requested).await {
            Ok(()) => charged.push((name, requested)),
            Err(e) => {
                refund(quotas, ctx, a.namespace, &charged).await;
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Adds `requested` to the quota's `status.used` if it still fits, retrying while others
/// change the quota first.
async fn charge(
    quotas: &dyn QuotaWriter,
    ctx: RequestContext<'_>,
    a: &Attributes<'_>,
    name: &str,
    requested: &ResourceList,
) -> ApiResult<()> {
    let mut add = |cur: &Value| {
        let used = quota::charge(cur, requested, true).map_err(|why| forbidden(a, &why))?;
        Ok(with_used(cur, &used))
    };
    // `None`: deleted meanwhile, nothing left to charge.
    quotas
        .update_status(ctx, a.namespace, name, &mut add)
        .await
        .map(drop)
}

/// Gives back what was charged to earlier quotas when a later one refused.
async fn refund(
    quotas: &dyn QuotaWriter,
    ctx: RequestContext<'_>,
    namespace: &str,
    charged: &[(String, ResourceList)],
) {
    for (name, requested) in charged {
        let mut give_back = |cur: &Value| {
            let used = quota::parse_list(cur.pointer("/status/used"));
            Ok(with_used(
                cur,
                &quota::subtract_non_negative(&used, requested),
            ))
        };
        let result = quotas
            .update_status(ctx, namespace, name, &mut give_back)
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::admission::lister::StatusUpdate;
    use crate::admission::lister::memory::{Objects, create};

    /// One quota, as stored: what charges read and write.
    struct Stored(Mutex<Value>);

    #[async_trait::async_trait]
    impl QuotaWriter for Stored {
        async fn quota(&self, ns: &str, name: &str) -> ApiResult<Option<Value>> {
            let q = self.0.lock().unwrap();
            let ours = crate::meta::namespace(&q) == ns && crate::meta::name(&q) == name;
            Ok(ours.then(|| q.clone()))
        }

        async fn update_status(
            &self,
            _ctx: RequestContext<'_>,
            ns: &str,
            name: &str,
            update: &mut StatusUpdate<'_>,
        ) -> ApiResult<Option<Value>> {
            let mut q = self.0.lock().unwrap();
            if crate::meta::namespace(&q) != ns || crate::meta::name(&q) != name {
                return Ok(None);
            }
            *q = update(&q)?;
            Ok(Some(q.clone()))
        }
    }

    /// The charges' own writes pass no admission here.
    struct Nothing;

    #[async_trait::async_trait]
    impl Admit for Nothing {
        async fn mutate(&self, _: &Attributes<'_>, _: &mut Value) -> ApiResult<()> {
            Ok(())
        }
        async fn validate(&self, _: &Attributes<'_>, _: &Value) -> ApiResult<()> {
            Ok(())
        }
        async fn validate_delete(&self, _: &Attributes<'_>) -> ApiResult<()> {
            Ok(())
        }
    }

    /// The lister says which quotas cover the pod (its copy stays at used 0); the writer's
    /// stored usage is what is charged and checked, so the second pod is refused.
    #[tokio::test]
    async fn charges_the_stored_quota_through_the_writer() {
        let q = json!({"metadata": {"name": "q", "namespace": "team"},
            "spec": {"hard": {"pods": "1"}},
            "status": {"hard": {"pods": "1"}, "used": {"pods": "0"}}});
        let lister = Objects::default().with("", "ResourceQuota", q.clone());
        let stored = Stored(Mutex::new(q));
        let info = crate::resources::by_kind("", "Pod").unwrap();
        let pod = |name: &str| {
            json!({"metadata": {"name": name, "namespace": "team"},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
        };

        let dry = Attributes {
            dry_run: true,
            ..create(info, "team", "p0")
        };
        validate(&lister, &stored, &Nothing, &dry, &pod("p0"))
            .await
            .unwrap();
        assert_eq!(stored.0.lock().unwrap()["status"]["used"]["pods"], "0");

        validate(
            &lister,
            &stored,
            &Nothing,
            &create(info, "team", "p1"),
            &pod("p1"),
        )
        .await
        .unwrap();
        assert_eq!(stored.0.lock().unwrap()["status"]["used"]["pods"], "1");

        let e = validate(
            &lister,
            &stored,
            &Nothing,
            &create(info, "team", "p2"),
            &pod("p2"),
        )
        .await
        .unwrap_err();
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "pods \"p2\" is forbidden: exceeded quota: q, requested: pods=1, used: pods=1, limited: pods=1"
        );
        assert_eq!(stored.0.lock().unwrap()["status"]["used"]["pods"], "1");

        // Another namespace's pods are not this quota's.
        validate(
            &lister,
            &stored,
            &Nothing,
            &create(info, "other", "p3"),
            &pod("p3"),
        )
        .await
        .unwrap();
        assert_eq!(stored.0.lock().unwrap()["status"]["used"]["pods"], "1");
    }
}
