//! The node's local-path storage directory (`<data-dir>/storage`, advertised on the Node as
//! `rkube.io/local-storage-path` for the built-in local-path provisioner): volumes are made
//! there as `pvc-<uid>_<namespace>_<claim>` (created by [`super::local`] at first mount), and
//! a periodic sweep removes those of PersistentVolumes that no longer exist — the provisioner
//! deletes a released volume's object, the node its data (k3s' local-path does that with a
//! helper pod; here the kubelet already runs on the node).
//!
//! The sweep errs on the side of keeping data: only directories named `pvc-*` directly in the
//! storage directory, only after a complete list of PersistentVolumes (any error → nothing
//! removed), kept while any PersistentVolume of that name exists (whatever its provisioner or
//! node) or names the directory as its path, and while anything on the node still mounts it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::PersistentVolume;
use kube::Api;
use kube::api::ListParams;
use tracing::{info, warn};

/// The Node annotation naming the node's local-path storage directory.
pub const NODE_STORAGE_DIR_ANNOTATION: &str = "rkube.io/local-storage-path";

/// Directory names the sweep may consider: volumes the provisioner names `pvc-<claim uid>`.
const VOLUME_PREFIX: &str = "pvc-";

/// The volume directories in `storage_dir`: real directories (not symlinks) named `pvc-*`.
pub fn volume_dirs(storage_dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(storage_dir) else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(VOLUME_PREFIX))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect()
}

/// The PersistentVolume a directory belongs to: its name up to the first `_`.
fn volume_of(dir: &Path) -> Option<String> {
    let name = dir.file_name()?.to_str()?;
    Some(name.split('_').next().unwrap_or(name).to_owned())
}

/// Whether any mount on the node shows (part of) `dir`: a pod's bind of it, or a subPath bind
/// of something in it (mountinfo's fourth field is the mounted path within its filesystem).
fn in_use(dir: &Path) -> bool {
    let Some(name) = dir.file_name().and_then(|n| n.to_str()) else {
        return true;
    };
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines().any(|l| {
        let mut fields = l.split(' ');
        let root = fields.nth(3).map(super::unescape_mountinfo);
        let point = fields.next().map(super::unescape_mountinfo);
        let shows = |p: &str| p.split('/').any(|c| c == name);
        root.as_deref().is_some_and(shows) || point.as_deref().is_some_and(shows)
    })
}

/// Which directories of `dirs` belong to no PersistentVolume in `volumes`.
pub fn orphans(dirs: &[PathBuf], volumes: &[PersistentVolume]) -> Vec<PathBuf> {
    let names: HashSet<&str> = volumes
        .iter()
        .filter_map(|v| v.metadata.name.as_deref())
        .collect();
    let paths: HashSet<PathBuf> = volumes
        .iter()
        .filter_map(|v| v.spec.as_ref())
        .filter_map(|s| {
            s.local
                .as_ref()
                .map(|l| l.path.clone())
                .or_else(|| s.host_path.as_ref().map(|h| h.path.clone()))
        })
        .map(|p| PathBuf::from(p.trim_end_matches('/')))
        .collect();
    dirs.iter()
        .filter(|d| volume_of(d).is_some_and(|n| !names.contains(n.as_str())))
        .filter(|d| !paths.contains(*d))
        .cloned()
        .collect()
}

/// One sweep: removes the directories of volumes that no longer exist; returns them.
pub async fn sweep(client: &kube::Client, storage_dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let dirs = volume_dirs(storage_dir);
    if dirs.is_empty() {
        return Ok(Vec::new());
    }
    let api: Api<PersistentVolume> = Api::all(client.clone());
    // One complete list; a paged or failed one decides nothing.
    let volumes = api
        .list(&ListParams::default())
        .await
        .context("listing PersistentVolumes")?;
    let mut removed = Vec::new();
    for dir in orphans(&dirs, &volumes.items) {
        if in_use(&dir) {
            continue;
        }
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {
                info!(dir = %dir.display(), "removed the directory of a deleted local-path volume");
                removed.push(dir);
            }
            Err(e) => warn!(dir = %dir.display(), error = %e, "cannot remove a volume directory"),
        }
    }
    Ok(removed)
}

/// Sweeps every `period` until dropped.
pub async fn run(client: kube::Client, storage_dir: PathBuf, period: Duration) {
    let mut last_error = String::new();
    loop {
        tokio::time::sleep(period).await;
        match sweep(&client, &storage_dir).await {
            Ok(_) => last_error.clear(),
            Err(e) => {
                let e = format!("{e:#}");
                // Said once: a node without the right to list volumes would repeat it forever.
                if e != last_error {
                    warn!(dir = %storage_dir.display(), error = %e, "local-path volume sweep failed; nothing removed");
                    last_error = e;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_directories_of_gone_volumes_are_orphans() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let d = tmp.path();
        for name in [
            "pvc-a_default_data",
            "pvc-b_default_www",
            "pvc-c_ns_x",
            "other",
            "pvc-d",
        ] {
            std::fs::create_dir(d.join(name))?;
        }
        std::fs::write(d.join("pvc-file_default_f"), "not a directory")?;
        std::os::unix::fs::symlink("/etc", d.join("pvc-link_default_l"))?;
        let mut dirs = volume_dirs(d);
        dirs.sort();
        let names: Vec<String> = dirs
            .iter()
            .filter_map(|p| p.file_name()?.to_str().map(String::from))
            .collect();
        assert_eq!(
            names,
            [
                "pvc-a_default_data",
                "pvc-b_default_www",
                "pvc-c_ns_x",
                "pvc-d"
            ]
        );
        let pv = |v: serde_json::Value| -> PersistentVolume {
            serde_json::from_value(v).unwrap_or_default()
        };
        let volumes = vec![
            // Kept by name, whatever its provisioner or path.
            pv(json!({"metadata": {"name": "pvc-a"}, "spec": {}})),
            // Kept because a volume uses the directory as its path.
            pv(json!({"metadata": {"name": "static"},
                "spec": {"local": {"path": d.join("pvc-c_ns_x").to_string_lossy()}}})),
        ];
        let mut gone = orphans(&dirs, &volumes);
        gone.sort();
        assert_eq!(gone, [d.join("pvc-b_default_www"), d.join("pvc-d")]);
        Ok(())
    }
}
