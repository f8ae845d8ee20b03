//! `local` PersistentVolumes (pkg/volume/local): a directory (or file) of this node, bind-mounted
//! at the pod's volume directory (`ro` as well when the pod's claim is read-only), as
//! upstream's local plugin does for directory volumes. A missing path is refused with
//! upstream's `path "…" does not exist` — except for volumes the built-in local-path
//! provisioner made (`pv.kubernetes.io/provisioned-by: rancher.io/local-path`), whose
//! directory this node's kubelet creates (0777, as local-path's helper pod does) when first
//! mounted. Block devices (upstream formats and mounts them) are not supported.
//!
//! [`bind`] is shared with `hostPath` persistent volumes, which are bound the same way so a
//! claim's volume is always a mount in the pod's directory that teardown unmounts.

use std::ffi::CString;
use std::io;
use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::path::Path;

use common::storage::annotations::{self, PROVISIONED_BY};
use k8s_openapi::api::core::v1::PersistentVolume;
use tracing::{debug, info};

use super::go_error;

/// The built-in dynamic provisioner (k3s' local-path) whose directories the kubelet manages.
pub const LOCAL_PATH_PROVISIONER: &str = "rancher.io/local-path";

/// Whether the local-path provisioner made this volume.
pub fn provisioned_by_local_path(pv: &PersistentVolume) -> bool {
    annotations::get(&pv.metadata, PROVISIONED_BY) == Some(LOCAL_PATH_PROVISIONER)
}

/// The path a `local` volume binds, checked (or, for local-path's volumes, created). The
/// error is the message of upstream's `MountVolume.NewMounter initialization failed` event.
pub fn source_path(pv: &PersistentVolume) -> Result<&str, String> {
    let path = pv
        .spec
        .as_ref()
        .and_then(|s| s.local.as_ref())
        .map(|l| l.path.as_str())
        .filter(|p| !p.is_empty())
        .ok_or_else(|| "local volume source is nil or local path is not set".to_owned())?;
    if path.split('/').any(|c| c == "..") {
        return Err(format!("invalid path: {path} must not contain '..'"));
    }
    let p = Path::new(path);
    match std::fs::metadata(p) {
        Ok(m) if m.file_type().is_block_device() => Err(format!(
            "local volume {path:?} is a block device: only directories and files are supported"
        )),
        Ok(_) => Ok(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound && provisioned_by_local_path(pv) => {
            make_storage_dir(p).map_err(|e| format!("mkdir {path}: {}", go_error(&e)))?;
            info!(path, "local-path volume directory created");
            Ok(path)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err(format!("path {path:?} does not exist"))
        }
        Err(e) => Err(format!("stat {path}: {}", go_error(&e))),
    }
}

/// A local-path volume's directory: parents as needed, the directory itself 0777 whatever the
/// umask (local-path's `mkdir -m 0777 -p`).
fn make_storage_dir(p: &Path) -> io::Result<()> {
    std::fs::create_dir_all(p)?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777))
}

/// Bind-mounts `src` at `dir` (a directory, or a file for a file source), read-only if asked.
/// Returns false when `dir` already was a mount (set up by an earlier sync).
pub fn bind(src: &Path, dir: &Path, read_only: bool) -> io::Result<bool> {
    if super::is_mounted_at(dir) {
        return Ok(false);
    }
    if std::fs::metadata(src)?.is_dir() {
        std::fs::create_dir_all(dir)?;
        // Upstream's 0750 for the mount point (the bound directory's own mode shows through).
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750))?;
    } else {
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if std::fs::symlink_metadata(dir).is_err() {
            std::fs::File::create(dir)?;
        }
    }
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_encoded_bytes())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
    };
    let (src_c, dir_c) = (c(src)?, c(dir)?);
    // SAFETY: valid NUL-terminated paths; a bind mount takes no type or data.
    let rc = unsafe {
        libc::mount(
            src_c.as_ptr(),
            dir_c.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if read_only {
        // A bind mount takes MS_RDONLY only through a remount.
        // SAFETY: as above.
        let rc = unsafe {
            libc::mount(
                std::ptr::null(),
                dir_c.as_ptr(),
                std::ptr::null(),
                libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            let e = io::Error::last_os_error();
            // Never leave a writable mount of a volume meant to be read-only.
            let _ = super::umount(dir);
            return Err(e);
        }
    }
    debug!(src = %src.display(), dir = %dir.display(), read_only, "volume bound");
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pv(v: serde_json::Value) -> PersistentVolume {
        serde_json::from_value(v).unwrap_or_default()
    }

    #[test]
    fn local_paths_are_checked_or_created() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let missing = tmp.path().join("storage/pvc-1_default_data");
        let path = missing.to_string_lossy().into_owned();
        let plain = pv(json!({"metadata": {"name": "pv1"}, "spec": {"local": {"path": path}}}));
        assert_eq!(
            source_path(&plain),
            Err(format!("path {path:?} does not exist"))
        );
        assert!(!missing.exists());
        let provisioned = pv(json!({"metadata": {"name": "pvc-1",
            "annotations": {"pv.kubernetes.io/provisioned-by": "rancher.io/local-path"}},
            "spec": {"local": {"path": path}}}));
        assert_eq!(source_path(&provisioned), Ok(path.as_str()));
        use std::os::unix::fs::MetadataExt as _;
        assert_eq!(std::fs::metadata(&missing)?.mode() & 0o777, 0o777);
        // Now it exists, the plain volume is accepted too.
        assert_eq!(source_path(&plain), Ok(path.as_str()));
        let empty = pv(json!({"spec": {"local": {"path": ""}}}));
        assert!(source_path(&empty).is_err());
        let dots = pv(json!({"spec": {"local": {"path": "/a/../b"}}}));
        assert!(source_path(&dots).is_err_and(|e| e.contains("'..'")));
        Ok(())
    }

    #[test]
    fn binds_read_only_and_once() -> anyhow::Result<()> {
        if !crate::machine::is_root() {
            return Ok(());
        }
        let tmp = tempfile::tempdir()?;
        let src = tmp.path().join("src");
        std::fs::create_dir(&src)?;
        std::fs::write(src.join("f"), "data")?;
        let dir = tmp.path().join("pod/volumes/kubernetes.io~local-volume/v");
        let first = bind(&src, &dir, true);
        let second = bind(&src, &dir, true);
        let read = std::fs::read_to_string(dir.join("f"));
        let write = std::fs::write(dir.join("g"), "x");
        super::super::remove_unmounted(&tmp.path().join("pod"))?;
        assert!(first?);
        assert!(!second?);
        assert_eq!(read?, "data");
        assert!(write.is_err(), "a read-only bind must refuse writes");
        // The teardown unmounted before removing: the source is intact.
        assert_eq!(std::fs::read_to_string(src.join("f"))?, "data");
        Ok(())
    }
}
