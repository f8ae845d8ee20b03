//! Writing a node's taints (upstream's AddOrUpdateTaintOnNode, RemoveTaintOffNode and
//! SwapNodeControllerTaint): the whole list is patched with the resourceVersion it was read
//! at, so concurrent writers (this controller's passes, an administrator) never lose each
//! other's taints; a conflict reads again and retries.

use std::time::Duration;

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::{Node, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use super::taints::{self, node_taints};

/// Attempts at a taint write before giving up until the next pass (upstream's
/// UpdateTaintBackoff: 5 steps of 100 ms).
const ATTEMPTS: usize = 5;
const RETRY_DELAY: Duration = Duration::from_millis(100);

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// Reads the node, lets `change` compute its new taints (`None`: nothing to do) and patches
/// them in, retrying on conflicts.
async fn update_taints(
    client: &Client,
    name: &str,
    change: impl Fn(&[Taint]) -> Option<Vec<Taint>>,
) -> anyhow::Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    for attempt in 1..=ATTEMPTS {
        let node = match api.get(name).await {
            Ok(n) => n,
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("reading node {name}")),
        };
        let Some(new) = change(node_taints(&node)) else {
            return Ok(());
        };
        let list = if new.is_empty() {
            Value::Null
        } else {
            serde_json::to_value(&new).context("encoding taints")?
        };
        let patch = json!({
            "metadata": {"resourceVersion": node.metadata.resource_version},
            "spec": {"taints": list},
        });
        match api
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if is_conflict(&e) && attempt < ATTEMPTS => {
                tokio::time::sleep(RETRY_DELAY).await;
            }
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("patching taints of node {name}")),
        }
    }
    bail!("taints of node {name} kept changing under us")
}

/// Puts `add` on the node (replacing taints of the same key and effect).
pub async fn add_or_update(client: &Client, name: &str, add: &[Taint]) -> anyhow::Result<()> {
    if add.is_empty() {
        return Ok(());
    }
    update_taints(client, name, |current| {
        let mut out: Option<Vec<Taint>> = None;
        for t in add {
            let base = out.as_deref().unwrap_or(current);
            if let Some(next) = taints::add_or_update(base, t) {
                out = Some(next);
            }
        }
        out
    })
    .await
}

/// Takes `remove` off the node; no request at all when `known` (the cached node) has none
/// of them.
pub async fn remove(
    client: &Client,
    name: &str,
    known: Option<&Node>,
    remove: &[Taint],
) -> anyhow::Result<()> {
    if remove.is_empty() {
        return Ok(());
    }
    if let Some(n) = known
        && !remove.iter().any(|t| taints::exists(node_taints(n), t))
    {
        return Ok(());
    }
    update_taints(client, name, |current| taints::without(current, remove)).await
}

/// Adds `add` (stamped with the time now) and then removes `remove`.
pub async fn swap(
    client: &Client,
    node: &Node,
    add: Vec<Taint>,
    remove_these: &[Taint],
) -> anyhow::Result<()> {
    let name = node.metadata.name.as_deref().unwrap_or_default();
    let now = Time(Timestamp::from_second(Timestamp::now().as_second()).unwrap_or_default());
    let add: Vec<Taint> = add
        .into_iter()
        .map(|t| Taint {
            time_added: Some(now.clone()),
            ..t
        })
        .collect();
    add_or_update(client, name, &add)
        .await
        .with_context(|| format!("tainting node {name}"))?;
    remove(client, name, Some(node), remove_these)
        .await
        .with_context(|| format!("removing taints from node {name}"))
}
