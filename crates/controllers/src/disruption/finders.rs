//! The controller of a pod and its scale (upstream's `finders`): ReplicationControllers,
//! Deployments (through their ReplicaSets), ReplicaSets and StatefulSets from the informers,
//! anything else through its `scale` subresource, found by discovery.

use std::collections::HashMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::DynamicObject;
use kube::{Api, Client};

use crate::podautoscaler::mapper::RestMapper;
use client_go::informer::{Informer, controller_of, uid_of};

/// What a controller scales to: its uid and `spec.replicas`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerScale {
    pub uid: String,
    pub scale: i32,
}

/// The workload informers the finders read.
#[derive(Clone)]
pub struct Workloads {
    pub rcs: Informer<ReplicationController>,
    pub replicasets: Informer<ReplicaSet>,
    pub deployments: Informer<Deployment>,
    pub statefulsets: Informer<StatefulSet>,
}

/// The group of an `apiVersion`, or upstream's error for one that is not `[group/]version`.
fn group_version(api_version: &str) -> anyhow::Result<(&str, &str)> {
    match api_version.split('/').collect::<Vec<_>>().as_slice() {
        [""] => Ok(("", "")),
        [v] => Ok(("", v)),
        [g, v] => Ok((g, v)),
        _ => anyhow::bail!("unexpected GroupVersion string: {api_version}"),
    }
}

/// Upstream's `verifyGroupKind`.
fn is_kind(r: &OwnerReference, kind: &str, groups: &[&str]) -> anyhow::Result<bool> {
    let (group, _) = group_version(&r.api_version)?;
    Ok(r.kind == kind && groups.contains(&group))
}

impl Workloads {
    /// The first finder that knows the controller, in upstream's order; `Ok(None)` when none.
    pub async fn find(
        &self,
        client: &Client,
        mapper: &RestMapper,
        r: &OwnerReference,
        namespace: &str,
    ) -> anyhow::Result<Option<ControllerScale>> {
        for found in [
            self.replication_controller(r, namespace)?,
            self.deployment(r, namespace)?,
            self.replica_set(r, namespace)?,
            self.stateful_set(r, namespace)?,
        ] {
            if found.is_some() {
                return Ok(found);
            }
        }
        scale_controller(client, mapper, r, namespace).await
    }

    /// The summed scale of the pods' controllers (upstream's `getExpectedScale`), and the
    /// pods without a controller, which count for nothing. A controller no finder knows is an
    /// error.
    pub async fn expected_scale(
        &self,
        client: &Client,
        mapper: &RestMapper,
        pods: &[&Pod],
    ) -> anyhow::Result<(i32, Vec<String>)> {
        let mut scales: HashMap<String, i32> = HashMap::new();
        let mut unmanaged = Vec::new();
        for pod in pods {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let Some(r) = controller_of(*pod) else {
                unmanaged.push(name);
                continue;
            };
            if scales.contains_key(&r.uid) {
                continue;
            }
            let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
            match self.find(client, mapper, r, ns).await? {
                Some(found) => {
                    scales.insert(found.uid, found.scale);
                }
                None => anyhow::bail!("found no controllers for pod {name:?}"),
            }
        }
        Ok((scales.values().sum(), unmanaged))
    }

    fn replication_controller(
        &self,
        r: &OwnerReference,
        ns: &str,
    ) -> anyhow::Result<Option<ControllerScale>> {
        if !is_kind(r, "ReplicationController", &[""])? {
            return Ok(None);
        }
        Ok(self
            .rcs
            .get(Some(ns), &r.name)
            .filter(|rc| uid_of(rc.as_ref()) == r.uid)
            .map(|rc| ControllerScale {
                uid: r.uid.clone(),
                scale: rc.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
            }))
    }

    /// The ReplicaSet `r` names, if it is one and the cache has it with that uid.
    fn owning_replica_set(
        &self,
        r: &OwnerReference,
        ns: &str,
    ) -> anyhow::Result<Option<std::sync::Arc<ReplicaSet>>> {
        if !is_kind(r, "ReplicaSet", &["apps", "extensions"])? {
            return Ok(None);
        }
        Ok(self
            .replicasets
            .get(Some(ns), &r.name)
            .filter(|rs| uid_of(rs.as_ref()) == r.uid))
    }

    /// The Deployment of the pod's ReplicaSet.
    fn deployment(&self, r: &OwnerReference, ns: &str) -> anyhow::Result<Option<ControllerScale>> {
        let Some(rs) = self.owning_replica_set(r, ns)? else {
            return Ok(None);
        };
        let Some(owner) = controller_of(rs.as_ref()) else {
            return Ok(None);
        };
        if !is_kind(owner, "Deployment", &["apps", "extensions"])? {
            return Ok(None);
        }
        Ok(self
            .deployments
            .get(Some(ns), &owner.name)
            .filter(|d| uid_of(d.as_ref()) == owner.uid)
            .map(|d| ControllerScale {
                uid: owner.uid.clone(),
                scale: d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
            }))
    }

    /// A ReplicaSet no Deployment controls.
    fn replica_set(&self, r: &OwnerReference, ns: &str) -> anyhow::Result<Option<ControllerScale>> {
        let Some(rs) = self.owning_replica_set(r, ns)? else {
            return Ok(None);
        };
        if controller_of(rs.as_ref()).is_some_and(|o| o.kind == "Deployment") {
            return Ok(None);
        }
        Ok(Some(ControllerScale {
            uid: r.uid.clone(),
            scale: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        }))
    }

    fn stateful_set(
        &self,
        r: &OwnerReference,
        ns: &str,
    ) -> anyhow::Result<Option<ControllerScale>> {
        if !is_kind(r, "StatefulSet", &["apps"])? {
            return Ok(None);
        }
        Ok(self
            .statefulsets
            .get(Some(ns), &r.name)
            .filter(|s| uid_of(s.as_ref()) == r.uid)
            .map(|s| ControllerScale {
                uid: r.uid.clone(),
                scale: s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
            }))
    }
}

/// Any other controller through its `scale` subresource (upstream's `getScaleController`).
async fn scale_controller(
    client: &Client,
    mapper: &RestMapper,
    r: &OwnerReference,
    ns: &str,
) -> anyhow::Result<Option<ControllerScale>> {
    let (group, version) = group_version(&r.api_version)?;
    let resource = mapper
        .mappings(group, &r.kind)
        .await?
        .into_iter()
        .find(|ar| ar.version == version)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no matches for kind \"{}\" in version \"{}\"",
                r.kind,
                r.api_version
            )
        })?;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
    let scale = match api.get_scale(&r.name).await {
        Ok(s) => s,
        Err(kube::Error::Api(e)) if e.code == 404 => {
            // Either the object is gone, or its kind has no scale subresource.
            let qualified = if resource.group.is_empty() {
                resource.plural.clone()
            } else {
                format!("{}.{}", resource.plural, resource.group)
            };
            if !implements_scale(client, &resource.api_version, &resource.plural).await? {
                anyhow::bail!("{qualified} does not implement the scale subresource");
            }
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    if scale.metadata.uid.as_deref() != Some(r.uid.as_str()) {
        return Ok(None);
    }
    Ok(Some(ControllerScale {
        uid: r.uid.clone(),
        scale: scale.spec.and_then(|s| s.replicas).unwrap_or(0),
    }))
}

/// Whether discovery lists `<plural>/scale` answering with a Scale (upstream's
/// `implementsScale`).
async fn implements_scale(
    client: &Client,
    api_version: &str,
    plural: &str,
) -> anyhow::Result<bool> {
    let list = if api_version.contains('/') {
        client.list_api_group_resources(api_version).await?
    } else {
        client.list_core_api_resources(api_version).await?
    };
    let wanted = format!("{plural}/scale");
    // The Scale versions client-go's scale client understands.
    let scale_versions = [
        ("autoscaling", "v1"),
        ("extensions", "v1beta1"),
        ("apps", "v1beta1"),
        ("apps", "v1beta2"),
    ];
    Ok(list.resources.iter().any(|r| {
        r.name == wanted
            && r.kind == "Scale"
            && scale_versions.contains(&(
                r.group.as_deref().unwrap_or(""),
                r.version.as_deref().unwrap_or(""),
            ))
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn group_versions_parse_as_apimachinery_does() {
        assert_eq!(group_version("apps/v1").unwrap(), ("apps", "v1"));
        assert_eq!(group_version("v1").unwrap(), ("", "v1"));
        assert!(group_version("a/b/c").is_err());
        let r = OwnerReference {
            api_version: "extensions/v1beta1".into(),
            kind: "ReplicaSet".into(),
            ..Default::default()
        };
        assert!(is_kind(&r, "ReplicaSet", &["apps", "extensions"]).unwrap());
        assert!(!is_kind(&r, "ReplicaSet", &["apps"]).unwrap());
    }
}
