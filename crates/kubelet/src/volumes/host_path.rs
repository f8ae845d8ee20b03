//! `hostPath` (pkg/volume/hostpath): the node's path itself, after upstream's type checks
//! (`DirectoryOrCreate` and `FileOrCreate` create it), with upstream's messages.

use std::io;
use std::os::unix::fs::FileTypeExt as _;
use std::path::{Path, PathBuf};

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Pod, Volume};

use super::{VolumeHost, VolumePlugin, go_error};

pub struct HostPathPlugin;

impl VolumePlugin for HostPathPlugin {
    fn name(&self) -> &'static str {
        "kubernetes.io/host-path"
    }

    fn can_support(&self, v: &Volume) -> bool {
        v.host_path.is_some()
    }

    fn host_path(&self, v: &Volume, _dir: &Path) -> PathBuf {
        PathBuf::from(v.host_path.as_ref().map_or("", |h| h.path.as_str()))
    }

    fn set_up<'a>(
        &'a self,
        _host: &'a VolumeHost,
        _pod: &'a Pod,
        v: &'a Volume,
        _dir: &'a Path,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let src = v.host_path.clone().unwrap_or_default();
            check_type(Path::new(&src.path), src.type_.as_deref().unwrap_or(""))
        })
    }
}

#[derive(PartialEq, Eq)]
enum FileType {
    Directory,
    File,
    Socket,
    CharDevice,
    BlockDevice,
    Other,
}

/// Upstream's `GetFileType` (follows symlinks, as `os.Stat`).
fn file_type(path: &Path) -> Result<FileType, String> {
    let t = std::fs::metadata(path)
        .map_err(|e| format!("stat {}: {}", path.display(), go_error(&e)))?
        .file_type();
    Ok(if t.is_dir() {
        FileType::Directory
    } else if t.is_file() {
        FileType::File
    } else if t.is_socket() {
        FileType::Socket
    } else if t.is_char_device() {
        FileType::CharDevice
    } else if t.is_block_device() {
        FileType::BlockDevice
    } else {
        FileType::Other
    })
}

fn exists(path: &Path) -> bool {
    std::fs::metadata(path).is_ok()
}

fn is_type(path: &Path, want: FileType, what: &str, must_exist: bool) -> Result<(), String> {
    if must_exist && !exists(path) {
        return Err(format!(
            "path {:?} does not exist",
            path.display().to_string()
        ));
    }
    if file_type(path)? == want {
        Ok(())
    } else {
        Err(format!(
            "hostPath type check failed: {} is not a {what}",
            path.display()
        ))
    }
}

/// Upstream's `checkTypeInternal`.
pub fn check_type(path: &Path, type_: &str) -> Result<(), String> {
    match type_ {
        "" => Ok(()),
        "DirectoryOrCreate" => {
            if !exists(path) {
                // MkdirAll with 0755 (filtered by the umask, as upstream).
                return std::fs::create_dir_all(path)
                    .map_err(|e| format!("mkdir {}: {}", path.display(), go_error(&e)));
            }
            is_type(path, FileType::Directory, "directory", true)
        }
        "Directory" => is_type(path, FileType::Directory, "directory", true),
        "FileOrCreate" => {
            if !exists(path) {
                use std::os::unix::fs::OpenOptionsExt as _;
                return match std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o644)
                    .open(path)
                {
                    Ok(_) => Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
                    Err(e) => Err(format!("open {}: {}", path.display(), go_error(&e))),
                };
            }
            is_type(path, FileType::File, "file", true)
        }
        "File" => is_type(path, FileType::File, "file", true),
        "Socket" => is_type(path, FileType::Socket, "socket file", false),
        "CharDevice" => is_type(path, FileType::CharDevice, "character device", false),
        "BlockDevice" => is_type(path, FileType::BlockDevice, "block device", false),
        other => Err(format!("{other} is an invalid volume type")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_checks_as_upstream() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        let new_dir = d.join("a/b");
        assert_eq!(check_type(&new_dir, "DirectoryOrCreate"), Ok(()));
        assert!(new_dir.is_dir());
        let f = d.join("f");
        assert_eq!(check_type(&f, "FileOrCreate"), Ok(()));
        assert!(f.is_file());
        assert_eq!(check_type(&f, "File"), Ok(()));
        assert_eq!(
            check_type(&new_dir, "File"),
            Err(format!(
                "hostPath type check failed: {} is not a file",
                new_dir.display()
            ))
        );
        let missing = d.join("missing");
        assert_eq!(
            check_type(&missing, "File"),
            Err(format!("path \"{}\" does not exist", missing.display()))
        );
        assert_eq!(
            check_type(&f, "Directory"),
            Err(format!(
                "hostPath type check failed: {} is not a directory",
                f.display()
            ))
        );
        assert_eq!(check_type(Path::new("/dev/null"), "CharDevice"), Ok(()));
        assert_eq!(
            check_type(&missing, "Socket"),
            Err(format!(
                "stat {}: no such file or directory",
                missing.display()
            ))
        );
        assert_eq!(
            check_type(&f, "Bogus"),
            Err("Bogus is an invalid volume type".into())
        );
        Ok(())
    }
}
