//! The deprecated beta OS and architecture labels follow the stable ones (upstream's
//! reconcileNodeLabels), for old selectors that still use them.

use std::collections::BTreeMap;

use anyhow::Context;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

/// (stable, beta) label pairs; the beta one is added when missing.
const PAIRS: [(&str, &str); 2] = [
    ("kubernetes.io/os", "beta.kubernetes.io/os"),
    ("kubernetes.io/arch", "beta.kubernetes.io/arch"),
];

/// The beta labels to set so they match the stable ones.
pub fn to_update(node: &Node) -> BTreeMap<String, String> {
    let Some(labels) = node.metadata.labels.as_ref() else {
        return BTreeMap::new();
    };
    PAIRS
        .iter()
        .filter_map(|(stable, beta)| {
            let v = labels.get(*stable)?;
            (labels.get(*beta) != Some(v)).then(|| (beta.to_string(), v.clone()))
        })
        .collect()
}

pub async fn reconcile(client: &Client, node: &Node) -> anyhow::Result<()> {
    let update = to_update(node);
    if update.is_empty() {
        return Ok(());
    }
    let name = node.metadata.name.as_deref().unwrap_or_default();
    let api: Api<Node> = Api::all(client.clone());
    match api
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": update}})),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e).with_context(|| format!("updating labels of node {name}")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn beta_labels_follow_the_stable_ones() {
        let node: Node = serde_json::from_value(json!({"metadata": {"name": "n", "labels": {
            "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/arch": "arm64"}}}))
        .unwrap();
        let u = to_update(&node);
        assert_eq!(u["beta.kubernetes.io/os"], "linux");
        assert_eq!(u["beta.kubernetes.io/arch"], "amd64");
        assert!(to_update(&Node::default()).is_empty());
    }
}
