//! `configMap` volumes (pkg/volume/configmap): the ConfigMap's keys (or the listed `items`) as
//! files with `defaultMode`/item modes, written by the atomic writer into a directory of the
//! pod and rewritten at every pod sync when the ConfigMap changed.

use std::collections::BTreeMap;
use std::path::Path;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{ConfigMap, KeyToPath, Pod, Volume};
use kube::Api;

use super::atomic_writer::{FileProjection, Payload};
use super::{VolumeHost, VolumePlugin, mode_or_default, write_payload};

pub struct ConfigMapPlugin;

impl VolumePlugin for ConfigMapPlugin {
    fn name(&self) -> &'static str {
        "kubernetes.io/configmap"
    }

    fn can_support(&self, v: &Volume) -> bool {
        v.config_map.is_some()
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
            let src = v.config_map.clone().unwrap_or_default();
            let optional = src.optional.unwrap_or(false);
            let data = get(host, pod, &src.name, optional).await?;
            let payload = make_payload(
                src.items.as_deref(),
                &data,
                mode_or_default(src.default_mode),
                optional,
                Kind::ConfigMap,
            )?;
            write_payload(host, pod, dir, false, &payload)
        })
    }
}

/// The ConfigMap's `data` and `binaryData` (empty when it is optional and missing).
pub(crate) async fn get(
    host: &VolumeHost,
    pod: &Pod,
    name: &str,
    optional: bool,
) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let api: Api<ConfigMap> = Api::namespaced(host.client.clone(), ns);
    match api.get_opt(name).await {
        Ok(Some(cm)) => {
            let mut d: BTreeMap<String, Vec<u8>> = cm
                .binary_data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect();
            // `data` first, as upstream looks keys up.
            for (k, v) in cm.data.unwrap_or_default() {
                d.insert(k, v.into_bytes());
            }
            Ok(d)
        }
        Ok(None) if optional => Ok(BTreeMap::new()),
        Ok(None) => Err(format!("configmap {name:?} not found")),
        Err(e) => Err(format!("couldn't get configmap {ns}/{name}: {e}")),
    }
}

#[derive(Clone, Copy)]
pub(crate) enum Kind {
    ConfigMap,
    Secret,
}

/// Upstream's `MakePayload` of the configmap and secret plugins: every key with
/// `default_mode`, or only `items` (key → path, own mode); a missing item key fails unless
/// the source is optional.
pub(crate) fn make_payload(
    items: Option<&[KeyToPath]>,
    data: &BTreeMap<String, Vec<u8>>,
    default_mode: u32,
    optional: bool,
    kind: Kind,
) -> Result<Payload, String> {
    let mut payload = Payload::new();
    match items.filter(|i| !i.is_empty()) {
        None => {
            for (k, v) in data {
                payload.insert(
                    k.clone(),
                    FileProjection {
                        data: v.clone(),
                        mode: default_mode,
                    },
                );
            }
        }
        Some(items) => {
            for ktp in items {
                let Some(v) = data.get(&ktp.key) else {
                    if optional {
                        continue;
                    }
                    return Err(match kind {
                        Kind::ConfigMap => {
                            format!("configmap references non-existent config key: {}", ktp.key)
                        }
                        Kind::Secret => {
                            format!("references non-existent secret key: {}", ktp.key)
                        }
                    });
                };
                let mode = ktp.mode.map_or(default_mode, |m| mode_or_default(Some(m)));
                payload.insert(
                    ktp.path.clone(),
                    FileProjection {
                        data: v.clone(),
                        mode,
                    },
                );
            }
        }
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_from_items() {
        let data = BTreeMap::from([
            ("a".to_owned(), b"1".to_vec()),
            ("b".to_owned(), b"2".to_vec()),
        ]);
        let all = make_payload(None, &data, 0o644, false, Kind::ConfigMap).unwrap_or_default();
        assert_eq!(all.len(), 2);
        assert_eq!(all["a"].mode, 0o644);
        let items = [KeyToPath {
            key: "b".into(),
            path: "dir/b.txt".into(),
            mode: Some(0o400),
        }];
        let some =
            make_payload(Some(&items), &data, 0o644, false, Kind::ConfigMap).unwrap_or_default();
        assert_eq!(some.len(), 1);
        assert_eq!(some["dir/b.txt"].mode, 0o400);
        let missing = [KeyToPath {
            key: "zz".into(),
            path: "zz".into(),
            mode: None,
        }];
        assert_eq!(
            make_payload(Some(&missing), &data, 0o644, false, Kind::ConfigMap).err(),
            Some("configmap references non-existent config key: zz".to_owned())
        );
        assert_eq!(
            make_payload(Some(&missing), &data, 0o644, false, Kind::Secret).err(),
            Some("references non-existent secret key: zz".to_owned())
        );
        assert!(
            make_payload(Some(&missing), &data, 0o644, true, Kind::Secret)
                .is_ok_and(|p| p.is_empty())
        );
    }
}
