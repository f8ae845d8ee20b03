//! `pods/<name>/binding`: how the scheduler assigns a pod to a node.

use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::meta;
use crate::registry::{Registry, RequestContext};
use crate::resources::ResourceInfo;

pub async fn bind(
    reg: &Registry,
    ctx: RequestContext<'_>,
    info: &ResourceInfo,
    ns: Option<&str>,
    name: &str,
    binding: &Value,
) -> ApiResult<()> {
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad_request("a Binding needs target.name"))?
        .to_string();
    let now = meta::now_rfc3339();
    // Stored even under dryRun, as bindings always were here (upstream honours dryRun).
    let ctx = ctx.with_dry_run(false);
    reg.update_with(ctx, info, ns, name, Some("binding"), move |old| {
        if old.pointer("/metadata/deletionTimestamp").is_some() {
            return Err(ApiError::conflict(info, name));
        }
        match meta::str_at(old, "/spec/nodeName") {
            Some(n) if !n.is_empty() => {
                return Err(ApiError::new(
                    409,
                    "Conflict",
                    format!("Operation cannot be fulfilled on pods/binding \"{name}\": pod {name} is already assigned to node \"{n}\""),
                ));
            }
            _ => {}
        }
        let mut new = old.clone();
        new["spec"]["nodeName"] = json!(node);
        let cond = json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now});
        let conds = new["status"]["conditions"].as_array().cloned().unwrap_or_default();
        let mut conds: Vec<Value> = conds
            .into_iter()
            .filter(|c| c.get("type").and_then(Value::as_str) != Some("PodScheduled"))
            .collect();
        conds.push(cond);
        new["status"]["conditions"] = json!(conds);
        Ok(new)
    })
    .await?;
    Ok(())
}
