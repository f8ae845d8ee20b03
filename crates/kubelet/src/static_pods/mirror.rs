//! Mirror pods, as upstream's `pkg/kubelet/pod/mirror_client.go`: the API server's read-only
//! copy of a static pod, annotated `kubernetes.io/config.mirror: <hash>` and owned by the
//! Node, so the static pod shows in `kubectl get pods` and goes with the Node.

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Api;
use kube::api::{DeleteParams, PostParams, Preconditions};
use tracing::info;

use super::file::{MIRROR_ANNOTATION, config_hash};

/// The mirror of `static_pod`, owned by the Node `node` (UID `node_uid`).
pub fn mirror_of(static_pod: &Pod, node: &str, node_uid: &str) -> Pod {
    let mut mirror = static_pod.clone();
    let hash = config_hash(static_pod).unwrap_or_default().to_owned();
    let meta = &mut mirror.metadata;
    meta.uid = None;
    meta.resource_version = None;
    meta.creation_timestamp = None;
    meta.annotations
        .get_or_insert_with(Default::default)
        .insert(MIRROR_ANNOTATION.into(), hash);
    meta.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: node.to_owned(),
        uid: node_uid.to_owned(),
        controller: Some(true),
        block_owner_deletion: None,
    }]);
    mirror.status = None;
    mirror
}

/// Whether `mirror` mirrors this version of `static_pod` (same config hash).
pub fn is_mirror_of(mirror: &Pod, static_pod: &Pod) -> bool {
    let hash = mirror
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(MIRROR_ANNOTATION));
    hash.is_some() && hash.map(String::as_str) == config_hash(static_pod)
}

/// Creates the mirror pod of `static_pod`. One already there with the same hash is fine (a
/// create the watch has not shown yet).
pub async fn create(client: &kube::Client, static_pod: &Pod, node: &str) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node_uid = nodes
        .get(node)
        .await
        .with_context(|| format!("getting node {node} for the mirror pod's owner"))?
        .metadata
        .uid
        .unwrap_or_default();
    let mirror = mirror_of(static_pod, node, &node_uid);
    let ns = mirror.metadata.namespace.clone().unwrap_or_default();
    let name = mirror.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    match api.create(&PostParams::default(), &mirror).await {
        Ok(_) => {
            info!(pod = %format!("{ns}/{name}"), "mirror pod created");
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let existing = api
                .get(&name)
                .await
                .context("reading the existing mirror pod")?;
            anyhow::ensure!(
                is_mirror_of(&existing, static_pod),
                "pod {ns}/{name} exists and is not the mirror of this static pod"
            );
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("creating mirror pod {ns}/{name}")),
    }
}

/// Deletes the mirror pod `mirror` at once (grace 0, only that UID). True if it was there.
pub async fn delete(client: &kube::Client, mirror: &Pod) -> anyhow::Result<bool> {
    let ns = mirror.metadata.namespace.clone().unwrap_or_default();
    let name = mirror.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: mirror.metadata.uid.clone(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&name, &params).await {
        Ok(_) => {
            info!(pod = %format!("{ns}/{name}"), "mirror pod deleted");
            Ok(true)
        }
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(false),
        Err(e) => Err(e).with_context(|| format!("deleting mirror pod {ns}/{name}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn mirrors_carry_the_hash_and_the_node_owner() {
        let static_pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-n", "namespace": "default", "uid": "abc",
                "annotations": {"kubernetes.io/config.hash": "abc",
                    "kubernetes.io/config.source": "file"}},
            "spec": {"nodeName": "n", "containers": [{"name": "c"}]},
            "status": {"phase": "Pending"}}))
        .unwrap();
        let m = mirror_of(&static_pod, "n", "node-uid");
        assert_eq!(m.metadata.uid, None);
        assert_eq!(m.status, None);
        let ann = m.metadata.annotations.clone().unwrap();
        assert_eq!(ann["kubernetes.io/config.mirror"], "abc");
        assert_eq!(ann["kubernetes.io/config.source"], "file");
        let owner = &m.metadata.owner_references.clone().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
            ("Node", "n", "node-uid")
        );
        assert_eq!(owner.controller, Some(true));
        assert!(is_mirror_of(&m, &static_pod));
        assert!(!is_mirror_of(&static_pod, &static_pod));
    }
}
