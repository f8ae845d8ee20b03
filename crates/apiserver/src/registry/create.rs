//! Create (upstream's `Store.Create` and `rest.BeforeCreate`): type and namespace checks,
//! server-owned metadata, the kind's defaults and validation, and the admission the request
//! brings.

use serde_json::{Value, json};

use super::codec::{encode, seal};
use super::{Attributes, Operation, Registry, WriteOptions, drop_empty_metadata};
use crate::error::{ApiError, ApiResult, Cause};
use crate::meta;
use crate::resources::ResourceInfo;
use crate::strategy;

impl Registry {
    /// Checks a body's apiVersion/kind and fills them in when absent.
    pub(super) fn check_type(info: &ResourceInfo, obj: &mut Value) -> ApiResult<()> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        let api_version = info.api_version();
        match obj.get("apiVersion").and_then(Value::as_str) {
            None | Some("") => obj["apiVersion"] = json!(api_version),
            Some(v) if v == api_version => {}
            Some(v) => {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({v}) does not match the expected API version ({api_version})"
                )));
            }
        }
        match obj.get("kind").and_then(Value::as_str) {
            None | Some("") => obj["kind"] = json!(info.kind),
            Some(k) if k == info.kind => {}
            Some(k) => {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({k}) does not match the expected kind ({})",
                    info.kind
                )));
            }
        }
        Ok(())
    }

    /// Sets or checks the object's namespace against the request's.
    pub(super) fn check_object_namespace(
        info: &ResourceInfo,
        ns: Option<&str>,
        obj: &mut Value,
    ) -> ApiResult<()> {
        let m = meta::metadata_mut(obj);
        if !info.namespaced {
            m.remove("namespace");
            return Ok(());
        }
        let ns = ns.unwrap_or("default");
        match m.get("namespace").and_then(Value::as_str) {
            None | Some("") => {
                m.insert("namespace".into(), json!(ns));
            }
            Some(n) if n == ns => {}
            Some(_) => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        }
        Ok(())
    }

    /// POST: a new object, through the kind's strategy and the request's admission (mutating
    /// after defaulting, validating after the kind's validation), as upstream's `Store.Create`
    /// with its `BeforeCreate` and create-validation callback.
    pub async fn create(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        mut obj: Value,
        opts: WriteOptions<'_>,
    ) -> ApiResult<Value> {
        let ctx = opts.ctx;
        let kind = crate::kinds::of(info);
        let strategy = kind.strategy();
        Self::check_type(info, &mut obj)?;
        Self::check_object_namespace(info, ns, &mut obj)?;
        let mut obj = crate::typed::decode(info, obj, opts.validation)?;
        let m = meta::metadata_mut(&mut obj);
        let name = m
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let name = match (
            name.is_empty(),
            m.get("generateName").and_then(Value::as_str),
        ) {
            (true, Some(prefix)) if !prefix.is_empty() => {
                format!("{prefix}{}", meta::random_suffix())
            }
            _ => name,
        };
        m.insert("name".into(), json!(name));
        m.insert("uid".into(), json!(meta::new_uid().to_string()));
        m.insert("creationTimestamp".into(), json!(meta::now_rfc3339()));
        for k in [
            "resourceVersion",
            "selfLink",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ] {
            m.remove(k);
        }
        if strategy.tracks_generation() {
            m.insert("generation".into(), json!(1));
        } else {
            m.remove("generation");
        }
        strategy.defaults(&mut obj);
        strategy.prepare_for_create(&mut obj, ctx.user);
        let ns_owned = meta::namespace(&obj).to_string();
        let attrs = Attributes {
            operation: Operation::Create,
            info,
            namespace: &ns_owned,
            name: &name,
            subresource: None,
            old: None,
            user: ctx.user,
            dry_run: ctx.dry_run,
        };
        ctx.admission.mutate(&attrs, &mut obj).await?;
        if let Some(manager) = &opts.field_manager {
            let shape = crate::apply::Shape::of_kind(info);
            crate::apply::record_update(None, &mut obj, manager, &info.api_version(), None, shape);
        }
        let mut causes: Vec<Cause> = strategy::validate_name(strategy, &name)
            .into_iter()
            .collect();
        causes.extend(strategy.validate(&obj));
        causes.extend(strategy.validate_rules(&obj, None));
        if !causes.is_empty() {
            return Err(ApiError::invalid(info, &name, causes));
        }
        ctx.admission.validate(&attrs, &obj).await?;
        crate::zero_fields::fill(info, &mut obj);
        if ctx.dry_run {
            return Ok(obj);
        }
        let hooks = kind.hooks();
        hooks.begin_create(&self.store, &mut obj).await?;
        drop_empty_metadata(&mut obj);
        let key = Self::key(info, Some(meta::namespace(&obj)), &name);
        let rev = match self
            .store
            .create(
                &key,
                seal(self.transformer(info).as_deref(), &key, encode(info, &obj)?)?,
                self.ttl_for(info),
            )
            .await
        {
            Ok(rev) => {
                hooks.finish_create(&self.store, &obj, true).await;
                rev
            }
            Err(e) => {
                hooks.finish_create(&self.store, &obj, false).await;
                return Err(ApiError::from_store(info, &name, e));
            }
        };
        meta::set_resource_version(&mut obj, rev);
        Ok(obj)
    }
}
