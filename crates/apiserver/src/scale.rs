//! The `scale` subresource (`autoscaling/v1` Scale) of Deployments, ReplicaSets,
//! StatefulSets, ReplicationControllers and custom kinds that have one: the replicas seen
//! and set through a Scale, at the paths the kind's registration gives ([`ScalePaths`]).

use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::registry::{Patch, Registry, RequestContext};
use crate::resources::ResourceInfo;

/// Where a kind keeps what its Scale shows (JSON pointers).
#[derive(Clone, Debug)]
pub struct ScalePaths {
    pub spec_replicas: String,
    pub status_replicas: String,
    pub selector: ScaleSelector,
}

/// Where a Scale's `status.selector` comes from.
#[derive(Clone, Debug)]
pub enum ScaleSelector {
    /// A LabelSelector object, written out as a string (the built-in workloads').
    LabelSelector(String),
    /// A string already in selector syntax (a CRD's `labelSelectorPath`), if any.
    Text(Option<String>),
}

impl Default for ScalePaths {
    fn default() -> Self {
        ScalePaths {
            spec_replicas: "/spec/replicas".into(),
            status_replicas: "/status/replicas".into(),
            selector: ScaleSelector::LabelSelector("/spec/selector".into()),
        }
    }
}

/// Sets `value` at the JSON pointer `ptr`, making the objects on the way.
fn set_at(obj: &mut Value, ptr: &str, value: Value) {
    let mut at = obj;
    for step in ptr.split('/').skip(1) {
        if !at.is_object() {
            *at = json!({});
        }
        at = &mut at[step];
    }
    *at = value;
}

pub fn to_scale(info: &ResourceInfo, obj: &Value) -> Value {
    let paths = crate::kinds::of(info).scale();
    let m = &obj["metadata"];
    let mut status = json!({
        "replicas": obj.pointer(&paths.status_replicas).cloned().unwrap_or(json!(0)),
    });
    match &paths.selector {
        ScaleSelector::LabelSelector(ptr) => {
            status["selector"] = json!(crate::selector::selector_string(obj.pointer(ptr)));
        }
        ScaleSelector::Text(Some(ptr)) => {
            if let Some(s) = obj.pointer(ptr) {
                status["selector"] = s.clone();
            }
        }
        ScaleSelector::Text(None) => {}
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
            "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"],
        },
        "spec": {"replicas": obj.pointer(&paths.spec_replicas).cloned().unwrap_or(json!(0))},
        "status": status,
    })
}

fn replicas_of(scale: &Value) -> ApiResult<i64> {
    let r = scale
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if r < 0 {
        return Err(ApiError::new(
            422,
            "Invalid",
            format!(
                "Scale.autoscaling \"{}\" is invalid: spec.replicas: Invalid value: {r}: must be greater than or equal to 0",
                crate::meta::name(scale)
            ),
        ));
    }
    Ok(r)
}

async fn set_replicas(
    reg: &Registry,
    ctx: RequestContext<'_>,
    info: &ResourceInfo,
    ns: Option<&str>,
    name: &str,
    f: impl Fn(&Value) -> ApiResult<(Option<String>, i64)> + Send,
) -> ApiResult<Value> {
    let info2 = info.clone();
    let obj = reg
        .update_with(ctx, info, ns, name, Some("scale"), move |old| {
            let (rv, replicas) = f(&to_scale(&info2, old))?;
            if let Some(rv) = rv
                && crate::meta::str_at(old, "/metadata/resourceVersion") != Some(rv.as_str())
            {
                return Err(ApiError::conflict(&info2, name));
            }
            let mut new = old.clone();
            set_at(
                &mut new,
                &crate::kinds::of(&info2).scale().spec_replicas,
                json!(replicas),
            );
            if new != *old {
                let g = old
                    .pointer("/metadata/generation")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                new["metadata"]["generation"] = json!(g + 1);
            }
            Ok(new)
        })
        .await?;
    Ok(to_scale(info, &obj))
}

pub async fn update(
    reg: &Registry,
    ctx: RequestContext<'_>,
    info: &ResourceInfo,
    ns: Option<&str>,
    name: &str,
    scale: &Value,
) -> ApiResult<Value> {
    let rv = crate::meta::str_at(scale, "/metadata/resourceVersion")
        .filter(|r| !r.is_empty())
        .map(str::to_string);
    let replicas = replicas_of(scale)?;
    set_replicas(reg, ctx, info, ns, name, move |_| {
        Ok((rv.clone(), replicas))
    })
    .await
}

pub async fn patch(
    reg: &Registry,
    ctx: RequestContext<'_>,
    info: &ResourceInfo,
    ns: Option<&str>,
    name: &str,
    patch: Patch,
) -> ApiResult<Value> {
    set_replicas(reg, ctx, info, ns, name, move |current| {
        let mut doc = current.clone();
        patch.apply_to(&mut doc)?;
        Ok((None, replicas_of(&doc)?))
    })
    .await
}
