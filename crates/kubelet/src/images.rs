//! Images the project builds itself, and loading image tarballs into containerd.
//!
//! * The sandbox ("pause") image, from the static program in `pause/pause.c` (build.rs).
//! * [`ImageBuilder`]: a one-layer OCI image-layout tarball from in-memory files or a host
//!   directory, byte-reproducible (sorted entries, mtime 0, uid/gid 0, fixed JSON), so the
//!   same input always has the same digest. Tests use it for busybox images from the host's
//!   busybox-static ([`busybox_image`]).
//! * [`import_image`] / [`import_dir`]: `ctr images import` into containerd's `k8s.io` namespace,
//!   the one CRI reads, for the pause image and the air-gap directory `<data-dir>/agent/images`.
//!
//! Layers are stored uncompressed (`application/vnd.oci.image.layer.v1.tar`): they are small,
//! containerd and registries accept them, and it keeps compression (and its library version)
//! out of the digest.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use tracing::{info, warn};

/// The sandbox image every pod's pause container runs; containerd's `sandbox_image`.
pub const PAUSE_IMAGE: &str = "rkube.local/pause:3.9";

/// The containerd namespace CRI uses; images must be imported there to be seen by pods.
pub const CRI_NAMESPACE: &str = "k8s.io";

/// The static pause binary built by build.rs.
pub static PAUSE_BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pause"));

/// How long one `ctr images import` may take before it is killed.
const IMPORT_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot put {path:?} into a tar layer: {reason}")]
    Tar { path: String, reason: &'static str },
    #[error("{} is dynamically linked; an image without libc needs a static binary (busybox-static)", .0.display())]
    NotStatic(PathBuf),
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{command} failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("{command} did not finish within {IMPORT_TIMEOUT:?}")]
    Timeout { command: String },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ImageError + '_ {
    move |source| ImageError::Io {
        path: path.to_owned(),
        source,
    }
}

fn sha256_hex(data: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    let mut hex = String::with_capacity(64);
    for b in digest.as_ref() {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// OCI's name for the machine's architecture.
fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

// ---- tar ------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum EntryKind {
    Dir,
    File(Vec<u8>),
    Symlink(String),
}

#[derive(Clone, Debug)]
struct Entry {
    mode: u32,
    kind: EntryKind,
}

/// Writes `value` as zero-padded octal filling `field` but its last byte (a NUL).
fn octal(field: &mut [u8], value: u64) -> bool {
    let digits = field.len() - 1;
    let s = format!("{value:0digits$o}");
    if s.len() > digits {
        return false;
    }
    field[..digits].copy_from_slice(s.as_bytes());
    field[digits] = 0;
    true
}

/// Appends one ustar entry (header plus padded data) to `out`. Owner 0:0, mtime 0.
fn tar_entry(out: &mut Vec<u8>, path: &str, entry: &Entry) -> Result<(), ImageError> {
    let bad = |reason| ImageError::Tar {
        path: path.to_owned(),
        reason,
    };
    let name = match entry.kind {
        EntryKind::Dir => format!("{path}/"),
        _ => path.to_owned(),
    };
    let mut h = [0u8; 512];
    // ustar keeps names over 100 bytes as prefix (≤155) + '/' + name (≤100).
    if name.len() <= 100 {
        h[..name.len()].copy_from_slice(name.as_bytes());
    } else {
        let split = name
            .char_indices()
            .filter(|&(i, c)| c == '/' && i <= 155 && name.len() - i - 1 <= 100 && i > 0)
            .map(|(i, _)| i)
            .next()
            .ok_or_else(|| bad("path too long for ustar"))?;
        let (prefix, rest) = (&name[..split], &name[split + 1..]);
        h[..rest.len()].copy_from_slice(rest.as_bytes());
        h[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
    }
    let (typeflag, data, link): (u8, &[u8], &str) = match &entry.kind {
        EntryKind::Dir => (b'5', &[], ""),
        EntryKind::File(data) => (b'0', data, ""),
        EntryKind::Symlink(target) => (b'2', &[], target),
    };
    if link.len() > 100 {
        return Err(bad("symlink target over 100 bytes"));
    }
    let size = u64::try_from(data.len()).map_err(|_| bad("file too large"))?;
    let ok = octal(&mut h[100..108], u64::from(entry.mode & 0o7777))
        && octal(&mut h[108..116], 0)
        && octal(&mut h[116..124], 0)
        && octal(&mut h[124..136], size)
        && octal(&mut h[136..148], 0)
        && octal(&mut h[329..337], 0)
        && octal(&mut h[337..345], 0);
    if !ok {
        return Err(bad("file too large for ustar"));
    }
    h[156] = typeflag;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    // The checksum is computed with its own field read as spaces.
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    let cks = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(cks.as_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    out.resize(out.len().next_multiple_of(512), 0);
    Ok(())
}

fn tar_finish(out: &mut Vec<u8>) {
    out.resize(out.len() + 1024, 0);
}

// ---- image builder --------------------------------------------------------------------------

/// Builds a one-layer OCI image-layout tarball (what `ctr images import` and
/// `skopeo copy oci-archive:` read).
#[derive(Clone, Debug)]
pub struct ImageBuilder {
    reference: String,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    env: Vec<String>,
    working_dir: String,
    entries: BTreeMap<String, Entry>,
}

/// The result of [`ImageBuilder::build`].
#[derive(Clone, Debug)]
pub struct BuiltImage {
    /// The full reference, e.g. `rkube.local/pause:3.9`.
    pub reference: String,
    /// `sha256:…` of the image manifest: what a registry and containerd call the image.
    pub manifest_digest: String,
    /// The OCI image-layout tarball.
    pub tarball: Vec<u8>,
}

impl BuiltImage {
    /// Writes the tarball to `path` atomically (temp file + rename), so an importer never sees
    /// half a file. Missing parent directories are made: the air-gap directory of an agent
    /// that has not started yet does not exist.
    pub fn write_to(&self, path: &Path) -> Result<(), ImageError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        let tmp = path.with_extension("tar.tmp");
        std::fs::write(&tmp, &self.tarball).map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io_err(path))
    }
}

fn normalize(path: &str) -> Option<String> {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.is_empty() || parts.contains(&"..") {
        return None;
    }
    Some(parts.join("/"))
}

impl ImageBuilder {
    /// An empty image named `reference` (`registry/repo:tag`; `:latest` is added if untagged),
    /// with the usual `PATH` and working directory `/`.
    pub fn new(reference: &str) -> Self {
        let tagged = match reference.rsplit_once(':') {
            Some((_, tag)) if !tag.contains('/') => reference.to_owned(),
            _ => format!("{reference}:latest"),
        };
        ImageBuilder {
            reference: tagged,
            entrypoint: Vec::new(),
            cmd: Vec::new(),
            env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
            working_dir: "/".into(),
            entries: BTreeMap::new(),
        }
    }

    pub fn reference(&self) -> &str {
        &self.reference
    }

    pub fn entrypoint<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.entrypoint = args.into_iter().map(Into::into).collect();
        self
    }

    pub fn cmd<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.cmd = args.into_iter().map(Into::into).collect();
        self
    }

    /// Adds `KEY=value` to the image's environment.
    pub fn env(mut self, var: impl Into<String>) -> Self {
        self.env.push(var.into());
        self
    }

    pub fn working_dir(mut self, dir: impl Into<String>) -> Self {
        self.working_dir = dir.into();
        self
    }

    fn insert(&mut self, path: &str, entry: Entry) -> Result<(), ImageError> {
        let path = normalize(path).ok_or_else(|| ImageError::Tar {
            path: path.to_owned(),
            reason: "not a path inside the image",
        })?;
        // Parents first, so the layer is complete without relying on the unpacker.
        let mut parent = String::new();
        for part in path
            .split('/')
            .collect::<Vec<_>>()
            .split_last()
            .map_or(&[][..], |(_, p)| p)
        {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(part);
            self.entries.entry(parent.clone()).or_insert(Entry {
                mode: 0o755,
                kind: EntryKind::Dir,
            });
        }
        self.entries.insert(path, entry);
        Ok(())
    }

    /// Adds a directory with `mode` (e.g. `0o1777` for /tmp).
    pub fn dir(&mut self, path: &str, mode: u32) -> Result<&mut Self, ImageError> {
        self.insert(
            path,
            Entry {
                mode,
                kind: EntryKind::Dir,
            },
        )?;
        Ok(self)
    }

    /// Adds a regular file.
    pub fn file(
        &mut self,
        path: &str,
        mode: u32,
        content: impl Into<Vec<u8>>,
    ) -> Result<&mut Self, ImageError> {
        self.insert(
            path,
            Entry {
                mode,
                kind: EntryKind::File(content.into()),
            },
        )?;
        Ok(self)
    }

    /// Adds a symbolic link `path` → `target`.
    pub fn symlink(&mut self, path: &str, target: &str) -> Result<&mut Self, ImageError> {
        self.insert(
            path,
            Entry {
                mode: 0o777,
                kind: EntryKind::Symlink(target.to_owned()),
            },
        )?;
        Ok(self)
    }

    /// Copies the host directory `host` (files, directories, symlinks, with their modes) to
    /// `at` in the image. Other file types (devices, sockets) are refused.
    pub fn add_host_dir(&mut self, host: &Path, at: &str) -> Result<&mut Self, ImageError> {
        let mut names: Vec<_> = std::fs::read_dir(host)
            .map_err(io_err(host))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(io_err(host))?;
        names.sort();
        for name in names {
            let src = host.join(&name);
            let dst = format!("{}/{}", at.trim_end_matches('/'), name.to_string_lossy());
            let meta = std::fs::symlink_metadata(&src).map_err(io_err(&src))?;
            let mode = meta.permissions().mode() & 0o7777;
            let ft = meta.file_type();
            if ft.is_symlink() {
                let target = std::fs::read_link(&src).map_err(io_err(&src))?;
                self.symlink(&dst, &target.to_string_lossy())?;
            } else if ft.is_dir() {
                self.dir(&dst, mode)?;
                self.add_host_dir(&src, &dst)?;
            } else if ft.is_file() {
                let content = std::fs::read(&src).map_err(io_err(&src))?;
                self.file(&dst, mode, content)?;
            } else {
                return Err(ImageError::Tar {
                    path: src.display().to_string(),
                    reason: "only files, directories and symlinks can be copied",
                });
            }
        }
        Ok(self)
    }

    /// Builds the OCI image-layout tarball.
    pub fn build(&self) -> Result<BuiltImage, ImageError> {
        let mut layer = Vec::new();
        for (path, entry) in &self.entries {
            tar_entry(&mut layer, path, entry)?;
        }
        tar_finish(&mut layer);
        let layer_digest = sha256_hex(&layer);

        let mut config = serde_json::Map::new();
        config.insert("Env".into(), json!(self.env));
        if !self.entrypoint.is_empty() {
            config.insert("Entrypoint".into(), json!(self.entrypoint));
        }
        if !self.cmd.is_empty() {
            config.insert("Cmd".into(), json!(self.cmd));
        }
        config.insert("WorkingDir".into(), json!(self.working_dir));
        let config = json!({
            "created": "1970-01-01T00:00:00Z",
            "architecture": oci_arch(),
            "os": "linux",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer_digest}")]},
            "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "rkube ImageBuilder"}],
        });
        let config = config.to_string().into_bytes();
        let config_digest = sha256_hex(&config);

        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": format!("sha256:{config_digest}"),
                "size": config.len(),
            },
            "layers": [{
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": format!("sha256:{layer_digest}"),
                "size": layer.len(),
            }],
        })
        .to_string()
        .into_bytes();
        let manifest_digest = sha256_hex(&manifest);

        let tag = self.reference.rsplit_once(':').map_or("latest", |(_, t)| t);
        // io.containerd.image.name names the image on `ctr import`; ref.name is the tag skopeo
        // uses for `oci-archive:x.tar:TAG`.
        let index = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": format!("sha256:{manifest_digest}"),
                "size": manifest.len(),
                "annotations": {
                    "io.containerd.image.name": self.reference,
                    "org.opencontainers.image.ref.name": tag,
                },
                "platform": {"architecture": oci_arch(), "os": "linux"},
            }],
        })
        .to_string()
        .into_bytes();

        let file = |data: Vec<u8>| Entry {
            mode: 0o644,
            kind: EntryKind::File(data),
        };
        let dir = Entry {
            mode: 0o755,
            kind: EntryKind::Dir,
        };
        let mut out = Vec::with_capacity(layer.len() + 8192);
        tar_entry(
            &mut out,
            "oci-layout",
            &file(br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
        )?;
        tar_entry(&mut out, "index.json", &file(index))?;
        tar_entry(&mut out, "blobs", &dir)?;
        tar_entry(&mut out, "blobs/sha256", &dir)?;
        let mut blobs = [
            (config_digest, config),
            (layer_digest, layer),
            (manifest_digest.clone(), manifest),
        ];
        blobs.sort_by(|a, b| a.0.cmp(&b.0));
        for (digest, data) in blobs {
            tar_entry(&mut out, &format!("blobs/sha256/{digest}"), &file(data))?;
        }
        tar_finish(&mut out);
        Ok(BuiltImage {
            reference: self.reference.clone(),
            manifest_digest: format!("sha256:{manifest_digest}"),
            tarball: out,
        })
    }
}

/// The sandbox image [`PAUSE_IMAGE`]: just `/pause`.
pub fn pause_image() -> Result<BuiltImage, ImageError> {
    let mut b = ImageBuilder::new(PAUSE_IMAGE).entrypoint(["/pause"]);
    b.file("pause", 0o755, PAUSE_BINARY)?;
    b.build()
}

/// True if the ELF file has no program interpreter, i.e. runs without a dynamic loader.
fn is_static_elf(bin: &[u8]) -> bool {
    let u16_at = |o: usize| bin.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        bin.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |o: usize| {
        bin.get(o..o + 8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_le_bytes)
    };
    // Only 64-bit little-endian ELF is expected here (the host's own binaries).
    if bin.get(..6) != Some(b"\x7fELF\x02\x01") {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    let Ok(phoff) = usize::try_from(phoff) else {
        return false;
    };
    const PT_INTERP: u32 = 3;
    (0..usize::from(phnum))
        .all(|i| u32_at(phoff + i * usize::from(phentsize)).is_some_and(|t| t != PT_INTERP))
}

/// A busybox image from the host's static busybox (Debian's busybox-static): `/bin/busybox`, a
/// symlink per applet, `/etc/passwd`, `/etc/group`, `/tmp` (1777) and `/var/www/index.html`.
/// Its command is `sh`.
pub fn busybox_image(busybox: &Path, reference: &str) -> Result<ImageBuilder, ImageError> {
    let bin = std::fs::read(busybox).map_err(io_err(busybox))?;
    if !is_static_elf(&bin) {
        return Err(ImageError::NotStatic(busybox.to_owned()));
    }
    let out = std::process::Command::new(busybox)
        .arg("--list")
        .output()
        .map_err(|source| ImageError::Spawn {
            program: busybox.display().to_string(),
            source,
        })?;
    if !out.status.success() {
        return Err(ImageError::Command {
            command: format!("{} --list", busybox.display()),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    let mut b = ImageBuilder::new(reference).cmd(["sh"]);
    for d in [
        "sbin", "usr/bin", "usr/sbin", "root", "proc", "sys", "dev", "home",
    ] {
        b.dir(d, 0o755)?;
    }
    b.dir("tmp", 0o1777)?;
    b.file("bin/busybox", 0o755, bin)?;
    for applet in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        if applet != "busybox" {
            b.symlink(&format!("bin/{applet}"), "busybox")?;
        }
    }
    b.file(
        "etc/passwd",
        0o644,
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )?;
    b.file("etc/group", 0o644, "root:x:0:\nnogroup:x:65534:\n")?;
    b.file(
        "var/www/index.html",
        0o644,
        "hello from rkube busybox image\n",
    )?;
    Ok(b)
}

// ---- import ---------------------------------------------------------------------------------

/// Imports an image tarball (OCI layout or docker save) into containerd's [`CRI_NAMESPACE`]
/// with `ctr`, unpacking it so the first container starts without more work.
pub async fn import_image(ctr: &Path, address: &Path, tarball: &Path) -> Result<(), ImageError> {
    let start = std::time::Instant::now();
    let mut cmd = tokio::process::Command::new(ctr);
    cmd.arg("--address")
        .arg(address)
        .args(["--namespace", CRI_NAMESPACE, "images", "import"])
        .arg(tarball)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let command = format!("{} images import {}", ctr.display(), tarball.display());
    let out = cmd.output();
    let out = match tokio::time::timeout(IMPORT_TIMEOUT, out).await {
        Ok(out) => out.map_err(|source| ImageError::Spawn {
            program: ctr.display().to_string(),
            source,
        })?,
        Err(_) => return Err(ImageError::Timeout { command }),
    };
    if !out.status.success() {
        return Err(ImageError::Command {
            command,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    info!(tarball = %tarball.display(), took = ?start.elapsed(),
        output = %String::from_utf8_lossy(&out.stdout).trim(), "imported image");
    Ok(())
}

/// What [`import_dir`] did.
#[derive(Debug, Default)]
pub struct ImportReport {
    pub imported: Vec<PathBuf>,
    pub failed: Vec<(PathBuf, ImageError)>,
}

/// Imports every `*.tar` in `dir` (the air-gap directory), in name order. A missing directory
/// imports nothing; a tarball that fails is logged and reported, and the others still load.
pub async fn import_dir(
    ctr: &Path,
    address: &Path,
    dir: &Path,
) -> Result<ImportReport, ImageError> {
    let mut report = ImportReport::default();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(report),
        Err(e) => return Err(io_err(dir)(e)),
    };
    let mut tars = Vec::new();
    for entry in rd {
        let path = entry.map_err(io_err(dir))?.path();
        if path.extension().is_some_and(|e| e == "tar") && path.is_file() {
            tars.push(path);
        }
    }
    tars.sort();
    for tar in tars {
        match import_image(ctr, address, &tar).await {
            Ok(()) => report.imported.push(tar),
            Err(e) => {
                warn!(tarball = %tar.display(), error = %e, "cannot import air-gap image");
                report.failed.push((tar, e));
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pause_binary_is_static() {
        assert!(PAUSE_BINARY.len() > 1000);
        assert!(is_static_elf(PAUSE_BINARY));
    }

    #[test]
    fn images_are_reproducible() -> Result<(), ImageError> {
        let a = pause_image()?;
        let b = pause_image()?;
        assert_eq!(a.manifest_digest, b.manifest_digest);
        assert_eq!(a.tarball, b.tarball);
        assert_eq!(a.reference, PAUSE_IMAGE);
        Ok(())
    }

    #[test]
    fn references_get_a_tag() {
        assert_eq!(ImageBuilder::new("x/y").reference(), "x/y:latest");
        assert_eq!(
            ImageBuilder::new("127.0.0.1:5000/y").reference(),
            "127.0.0.1:5000/y:latest"
        );
        assert_eq!(ImageBuilder::new("a/b:1.0").reference(), "a/b:1.0");
    }

    #[test]
    fn bad_paths_are_refused() {
        let mut b = ImageBuilder::new("t");
        assert!(b.file("../x", 0o644, "x").is_err());
        assert!(b.file("/", 0o644, "x").is_err());
        // Too long for ustar's prefix + name: accepted, refused when the layer is written.
        let mut long = ImageBuilder::new("t");
        assert!(long.file(&"a/".repeat(200), 0o644, "x").is_ok());
        assert!(long.build().is_err());
    }

    /// The system's tar must read what we write, names, modes, links and long paths included.
    #[test]
    fn system_tar_reads_layers() -> Result<(), Box<dyn std::error::Error>> {
        let mut b = ImageBuilder::new("t:1");
        let long = format!("{}/file", "d".repeat(120));
        b.file("bin/tool", 0o755, "#!/bin/sh\n")?
            .symlink("bin/alias", "tool")?
            .dir("tmp", 0o1777)?
            .file(&long, 0o600, vec![7u8; 700])?;
        let mut layer = Vec::new();
        for (path, entry) in &b.entries {
            tar_entry(&mut layer, path, entry)?;
        }
        tar_finish(&mut layer);
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("layer.tar");
        std::fs::write(&file, &layer)?;
        let out = std::process::Command::new("tar")
            .arg("-tvf")
            .arg(&file)
            .output()?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listing = String::from_utf8_lossy(&out.stdout);
        assert!(listing.contains("-rwxr-xr-x 0/0"), "{listing}");
        assert!(listing.contains("bin/alias -> tool"), "{listing}");
        assert!(listing.contains("drwxrwxrwt 0/0"), "{listing}");
        assert!(listing.contains(&long), "{listing}");
        assert!(listing.contains(" 700 "), "{listing}");
        Ok(())
    }

    #[test]
    fn pause_exits_zero_on_sigterm() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let bin = dir.path().join("pause");
        std::fs::write(&bin, PAUSE_BINARY)?;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755))?;
        let mut child = std::process::Command::new(&bin)
            .stderr(std::process::Stdio::piped())
            .spawn()?;
        std::thread::sleep(Duration::from_millis(100));
        assert!(child.try_wait()?.is_none(), "pause exited by itself");
        let pid = i32::try_from(child.id())?;
        // SAFETY: plain kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let out = child.wait_with_output()?;
        assert_eq!(out.status.code(), Some(0));
        assert!(String::from_utf8_lossy(&out.stderr).contains("SIGTERM"));
        Ok(())
    }
}
