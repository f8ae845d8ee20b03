//! The pod cgroup manager's one job so far: runc creates a pod's `cgroup_parent` in every
//! hierarchy but never removes it, so the kubelet removes it once the sandbox is gone.

use std::path::{Path, PathBuf};

use tracing::debug;

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The pod cgroup's directory in every mounted hierarchy (cgroup v1 controllers, or the v2
/// root), whether it exists or not.
fn pod_cgroup_dirs(parent: &str) -> Vec<PathBuf> {
    let rel = parent.trim_start_matches('/');
    if rel.is_empty() {
        return Vec::new();
    }
    let mut bases = vec![PathBuf::from(CGROUP_ROOT)];
    if let Ok(rd) = std::fs::read_dir(CGROUP_ROOT) {
        bases.extend(
            rd.flatten()
                // Symlinks like cpu,cpuacct name hierarchies already listed.
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path()),
        );
    }
    bases.into_iter().map(|b| b.join(rel)).collect()
}

/// Removes the (empty) pod cgroup `parent` (e.g. `/kubepods/besteffort/pod<uid>`) from every
/// hierarchy. Container cgroups below it are runc's and gone once their containers are removed.
pub fn remove_pod_cgroup(parent: &str) {
    for dir in pod_cgroup_dirs(parent) {
        remove_tree(&dir);
    }
}

/// rmdir, deepest first: cgroup directories can only be removed when empty of children.
fn remove_tree(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path());
            }
        }
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => debug!(dir = %dir.display(), "removed pod cgroup"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => debug!(dir = %dir.display(), error = %e, "cannot remove pod cgroup"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirs_are_per_hierarchy() {
        let dirs = pod_cgroup_dirs("/kubepods/podx");
        assert!(
            dirs.iter()
                .all(|d| d.starts_with(CGROUP_ROOT) && d.ends_with("kubepods/podx"))
        );
        assert!(pod_cgroup_dirs("/").is_empty());
    }
}
