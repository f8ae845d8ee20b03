//! `downwardAPI` volumes (pkg/volume/downwardapi): pod fields (`metadata.name|namespace|uid`,
//! `metadata.labels|annotations` whole or one key) and container resources as files on a
//! tmpfs. Labels and annotations changes reach the files at the next pod sync (the worker
//! wakes on them).

use std::collections::BTreeMap;
use std::path::Path;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{DownwardAPIVolumeFile, Pod, Volume};

use super::atomic_writer::{FileProjection, Payload};
use super::{VolumeHost, VolumePlugin, aggregate, mode_or_default, write_payload};
use crate::env::{self, EnvContext};

pub struct DownwardApiPlugin;

impl VolumePlugin for DownwardApiPlugin {
    fn name(&self) -> &'static str {
        "kubernetes.io/downward-api"
    }

    fn can_support(&self, v: &Volume) -> bool {
        v.downward_api.is_some()
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
            let src = v.downward_api.clone().unwrap_or_default();
            let payload = collect_data(
                src.items.as_deref().unwrap_or_default(),
                pod,
                host,
                mode_or_default(src.default_mode),
            )?;
            write_payload(host, pod, dir, true, &payload)
        })
    }
}

/// Upstream's `FormatMap`: `key="value"` lines in key order, no trailing newline.
pub fn format_map(m: &BTreeMap<String, String>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}={}", common::gofmt::quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Upstream's `fieldpath.ExtractFieldPathAsString` for the paths volumes allow.
fn field_value(pod: &Pod, path: &str) -> Result<String, String> {
    let m = &pod.metadata;
    match path {
        "metadata.labels" => Ok(format_map(&m.labels.clone().unwrap_or_default())),
        "metadata.annotations" => Ok(format_map(&m.annotations.clone().unwrap_or_default())),
        "metadata.name" | "metadata.namespace" | "metadata.uid" => {
            env::field_value(pod, path, &EnvContext::default()).map_err(|e| e.0)
        }
        p if p.starts_with("metadata.labels[") || p.starts_with("metadata.annotations[") => {
            env::field_value(pod, path, &EnvContext::default()).map_err(|e| e.0)
        }
        other => Err(format!("unsupported fieldPath: {other}")),
    }
}

/// Upstream's `CollectData`: every item's file; errors are aggregated.
pub(crate) fn collect_data(
    items: &[DownwardAPIVolumeFile],
    pod: &Pod,
    host: &VolumeHost,
    default_mode: u32,
) -> Result<Payload, String> {
    let mut payload = Payload::new();
    let mut errors = Vec::new();
    let ctx = EnvContext {
        node_milli_cpu: host.node_milli_cpu,
        node_memory: host.node_memory,
        ..Default::default()
    };
    for item in items {
        let mode = item.mode.map_or(default_mode, |m| mode_or_default(Some(m)));
        let mut data = Vec::new();
        if let Some(f) = &item.field_ref {
            match field_value(pod, &f.field_path) {
                Ok(v) => data = v.into_bytes(),
                Err(e) => errors.push(e),
            }
        } else if let Some(r) = &item.resource_field_ref {
            let name = r.container_name.as_deref().unwrap_or_default();
            match env::find_container(pod, name) {
                None => errors.push(format!("container {name} not found")),
                Some(c) => {
                    let divisor = r.divisor.as_ref().map(|q| q.0.as_str());
                    match env::resource_value(c, &r.resource, divisor, &ctx) {
                        Ok(v) => data = v.into_bytes(),
                        Err(e) => errors.push(e.0),
                    }
                }
            }
        }
        let path = item
            .path
            .split('/')
            .filter(|s| !s.is_empty() && *s != ".")
            .collect::<Vec<_>>()
            .join("/");
        payload.insert(path, FileProjection { data, mode });
    }
    aggregate(errors).map(|()| payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_format_as_upstream() {
        let m = BTreeMap::from([
            ("b".to_owned(), "two \"x\"".to_owned()),
            ("a".to_owned(), "one\n".to_owned()),
        ]);
        assert_eq!(format_map(&m), "a=\"one\\n\"\nb=\"two \\\"x\\\"\"");
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "labels": {"app": "web"}}
        }))
        .unwrap_or_default();
        assert_eq!(
            field_value(&pod, "metadata.labels"),
            Ok("app=\"web\"".into())
        );
        assert_eq!(
            field_value(&pod, "metadata.labels['app']"),
            Ok("web".into())
        );
        assert_eq!(field_value(&pod, "metadata.name"), Ok("p".into()));
        assert_eq!(
            field_value(&pod, "spec.nodeName"),
            Err("unsupported fieldPath: spec.nodeName".into())
        );
    }
}
