//! `secret` volumes (pkg/volume/secret): as configMap volumes, but on a tmpfs (secrets never
//! touch the node's disk) with the values decoded.

use std::collections::BTreeMap;
use std::path::Path;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Pod, Secret, Volume};
use kube::Api;

use super::config_map::{Kind, make_payload};
use super::{VolumeHost, VolumePlugin, mode_or_default, write_payload};

pub struct SecretPlugin;

impl VolumePlugin for SecretPlugin {
    fn name(&self) -> &'static str {
        "kubernetes.io/secret"
    }

    fn can_support(&self, v: &Volume) -> bool {
        v.secret.is_some()
    }

    fn read_only(&self) -> bool {
        true
    }

    fn set_up<'a>(
        &'a self,
        host: &'a VolumeHost,
        pod: &'a Pod,
        v: &'a Volume,
        dir: &'a Path,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let src = v.secret.clone().unwrap_or_default();
            let optional = src.optional.unwrap_or(false);
            let name = src.secret_name.clone().unwrap_or_default();
            let data = get(host, pod, &name, optional).await?;
            let payload = make_payload(
                src.items.as_deref(),
                &data,
                mode_or_default(src.default_mode),
                optional,
                Kind::Secret,
            )?;
            write_payload(host, pod, dir, true, &payload)
        })
    }
}

/// The Secret's decoded `data` (plus `stringData`; empty when optional and missing).
pub(crate) async fn get(
    host: &VolumeHost,
    pod: &Pod,
    name: &str,
    optional: bool,
) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let api: Api<Secret> = Api::namespaced(host.client.clone(), ns);
    match api.get_opt(name).await {
        Ok(Some(s)) => {
            let mut d: BTreeMap<String, Vec<u8>> = s
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect();
            for (k, v) in s.string_data.unwrap_or_default() {
                d.insert(k, v.into_bytes());
            }
            Ok(d)
        }
        Ok(None) if optional => Ok(BTreeMap::new()),
        Ok(None) => Err(format!("secret {name:?} not found")),
        Err(e) => Err(format!("couldn't get secret {ns}/{name}: {e}")),
    }
}
