//! The HPA's target through its `scale` subresource (autoscaling/v1 Scale), whatever its
//! kind: the kind is mapped to its resources by discovery and each is tried in turn, as
//! upstream's `scaleForResourceMappings`.

use anyhow::anyhow;
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::autoscaling::v2::CrossVersionObjectReference;
use kube::api::{DynamicObject, PostParams};
use kube::discovery::ApiResource;
use kube::{Api, Client};

use super::mapper::RestMapper;
use super::metrics_client::api_message;

/// Why the target's scale could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ScaleError {
    #[error("invalid API version in scale target reference: {0}")]
    ApiVersion(String),
    #[error("unable to determine resource for scale target reference: {0}")]
    Mapping(String),
    #[error("failed to query scale subresource for {reference}: {message}")]
    Get { reference: String, message: String },
}

impl ScaleError {
    /// What the FailedGetScale event and condition say (the cause alone).
    pub fn cause(&self) -> &str {
        match self {
            ScaleError::ApiVersion(m) | ScaleError::Mapping(m) => m,
            ScaleError::Get { message, .. } => message,
        }
    }
}

/// The group of an `apiVersion`, or an error for one that is not `[group/]version`.
fn parse_group(api_version: &str) -> Result<&str, String> {
    match api_version.split('/').count() {
        0..=1 => Ok(""),
        2 => Ok(api_version.split_once('/').map_or("", |(g, _)| g)),
        _ => Err(format!("unexpected GroupVersion string: {api_version}")),
    }
}

/// The target's Scale, and the resource it was read through.
pub async fn get(
    client: &Client,
    mapper: &RestMapper,
    namespace: &str,
    target: &CrossVersionObjectReference,
) -> Result<(ApiResource, Scale), ScaleError> {
    let group =
        parse_group(target.api_version.as_deref().unwrap_or("")).map_err(ScaleError::ApiVersion)?;
    let mappings = mapper
        .mappings(group, &target.kind)
        .await
        .map_err(|e| ScaleError::Mapping(format!("{e:#}")))?;
    let mut first = None;
    for ar in mappings {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &ar);
        match api.get_scale(&target.name).await {
            Ok(scale) => return Ok((ar, scale)),
            Err(e) => {
                first.get_or_insert_with(|| api_message(&e));
            }
        }
    }
    Err(ScaleError::Get {
        reference: format!("{}/{namespace}/{}", target.kind, target.name),
        message: first.unwrap_or_else(|| "unrecognized resource".into()),
    })
}

/// Writes `scale` back with `replicas` (its resourceVersion guards against a change since).
pub async fn update(
    client: &Client,
    resource: &ApiResource,
    namespace: &str,
    mut scale: Scale,
    replicas: i32,
) -> anyhow::Result<Scale> {
    let name = scale.metadata.name.clone().unwrap_or_default();
    scale.spec.get_or_insert_with(Default::default).replicas = Some(replicas);
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, resource);
    api.replace_scale(&name, &PostParams::default(), &scale)
        .await
        .map_err(|e| anyhow!("{}", api_message(&e)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn api_versions_name_their_group() {
        assert_eq!(parse_group("apps/v1"), Ok("apps"));
        assert_eq!(parse_group("v1"), Ok(""));
        assert_eq!(parse_group(""), Ok(""));
        assert_eq!(
            parse_group("a/b/c"),
            Err("unexpected GroupVersion string: a/b/c".to_string())
        );
    }
}
