//! The `scale` subresource (`autoscaling/v1` Scale) of Deployments, ReplicaSets,
//! StatefulSets and ReplicationControllers: `spec.replicas` seen and set through a Scale.

use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::registry::{Patch, Registry, RequestContext};
use crate::resources::ResourceInfo;

pub fn to_scale(_info: &ResourceInfo, obj: &Value) -> Value {
    let m = &obj["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
            "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"],
        },
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(0))},
        "status": {
            "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": crate::selector::selector_string(obj.pointer("/spec/selector")),
        },
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
            new["spec"]["replicas"] = json!(replicas);
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
