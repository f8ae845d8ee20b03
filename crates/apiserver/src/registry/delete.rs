//! Delete (upstream's `Store.Delete`): preconditions, the delete validation the request
//! brings, graceful deletion (finalizers, the kind's grace period) and the garbage
//! collector's propagation finalizers.

use serde_json::{Value, json};

use super::codec::{decode, encode, seal};
use super::hooks::StoreHooks;
use super::{Attributes, Operation, Registry, RequestContext, UPDATE_RETRIES};
use crate::error::{ApiError, ApiResult, Cause};
use crate::meta;
use crate::resources::ResourceInfo;

/// A delete's options (the parts of `metav1.DeleteOptions` the registry acts on).
#[derive(Default, Debug)]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    /// `propagationPolicy`: Orphan, Background or Foreground (the garbage collector acts on
    /// the finalizers this sets).
    pub propagation: Option<String>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
}

/// Whether something still holds the object's deletion: `metadata.finalizers`, or the
/// kind's own (a namespace's `spec.finalizers`, emptied by namespace finalization).
pub(super) fn has_finalizers(hooks: &dyn StoreHooks, obj: &Value) -> bool {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty())
        || hooks.holds_deletion(obj)
}

/// The garbage collector's finalizers for a delete's propagation policy: `orphan` (its
/// dependents lose their owner reference), `foregroundDeletion` (dependents go first), or
/// neither (Background: the object goes now, dependents after). Without a policy, the kind's
/// default applies (Background unless its hooks say otherwise).
fn with_propagation_finalizers(
    info: &ResourceInfo,
    hooks: &dyn StoreHooks,
    mut obj: Value,
    policy: Option<&str>,
) -> ApiResult<Value> {
    const ORPHAN: &str = "orphan";
    const FOREGROUND: &str = "foregroundDeletion";
    let policy = match policy {
        Some(p) => p,
        None => match hooks.default_gc_policy() {
            Some(p) => p,
            None => return Ok(obj),
        },
    };
    let (add, remove): (&[&str], &[&str]) = match policy {
        "Orphan" => (&[ORPHAN], &[FOREGROUND]),
        "Foreground" => (&[FOREGROUND], &[ORPHAN]),
        "Background" => (&[], &[ORPHAN, FOREGROUND]),
        other => {
            return Err(ApiError::invalid(
                info,
                meta::name(&obj),
                vec![Cause {
                    reason: "FieldValueNotSupported",
                    field: "propagationPolicy".into(),
                    message: format!(
                        "Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
                    ),
                }],
            ));
        }
    };
    let m = meta::metadata_mut(&mut obj);
    let mut finalizers: Vec<Value> = m
        .get("finalizers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    finalizers.retain(|f| !f.as_str().is_some_and(|f| remove.contains(&f)));
    for f in add {
        if !finalizers.iter().any(|x| x.as_str() == Some(f)) {
            finalizers.push(json!(f));
        }
    }
    if finalizers.is_empty() {
        m.remove("finalizers");
    } else {
        m.insert("finalizers".into(), Value::Array(finalizers));
    }
    Ok(obj)
}

impl Registry {
    /// DELETE. Objects with finalizers, and pods bound to a node, are marked for deletion
    /// (`deletionTimestamp`) instead of removed; returns the object as it now is and whether it is gone.
    pub async fn delete(
        &self,
        ctx: RequestContext<'_>,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<(Value, bool)> {
        let dry_run = ctx.dry_run;
        let key = Self::key(info, ns, name);
        let tf = self.transformer(info);
        let hooks = crate::kinds::of(info).hooks();
        for _ in 0..UPDATE_RETRIES {
            let kv = self
                .store
                .get(&key)
                .await
                .map_err(|e| ApiError::from_store(info, name, e))?
                .ok_or_else(|| ApiError::not_found(info, name))?;
            let obj = decode(tf.as_deref(), info, &kv)?;
            if let Some(uid) = &opts.precondition_uid
                && meta::str_at(&obj, "/metadata/uid") != Some(uid.as_str())
            {
                return Err(ApiError::conflict(info, name));
            }
            if let Some(rv) = &opts.precondition_rv
                && meta::str_at(&obj, "/metadata/resourceVersion") != Some(rv.as_str())
            {
                return Err(ApiError::conflict(info, name));
            }
            // Upstream's delete validation: validating webhooks see the object deleted.
            let attrs = Attributes {
                operation: Operation::Delete,
                info,
                namespace: ns.unwrap_or(""),
                name,
                subresource: None,
                old: Some(&obj),
                user: ctx.user,
                dry_run,
            };
            ctx.admission.validate_delete(&attrs).await?;
            let grace = hooks.grace_period(&obj, opts.grace_period_seconds);
            let obj = with_propagation_finalizers(info, hooks, obj, opts.propagation.as_deref())?;
            if has_finalizers(hooks, &obj) || grace > 0 {
                // Graceful: mark, and let the finalizer owners (or the kubelet) finish.
                let mut marked = obj.clone();
                let m = meta::metadata_mut(&mut marked);
                let already = m.get("deletionTimestamp").is_some();
                let when = time::OffsetDateTime::now_utc() + time::Duration::seconds(grace);
                if !already
                    || m.get("deletionGracePeriodSeconds")
                        .and_then(Value::as_i64)
                        .is_some_and(|g| grace < g)
                {
                    m.insert(
                        "deletionTimestamp".into(),
                        json!(crate::meta::format_time(when)),
                    );
                    m.insert("deletionGracePeriodSeconds".into(), json!(grace));
                }
                hooks.mark_deleting(&mut marked);
                if marked == obj || dry_run {
                    return Ok((marked, false));
                }
                match self
                    .store
                    .update(
                        &key,
                        seal(tf.as_deref(), &key, encode(info, &marked)?)?,
                        kv.mod_revision,
                        self.ttl_for(info),
                    )
                    .await
                {
                    Ok(rev) => {
                        meta::set_resource_version(&mut marked, rev);
                        return Ok((marked, false));
                    }
                    Err(store::Error::Conflict { .. }) => continue,
                    Err(e) => return Err(ApiError::from_store(info, name, e)),
                }
            }
            if dry_run {
                return Ok((obj, true));
            }
            match self.store.delete(&key, Some(kv.mod_revision)).await {
                Ok((rev, _)) => {
                    hooks.after_delete(&self.store, &obj).await;
                    let mut gone = obj;
                    meta::set_resource_version(&mut gone, rev);
                    return Ok((gone, true));
                }
                Err(store::Error::Conflict { .. }) => continue,
                Err(e) => return Err(ApiError::from_store(info, name, e)),
            }
        }
        Err(ApiError::conflict(info, name))
    }
}
