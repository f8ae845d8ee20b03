//! Update and patch (upstream's `Store.Update` over `GuaranteedUpdate`): a read-modify-write
//! retried on conflicts, what each subresource may change, and the admission the request
//! brings run on the new object.

use serde_json::{Value, json};

use super::codec::{decode_stale, encode, seal};
use super::delete::has_finalizers;
use super::{
    Attributes, Operation, Registry, RequestContext, UPDATE_RETRIES, WriteOptions,
    drop_empty_metadata,
};
use crate::apply::Shape;
use crate::error::{ApiError, ApiResult};
use crate::meta;
use crate::resources::ResourceInfo;

/// How a patch body is to be applied.
#[derive(Clone, Copy, Debug)]
pub enum PatchKind {
    Json,
    Merge,
    /// Lists merged by the tags of this Go type (`apps/v1.Deployment`), else by field names.
    Strategic(Option<&'static str>),
    /// A server-side apply's configuration merged in, as the kind's shape says.
    Apply(Shape<'static>),
}

/// A patch request's body and type.
#[derive(Clone, Debug)]
pub struct Patch {
    pub kind: PatchKind,
    pub body: Value,
}

impl Patch {
    /// Applies the patch to `doc`.
    pub fn apply_to(&self, doc: &mut Value) -> ApiResult<()> {
        match self.kind {
            PatchKind::Json => {
                let p: json_patch::Patch = serde_json::from_value(self.body.clone())
                    .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
                json_patch::patch(doc, &p).map_err(|e| {
                    ApiError::new(
                        422,
                        "Invalid",
                        format!("the JSON patch could not be applied: {e}"),
                    )
                })
            }
            PatchKind::Merge => {
                json_patch::merge(doc, &self.body);
                Ok(())
            }
            PatchKind::Strategic(message) => {
                crate::patch::strategic_merge_typed(doc, &self.body, message)
            }
            PatchKind::Apply(shape) => crate::apply::merge(doc, &self.body, shape),
        }
    }
}

/// Whether anything but metadata and status differs: what bumps `metadata.generation`.
fn spec_changed(new: &Value, old: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("metadata");
            m.remove("status");
        }
        v
    };
    strip(new) != strip(old)
}

impl Registry {
    /// Read-modify-write of one object, retried while other writers win the race.
    /// `f` gets the current object and returns the new one (or an error to stop).
    pub async fn update_with<F>(
        &self,
        ctx: RequestContext<'_>,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        subresource: Option<&str>,
        mut f: F,
    ) -> ApiResult<Value>
    where
        F: FnMut(&Value) -> ApiResult<Value> + Send,
    {
        let key = Self::key(info, ns, name);
        let tf = self.transformer(info);
        let hooks = crate::kinds::of(info).hooks();
        let mut current = self
            .store
            .get(&key)
            .await
            .map_err(|e| ApiError::from_store(info, name, e))?
            .ok_or_else(|| ApiError::not_found(info, name))?;
        for _ in 0..UPDATE_RETRIES {
            let (old, stale) = decode_stale(tf.as_deref(), info, &current)?;
            let mut new = f(&old)?;
            drop_empty_metadata(&mut new);
            crate::zero_fields::fill(info, &mut new);
            meta::set_resource_version(&mut new, current.mod_revision);
            // Unchanged is a no-op, unless it was stored with an older key: rewriting every
            // object after a key rotation re-encrypts it, as upstream.
            if new == old && !stale {
                return Ok(new);
            }
            // Upstream's update transformers (mutating admission) and update validation.
            let attrs = Attributes {
                operation: Operation::Update,
                info,
                namespace: ns.unwrap_or(""),
                name,
                subresource,
                old: Some(&old),
                user: ctx.user,
                dry_run: ctx.dry_run,
            };
            ctx.admission.mutate(&attrs, &mut new).await?;
            ctx.admission.validate(&attrs, &new).await?;
            if ctx.dry_run {
                return Ok(new);
            }
            hooks.begin_update(&self.store, &mut new, &old).await?;
            // An object whose deletion waits only on finalizers goes once they are gone.
            let finalizers_done = new.pointer("/metadata/deletionTimestamp").is_some()
                && !has_finalizers(hooks, &new)
                && new
                    .pointer("/metadata/deletionGracePeriodSeconds")
                    .and_then(Value::as_i64)
                    == Some(0);
            let result = if finalizers_done {
                self.store
                    .delete(&key, Some(current.mod_revision))
                    .await
                    .map(|(rev, _)| rev)
            } else {
                self.store
                    .update(
                        &key,
                        seal(tf.as_deref(), &key, encode(info, &new)?)?,
                        current.mod_revision,
                        self.ttl_for(info),
                    )
                    .await
            };
            match result {
                Ok(rev) => {
                    hooks.finish_update(&self.store, &new, &old, true).await;
                    if finalizers_done {
                        // Gone as by a delete: what it held (a Service's IPs and node
                        // ports) is given back.
                        hooks.after_delete(&self.store, &new).await;
                    }
                    meta::set_resource_version(&mut new, rev);
                    return Ok(new);
                }
                Err(e) => {
                    // Give back what this attempt claimed (a Service's node ports).
                    hooks.finish_update(&self.store, &new, &old, false).await;
                    match e {
                        store::Error::Conflict { current: c, .. } => current = *c,
                        e => return Err(ApiError::from_store(info, name, e)),
                    }
                }
            }
        }
        Err(ApiError::conflict(info, name))
    }

    /// PUT: replaces the object (or, for `subresource = status`, only its status).
    pub async fn update(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        mut obj: Value,
        subresource: Option<&str>,
        opts: WriteOptions<'_>,
    ) -> ApiResult<Value> {
        Self::check_type(info, &mut obj)?;
        Self::check_object_namespace(info, ns, &mut obj)?;
        match meta::name(&obj) {
            "" => {
                meta::metadata_mut(&mut obj).insert("name".into(), json!(name));
            }
            n if n == name => {}
            _ => {
                return Err(ApiError::bad_request(
                    "the name of the object does not match the name on the URL",
                ));
            }
        }
        let wanted_rv = meta::str_at(&obj, "/metadata/resourceVersion")
            .filter(|r| !r.is_empty())
            .map(str::to_string);
        let info2 = info.clone();
        let sub = subresource.map(str::to_string);
        self.update_with(opts.ctx, info, ns, name, subresource, move |old| {
            if let Some(rv) = &wanted_rv
                && meta::str_at(old, "/metadata/resourceVersion") != Some(rv.as_str())
            {
                return Err(ApiError::conflict(&info2, name));
            }
            Self::merge_update(&info2, old, obj.clone(), sub.as_deref(), &opts)
        })
        .await
    }

    /// Builds the stored object for an update: what the client may change given the
    /// subresource, the metadata the server owns, generation, and validation.
    fn merge_update(
        info: &ResourceInfo,
        old: &Value,
        new: Value,
        sub: Option<&str>,
        opts: &WriteOptions<'_>,
    ) -> ApiResult<Value> {
        let strategy = crate::kinds::of(info).strategy();
        // Stored objects hold no unknown fields, so any here came with this request.
        let mut new = crate::typed::decode(info, new, opts.validation)?;
        let name = meta::name(old).to_string();
        let record = |new: &mut Value| {
            if let Some(manager) = &opts.field_manager {
                let shape = Shape::of_kind(info);
                crate::apply::record_update(
                    Some(old),
                    new,
                    manager,
                    &info.api_version(),
                    sub,
                    shape,
                );
            }
        };
        if sub == Some("status") {
            // Only status changes through /status.
            let status = new.get("status").cloned().unwrap_or(Value::Null);
            new = old.clone();
            new["status"] = status;
            record(&mut new);
            return Ok(new);
        }
        // A kind's own subresources (`approval`, `finalize`, `ephemeralcontainers`) change
        // what their strategy says and nothing else.
        if let Some(sub) = sub
            && let Some(updated) = strategy.update_subresource(sub, &new, old)
        {
            new = updated.map_err(|causes| ApiError::invalid(info, &name, causes))?;
            record(&mut new);
            return Ok(new);
        }
        // Fields the server owns are kept from the stored object.
        let old_meta = old.get("metadata").cloned().unwrap_or_default();
        let m = meta::metadata_mut(&mut new);
        for k in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            match old_meta.get(k) {
                Some(v) => {
                    m.insert(k.into(), v.clone());
                }
                None => {
                    m.remove(k);
                }
            }
        }
        if let Some(ns) = old_meta.get("namespace") {
            m.insert("namespace".into(), ns.clone());
        }
        if info.has_subresource("status") {
            match old.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(o) = new.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
        }
        strategy.prepare_for_update(&mut new, old);
        strategy.defaults(&mut new);
        if strategy.tracks_generation() && spec_changed(&new, old) {
            let g = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            meta::metadata_mut(&mut new).insert("generation".into(), json!(g + 1));
        }
        let mut causes = strategy.validate(&new);
        causes.extend(strategy.validate_update(&new, old));
        causes.extend(strategy.validate_rules(&new, Some(old)));
        if !causes.is_empty() {
            return Err(ApiError::invalid(info, &name, causes));
        }
        record(&mut new);
        Ok(new)
    }

    pub async fn patch(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        patch: Patch,
        subresource: Option<&str>,
        opts: WriteOptions<'_>,
    ) -> ApiResult<Value> {
        let info2 = info.clone();
        let sub = subresource.map(str::to_string);
        self.update_with(opts.ctx, info, ns, name, subresource, move |old| {
            let mut doc = old.clone();
            patch.apply_to(&mut doc)?;
            // A patch may carry a resourceVersion precondition.
            if let Some(rv) = patch
                .body
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                && meta::str_at(old, "/metadata/resourceVersion") != Some(rv)
            {
                return Err(ApiError::conflict(&info2, meta::name(old)));
            }
            if meta::name(&doc) != meta::name(old) {
                return Err(ApiError::bad_request(
                    "the name of a patched object cannot change",
                ));
            }
            Self::merge_update(&info2, old, doc, sub.as_deref(), &opts)
        })
        .await
    }

    /// A strategic patch of the main resource, then `finish` on the result before it is
    /// written (server-side apply records its field manager there).
    pub async fn patch_then<F>(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        patch: Patch,
        opts: WriteOptions<'_>,
        finish: F,
    ) -> ApiResult<Value>
    where
        F: Fn(&mut Value) + Send,
    {
        let info2 = info.clone();
        self.update_with(opts.ctx, info, ns, name, None, move |old| {
            let mut doc = old.clone();
            patch.apply_to(&mut doc)?;
            finish(&mut doc);
            Self::merge_update(&info2, old, doc, None, &opts)
        })
        .await
    }
}
