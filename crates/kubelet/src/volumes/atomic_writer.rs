//! Upstream's atomic writer (pkg/volume/util/atomic_writer.go): a volume's files live in a
//! timestamped directory `..<time>.<n>`, `..data` is a symlink to it, and every user-visible
//! top-level name is a symlink through `..data`. An update writes a new timestamped directory
//! and swaps `..data` with one `rename(2)`, so a reader sees either the old or the new set of
//! files, never a mix. (A `subPath` mount binds a file of one generation and so never sees
//! updates, as upstream.)

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

const DATA_DIR: &str = "..data";
const DATA_DIR_TMP: &str = "..data_tmp";
const MAX_FILE_NAME_LENGTH: usize = 255;
const MAX_PATH_LENGTH: usize = 4096;

/// One file of a volume's payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileProjection {
    pub data: Vec<u8>,
    /// Permission bits (`defaultMode` or the item's `mode`).
    pub mode: u32,
}

/// A payload by relative path.
pub type Payload = BTreeMap<String, FileProjection>;

/// Upstream's path validation, with its messages.
pub fn validate_path(target: &str) -> Result<(), String> {
    if target.is_empty() {
        return Err(format!("invalid path: must not be empty: {target:?}"));
    }
    if target.starts_with('/') {
        return Err(format!("invalid path: must be relative path: {target}"));
    }
    if target.len() > MAX_PATH_LENGTH {
        return Err(format!(
            "invalid path: must be less than or equal to {MAX_PATH_LENGTH} characters"
        ));
    }
    let items: Vec<&str> = target.split('/').collect();
    for item in &items {
        if *item == ".." {
            return Err(format!("invalid path: must not contain '..': {target}"));
        }
        if item.len() > MAX_FILE_NAME_LENGTH {
            return Err(format!(
                "invalid path: filenames must be less than or equal to {MAX_FILE_NAME_LENGTH} characters"
            ));
        }
    }
    if items[0].starts_with("..") && items[0].len() > 2 {
        return Err(format!("invalid path: must not start with '..': {target}"));
    }
    Ok(())
}

/// Go's `filepath.Clean` for relative paths: no empty or `.` components.
fn clean(p: &str) -> String {
    let parts: Vec<&str> = p
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}

/// Errors of [`write`]: a bad payload path (upstream's message) or a filesystem failure.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{0}")]
    InvalidPath(String),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> WriteError {
    move |source| WriteError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// Writes `payload` into `target` (which must exist) atomically. Returns whether anything
/// changed (false when the files on disk already match).
pub fn write(target: &Path, payload: &Payload) -> Result<bool, WriteError> {
    // (1) validate and clean the payload's paths.
    let mut clean_payload: BTreeMap<String, &FileProjection> = BTreeMap::new();
    for (k, v) in payload {
        validate_path(k).map_err(WriteError::InvalidPath)?;
        clean_payload.insert(clean(k), v);
    }
    // (2) the current generation, if any.
    let data_link = target.join(DATA_DIR);
    let old_ts = match std::fs::read_link(&data_link) {
        Ok(p) => Some(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err("readlink", &data_link)(e)),
    };
    let old_ts_path = old_ts.as_ref().map(|p| target.join(p));
    let mut to_remove = BTreeSet::new();
    if let Some(old) = &old_ts_path {
        // (3) paths of the old generation the new one lacks; (4) whether content changed.
        to_remove = paths_to_remove(&clean_payload, old);
        if !should_write(&clean_payload, old) && to_remove.is_empty() {
            // Up to date; the visible links may still be missing (upstream issue 121472).
            create_user_visible_files(target, &clean_payload)?;
            return Ok(false);
        }
    }
    // (5) a new timestamped directory; (6) the payload into it.
    let ts_dir = new_timestamp_dir(target)?;
    let write_all = || -> Result<(), WriteError> {
        for (rel, f) in &clean_payload {
            let full = ts_dir.join(rel);
            if let Some(parent) = full.parent() {
                std::fs::create_dir_all(parent).map_err(io_err("mkdir", parent))?;
            }
            std::fs::write(&full, &f.data).map_err(io_err("write", &full))?;
            // Set after the write: the create mode is filtered by the umask.
            std::fs::set_permissions(&full, std::fs::Permissions::from_mode(f.mode & 0o7777))
                .map_err(io_err("chmod", &full))?;
        }
        // (8) `..data_tmp` → the new directory, renamed over `..data`.
        let tmp_link = target.join(DATA_DIR_TMP);
        let _ = std::fs::remove_file(&tmp_link);
        let name = ts_dir.file_name().unwrap_or_default();
        std::os::unix::fs::symlink(name, &tmp_link).map_err(io_err("symlink", &tmp_link))?;
        std::fs::rename(&tmp_link, &data_link).map_err(io_err("rename", &data_link))?;
        Ok(())
    };
    if let Err(e) = write_all() {
        let _ = std::fs::remove_dir_all(&ts_dir);
        return Err(e);
    }
    // (9) visible links for new top-level names; (10) drop the links of removed names.
    create_user_visible_files(target, &clean_payload)?;
    for p in &to_remove {
        if !p.contains('/') {
            let visible = target.join(p);
            match std::fs::remove_file(&visible) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(io_err("remove", &visible)(e));
                }
                _ => {}
            }
        }
    }
    // (11) the old generation.
    if let Some(old) = old_ts_path
        && old != ts_dir
    {
        let _ = std::fs::remove_dir_all(old);
    }
    Ok(true)
}

/// Whether any file of the payload differs from (or is missing in) the old generation.
fn should_write(payload: &BTreeMap<String, &FileProjection>, old: &Path) -> bool {
    payload.iter().any(|(rel, f)| {
        let p = old.join(rel);
        match std::fs::symlink_metadata(&p) {
            Err(_) => true,
            Ok(_) => std::fs::read(&p).map_or(true, |d| d != f.data),
        }
    })
}

/// Relative paths (files and directories) in the old generation that the new payload does not
/// have, directly or as a parent directory.
fn paths_to_remove(payload: &BTreeMap<String, &FileProjection>, old: &Path) -> BTreeSet<String> {
    let mut new_paths: BTreeSet<String> = BTreeSet::new();
    for rel in payload.keys() {
        let mut p = rel.as_str();
        new_paths.insert(p.to_owned());
        while let Some((parent, _)) = p.rsplit_once('/') {
            new_paths.insert(parent.to_owned());
            p = parent;
        }
    }
    let mut old_paths = BTreeSet::new();
    fn walk(dir: &Path, prefix: &str, out: &mut BTreeSet<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&e.path(), &rel, out);
            }
            out.insert(rel);
        }
    }
    walk(old, "", &mut old_paths);
    old_paths.difference(&new_paths).cloned().collect()
}

fn create_user_visible_files(
    target: &Path,
    payload: &BTreeMap<String, &FileProjection>,
) -> Result<(), WriteError> {
    for rel in payload.keys() {
        let top = rel.split('/').next().unwrap_or(rel);
        let visible = target.join(top);
        if std::fs::symlink_metadata(&visible).is_err() {
            std::os::unix::fs::symlink(Path::new(DATA_DIR).join(top), &visible)
                .map_err(io_err("symlink", &visible))?;
        }
    }
    Ok(())
}

fn new_timestamp_dir(target: &Path) -> Result<PathBuf, WriteError> {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let stamp = k8s_openapi::jiff::Timestamp::now().strftime("..%Y_%m_%d_%H_%M_%S.");
    loop {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = target.join(format!("{stamp}{}", nanos.wrapping_add(n)));
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
                    .map_err(io_err("chmod", &dir))?;
                return Ok(dir);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err("mkdir", &dir)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt as _;

    fn file(data: &str, mode: u32) -> FileProjection {
        FileProjection {
            data: data.as_bytes().to_vec(),
            mode,
        }
    }

    #[test]
    fn paths_are_validated_as_upstream() {
        assert!(validate_path("a/b").is_ok());
        assert!(validate_path("..a").is_err());
        assert!(validate_path("a/../b").is_err());
        assert!(validate_path("/abs").is_err());
        assert!(validate_path("").is_err());
        assert!(validate_path("..").is_err());
        assert!(validate_path("a/..b").is_ok());
    }

    #[test]
    fn writes_swap_generations_atomically() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let t = dir.path();
        let mut p = Payload::new();
        p.insert("a".into(), file("one", 0o644));
        p.insert("sub/b".into(), file("two", 0o400));
        assert!(write(t, &p)?);
        let gen1 = std::fs::read_link(t.join("..data"))?;
        assert!(gen1.to_string_lossy().starts_with(".."));
        assert_eq!(std::fs::read_to_string(t.join("a"))?, "one");
        assert_eq!(std::fs::read_to_string(t.join("sub/b"))?, "two");
        assert_eq!(std::fs::read_link(t.join("a"))?, PathBuf::from("..data/a"));
        assert_eq!(std::fs::metadata(t.join("sub/b"))?.mode() & 0o777, 0o400);
        // Unchanged: nothing written, same generation.
        assert!(!write(t, &p)?);
        assert_eq!(std::fs::read_link(t.join("..data"))?, gen1);
        // Changed: a new generation, the old one gone, a removed name's link gone.
        p.insert("a".into(), file("uno", 0o644));
        p.remove("sub/b");
        p.insert("c".into(), file("three", 0o644));
        assert!(write(t, &p)?);
        let gen2 = std::fs::read_link(t.join("..data"))?;
        assert_ne!(gen1, gen2);
        assert!(!t.join(&gen1).exists());
        assert_eq!(std::fs::read_to_string(t.join("a"))?, "uno");
        assert_eq!(std::fs::read_to_string(t.join("c"))?, "three");
        assert!(std::fs::symlink_metadata(t.join("sub")).is_err());
        Ok(())
    }
}
