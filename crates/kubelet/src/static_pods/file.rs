//! The file source of static pods, as upstream's `pkg/kubelet/config/file.go` and
//! `common.go`: every non-hidden file in the manifest directory holds one Pod (YAML or JSON);
//! the kubelet names it `<name>-<node>`, binds it to itself, gives it a UID that is a hash of
//! the manifest, node and path (so an unchanged file keeps its pod across kubelet restarts and
//! a changed one replaces it), and the `kubernetes.io/config.*` annotations.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod, Toleration};
use serde_json::Value;
use tracing::warn;

pub const SOURCE_ANNOTATION: &str = "kubernetes.io/config.source";
pub const HASH_ANNOTATION: &str = "kubernetes.io/config.hash";
pub const SEEN_ANNOTATION: &str = "kubernetes.io/config.seen";
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
/// The source annotation's value for pods read from files.
pub const FILE_SOURCE: &str = "file";

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a valid YAML or JSON pod: {message}")]
    Decode { path: PathBuf, message: String },
    #[error("{path}: invalid pod: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The static pods of `path` (a directory of manifests, or one manifest) for node `node`, by
/// UID. A file that cannot be read or decoded is logged and skipped, as upstream.
pub fn read_manifests(path: &Path, node: &str) -> BTreeMap<String, Pod> {
    let mut pods = BTreeMap::new();
    let files = match std::fs::read_dir(path) {
        Ok(rd) => {
            let mut files: Vec<PathBuf> = rd
                .flatten()
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .filter(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
                .map(|e| e.path())
                .collect();
            files.sort();
            files
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => vec![path.to_owned()],
        // No directory (yet) means no static pods.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return pods,
        Err(e) => {
            warn!(path = %path.display(), error = %e, "cannot read the static pod manifests");
            return pods;
        }
    };
    for file in files {
        match read_manifest(&file, node) {
            Ok(pod) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                pods.insert(uid, pod);
            }
            Err(e) => warn!(error = %e, "skipping a static pod manifest"),
        }
    }
    pods
}

/// One manifest file as the static pod the kubelet runs.
pub fn read_manifest(file: &Path, node: &str) -> Result<Pod, ManifestError> {
    let text = std::fs::read_to_string(file).map_err(|source| ManifestError::Read {
        path: file.to_owned(),
        source,
    })?;
    let decode = |message: String| ManifestError::Decode {
        path: file.to_owned(),
        message,
    };
    // JSON is YAML; one document per file.
    let value: Value = serde_saphyr::from_str(&text).map_err(|e| decode(e.to_string()))?;
    let invalid = |message: String| ManifestError::Invalid {
        path: file.to_owned(),
        message,
    };
    if value.get("kind").and_then(Value::as_str) != Some("Pod") {
        return Err(invalid(format!(
            "kind must be Pod, not {}",
            value.get("kind").unwrap_or(&Value::Null)
        )));
    }
    let mut pod: Pod = serde_json::from_value(value).map_err(|e| decode(e.to_string()))?;
    if pod.metadata.name.as_deref().is_none_or(str::is_empty) {
        return Err(invalid(
            "metadata.name: Required value: name is required".into(),
        ));
    }
    if pod.spec.as_ref().is_none_or(|s| s.containers.is_empty()) {
        return Err(invalid(
            "spec.containers: Required value: must have at least one container".into(),
        ));
    }
    set_defaults(&mut pod);
    apply_source_defaults(&mut pod, node, file);
    Ok(pod)
}

/// The API server's defaults the kubelet relies on, which a file never went through.
fn set_defaults(pod: &mut Pod) {
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    spec.restart_policy.get_or_insert_with(|| "Always".into());
    spec.dns_policy.get_or_insert_with(|| "ClusterFirst".into());
    spec.termination_grace_period_seconds.get_or_insert(30);
    spec.scheduler_name
        .get_or_insert_with(|| "default-scheduler".into());
    spec.enable_service_links.get_or_insert(true);
    spec.security_context.get_or_insert_with(Default::default);
    let containers = spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten());
    containers.for_each(default_container);
}

fn default_container(c: &mut Container) {
    c.termination_message_path
        .get_or_insert_with(|| "/dev/termination-log".into());
    c.termination_message_policy
        .get_or_insert_with(|| "File".into());
    if c.image_pull_policy.is_none() {
        let image = c.image.as_deref().unwrap_or_default();
        let last = image.rsplit('/').next().unwrap_or_default();
        let latest =
            !image.contains('@') && last.split_once(':').is_none_or(|(_, t)| t == "latest");
        c.image_pull_policy = Some(if latest { "Always" } else { "IfNotPresent" }.into());
    }
    for p in c.ports.iter_mut().flatten() {
        p.protocol.get_or_insert_with(|| "TCP".into());
    }
}

/// Upstream's `applyDefaults` for a file source: UID and `config.hash` from the manifest, the
/// node and the path; `<name>-<node>`; namespace `default`; bound to the node; tolerating
/// every NoExecute taint so node problems never evict it; phase Pending.
fn apply_source_defaults(pod: &mut Pod, node: &str, file: &Path) {
    if pod.metadata.uid.as_deref().is_none_or(str::is_empty) {
        let manifest = serde_json::to_vec(&*pod).unwrap_or_default();
        let mut input = manifest;
        input.extend_from_slice(format!("host:{node}file:{}", file.display()).as_bytes());
        let digest = ring::digest::digest(&ring::digest::SHA256, &input);
        // 32 hex digits, the length of upstream's MD5 hash.
        let hex: String = digest.as_ref()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        pod.metadata.uid = Some(hex);
    }
    let name = pod.metadata.name.clone().unwrap_or_default();
    pod.metadata.name = Some(format!("{name}-{}", node.to_lowercase()));
    if pod.metadata.namespace.as_deref().is_none_or(str::is_empty) {
        pod.metadata.namespace = Some("default".into());
    }
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let annotations = pod.metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(HASH_ANNOTATION.into(), uid);
    annotations.insert(SOURCE_ANNOTATION.into(), FILE_SOURCE.into());
    if let Some(spec) = pod.spec.as_mut() {
        spec.node_name = Some(node.to_owned());
        let all = Toleration {
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            ..Default::default()
        };
        let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
        if !tolerations.contains(&all) {
            tolerations.push(all);
        }
    }
    pod.status = Some(k8s_openapi::api::core::v1::PodStatus {
        phase: Some("Pending".into()),
        ..Default::default()
    });
}

/// The `config.hash` of a static or mirror pod.
pub fn config_hash(pod: &Pod) -> Option<&str> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(HASH_ANNOTATION))
        .map(String::as_str)
}

/// Whether `pod` is a mirror pod (it has `kubernetes.io/config.mirror`).
pub fn is_mirror(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(MIRROR_ANNOTATION))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEB: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: kube-system\nspec:\n  hostNetwork: true\n  containers:\n  - name: c\n    image: busybox:1\n    command: [sleep, '3600']\n";

    #[test]
    fn manifests_become_static_pods() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("web.yaml"), WEB).unwrap();
        std::fs::write(
            dir.path().join("db.json"),
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"db"},"spec":{"containers":[{"name":"c","image":"db"}]}}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join(".hidden.yaml"), WEB).unwrap();
        std::fs::write(dir.path().join("bad.yaml"), "kind: Service\n").unwrap();
        let pods = read_manifests(dir.path(), "Node-1");
        let names: Vec<_> = pods
            .values()
            .map(|p| p.metadata.name.clone().unwrap_or_default())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.contains(&"web-node-1".to_owned()));
        assert!(names.contains(&"db-node-1".to_owned()));
        let web = pods
            .values()
            .find(|p| p.metadata.name.as_deref() == Some("web-node-1"))
            .unwrap();
        let uid = web.metadata.uid.clone().unwrap();
        assert_eq!(uid.len(), 32);
        assert_eq!(config_hash(web), Some(uid.as_str()));
        let ann = web.metadata.annotations.clone().unwrap();
        assert_eq!(ann[SOURCE_ANNOTATION], "file");
        assert_eq!(web.metadata.namespace.as_deref(), Some("kube-system"));
        let spec = web.spec.clone().unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("Node-1"));
        assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
        assert!(
            spec.tolerations
                .unwrap()
                .iter()
                .any(|t| t.operator.as_deref() == Some("Exists")
                    && t.effect.as_deref() == Some("NoExecute"))
        );
        let c = &spec.containers[0];
        assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
        let db = pods
            .values()
            .find(|p| p.metadata.name.as_deref() == Some("db-node-1"))
            .unwrap();
        assert_eq!(db.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(
            db.spec.as_ref().unwrap().containers[0]
                .image_pull_policy
                .as_deref(),
            Some("Always")
        );
        assert!(!is_mirror(db));
    }

    #[test]
    fn the_hash_follows_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("web.yaml");
        std::fs::write(&file, WEB).unwrap();
        let a = read_manifest(&file, "n").unwrap().metadata.uid;
        assert_eq!(read_manifest(&file, "n").unwrap().metadata.uid, a);
        assert_ne!(read_manifest(&file, "m").unwrap().metadata.uid, a);
        std::fs::write(&file, WEB.replace("3600", "3601")).unwrap();
        assert_ne!(read_manifest(&file, "n").unwrap().metadata.uid, a);
        assert!(read_manifests(&dir.path().join("missing"), "n").is_empty());
        assert_eq!(read_manifests(&file, "n").len(), 1);
    }
}
