//! Pod volumes: upstream's volume manager reduced to what a single-binary node needs. Every
//! volume of a pod is set up under `<data-dir>/agent/kubelet/pods/<uid>/volumes/<plugin>/<name>`
//! (upstream's `/var/lib/kubelet/pods/<uid>/volumes/kubernetes.io~<plugin>/<name>`) before the
//! pod's sandbox and containers start, and set up again at every pod sync so ConfigMap, Secret
//! and downward-API content follows the API; everything is unmounted and removed when the pod
//! goes (or finishes), and pod directories nobody owns are swept after a kubelet restart.
//!
//! One module per volume type, each a [`VolumePlugin`]; [`container_mounts`] is upstream's
//! `makeMounts` (volumeMounts, subPath/subPathExpr, propagation, the managed `/etc/hosts`,
//! the termination-message file).

pub mod atomic_writer;
pub mod config_map;
pub mod downward_api;
pub mod empty_dir;
pub mod error;
pub mod etc_hosts;
pub mod host_path;
pub mod local;
pub mod local_storage;
pub mod nfs;
pub mod persistent_volume_claim;
pub mod projected;
pub mod secret;
pub mod service_account_token;

use std::collections::HashMap;
use std::ffi::CString;
use std::io;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Container, Pod, Volume};
use tracing::{debug, warn};

use crate::cri::api;
use crate::paths::AgentDirs;
pub use error::{MountStage, VolumeError};

/// The longest one volume's set-up may take (API reads included).
const SET_UP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// What volume plugins may use besides the pod.
pub struct VolumeHost {
    pub client: kube::Client,
    pub dirs: AgentDirs,
    /// Node allocatable memory (bytes) and cpu (millicores): the default size of memory-backed
    /// volumes and the value of `resourceFieldRef` limits a container does not set.
    pub node_memory: i64,
    pub node_milli_cpu: i64,
    /// ServiceAccount tokens of projected volumes, cached until they need refreshing.
    pub tokens: service_account_token::TokenManager,
    /// This node's name: persistent volumes' node affinity is checked against its Node.
    pub node_name: String,
    /// The kubelet's event recorder: events a volume's repair or expansion is worth to the
    /// pod's owner (failures are the pod worker's `FailedMount`).
    pub events: client_go::events::Recorder,
}

/// One volume type (upstream's `VolumePlugin` + `Mounter`).
pub trait VolumePlugin: Sync {
    /// Upstream's plugin name, e.g. `kubernetes.io/empty-dir`; its directory uses `~` for `/`.
    fn name(&self) -> &'static str;
    fn can_support(&self, v: &Volume) -> bool;
    /// The host path containers mount (the volume's directory unless the volume is elsewhere).
    fn host_path(&self, _v: &Volume, dir: &Path) -> PathBuf {
        dir.to_owned()
    }
    /// Whether containers always get the volume read-only (configMap, secret, downwardAPI,
    /// projected), whatever their `readOnly` says.
    fn read_only(&self) -> bool {
        false
    }
    /// Whether containers get this volume read-only (the volume's own `readOnly` for claims).
    fn volume_read_only(&self, _v: &Volume) -> bool {
        self.read_only()
    }
    /// Sets the volume up at `dir`, or refreshes it; idempotent. The error is the message of
    /// upstream's `MountVolume.SetUp failed` event.
    fn set_up<'a>(
        &'a self,
        host: &'a VolumeHost,
        pod: &'a Pod,
        v: &'a Volume,
        dir: &'a Path,
    ) -> BoxFuture<'a, Result<(), String>>;
    /// [`Self::set_up`] with the error as the event shows it; plugins whose failures come
    /// before the set-up itself (a claim not bound yet) say so here.
    fn set_up_volume<'a>(
        &'a self,
        host: &'a VolumeHost,
        pod: &'a Pod,
        v: &'a Volume,
        dir: &'a Path,
    ) -> BoxFuture<'a, Result<(), VolumeError>> {
        Box::pin(async move {
            self.set_up(host, pod, v, dir)
                .await
                .map_err(|message| VolumeError::set_up(&v.name, message))
        })
    }
}

static PLUGINS: &[&dyn VolumePlugin] = &[
    &empty_dir::EmptyDirPlugin,
    &host_path::HostPathPlugin,
    &config_map::ConfigMapPlugin,
    &secret::SecretPlugin,
    &downward_api::DownwardApiPlugin,
    &projected::ProjectedPlugin,
    &persistent_volume_claim::PersistentVolumeClaimPlugin,
    &nfs::NfsPlugin,
];

fn plugin_for(v: &Volume) -> Option<&'static dyn VolumePlugin> {
    PLUGINS.iter().copied().find(|p| p.can_support(v))
}

/// Where a pod's volumes are on the host.
#[derive(Clone, Debug, Default)]
pub struct PodVolumes {
    by_name: HashMap<String, MountedVolume>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountedVolume {
    pub host_path: PathBuf,
    pub read_only: bool,
}

impl PodVolumes {
    pub fn get(&self, name: &str) -> Option<&MountedVolume> {
        self.by_name.get(name)
    }
}

/// Sets up and tears down pod volumes.
pub struct VolumeManager {
    host: VolumeHost,
}

impl VolumeManager {
    pub fn new(host: VolumeHost) -> Self {
        VolumeManager { host }
    }

    pub fn dirs(&self) -> &AgentDirs {
        &self.host.dirs
    }

    /// Sets up (or refreshes) every volume of `pod`. The host paths of all its volumes are
    /// returned even when some failed (a volume set up earlier keeps serving its containers).
    pub async fn set_up(&self, pod: &Pod) -> (PodVolumes, Vec<VolumeError>) {
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        let mut out = PodVolumes::default();
        let mut errors = Vec::new();
        let volumes = pod.spec.as_ref().and_then(|s| s.volumes.as_ref());
        for v in volumes.into_iter().flatten() {
            let Some(plugin) = plugin_for(v) else {
                errors.push(VolumeError::set_up(
                    &v.name,
                    "no volume plugin matched".into(),
                ));
                continue;
            };
            let dir = self
                .host
                .dirs
                .pod_volume_dir(uid, &plugin.name().replace('/', "~"), &v.name);
            // A hung API server must not hold the pod's worker (upstream's mount wait ends
            // too); the file writes themselves are synchronous and never cut short.
            let result = tokio::time::timeout(
                SET_UP_TIMEOUT,
                plugin.set_up_volume(&self.host, pod, v, &dir),
            )
            .await
            .unwrap_or_else(|_| {
                Err(VolumeError::set_up(
                    &v.name,
                    "timed out waiting for the condition".into(),
                ))
            });
            if let Err(e) = result {
                errors.push(e);
            }
            out.by_name.insert(
                v.name.clone(),
                MountedVolume {
                    host_path: plugin.host_path(v, &dir),
                    read_only: plugin.volume_read_only(v),
                },
            );
        }
        (out, errors)
    }

    /// Unmounts and removes the pod's volume directories (a finished pod keeps its other
    /// files, such as termination messages, until it is deleted).
    pub fn tear_down_volumes(&self, uid: &str) -> io::Result<()> {
        self.host.tokens.forget_pod(uid);
        let pod = self.host.dirs.pod_dir(uid);
        // subPath binds first: they would keep an unmounted tmpfs alive.
        remove_unmounted(&pod.join("volume-subpaths"))?;
        remove_unmounted(&pod.join("volumes"))
    }

    /// Unmounts and removes everything of the pod under the kubelet's pods directory.
    pub fn remove_pod_dir(&self, uid: &str) -> io::Result<()> {
        remove_unmounted(&self.host.dirs.pod_dir(uid))
    }

    /// UIDs of the pods that have a directory.
    pub fn pod_uids_on_disk(&self) -> Vec<String> {
        std::fs::read_dir(&self.host.dirs.kubelet_pods)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Mount points at or under `dir`, deepest first (from `/proc/self/mountinfo`).
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape_mountinfo(m)))
        .filter(|m| m.starts_with(dir))
        .collect();
    // Deepest first; a path mounted several times (stacked) is listed as often.
    out.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
    out
}

/// Whether something is mounted exactly at `path` (a bind mount of the same filesystem too,
/// which a device comparison would miss).
fn is_mounted_at(path: &Path) -> bool {
    let Ok(p) = path.canonicalize() else {
        return false;
    };
    mounts_under(&p).contains(&p)
}

/// The filesystem type of what is mounted exactly at `path` (the top of a stack), from
/// mountinfo alone, so a network filesystem is known before anything touches it: only the
/// parent is resolved, since resolving a mount point revalidates its root with the server.
pub(crate) fn mounted_fs_type(path: &Path) -> Option<String> {
    mounted_fs(path).map(|(fs_type, _)| fs_type)
}

/// The filesystem type and source of what is mounted exactly at `path` (the top of a
/// stack), from mountinfo alone (see [`mounted_fs_type`]).
pub(crate) fn mounted_fs(path: &Path) -> Option<(String, String)> {
    let p = path.parent()?.canonicalize().ok()?.join(path.file_name()?);
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines()
        .filter(|l| {
            l.split(' ')
                .nth(4)
                .map(|m| PathBuf::from(unescape_mountinfo(m)))
                == Some(p.clone())
        })
        .filter_map(|l| {
            let (_, rest) = l.split_once(" - ")?;
            let mut fields = rest.split(' ');
            let fs_type = fields.next()?.to_owned();
            let source = unescape_mountinfo(fields.next().unwrap_or_default());
            Some((fs_type, source))
        })
        .next_back()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 4);
        match code.and_then(|c| u8::from_str_radix(c, 8).ok()) {
            Some(b) => {
                out.push(char::from(b));
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

pub(crate) fn umount(path: &Path) -> io::Result<()> {
    let c = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
        let e = io::Error::last_os_error();
        // EINVAL: not a mount point (any more).
        if e.raw_os_error() != Some(libc::EINVAL) {
            return Err(e);
        }
    }
    Ok(())
}

/// Unmounts every pod volume (and subPath bind) under the agent's pods directory, leaving
/// the files: `rkube killall`, after the pods are gone, so the data dir can be removed.
/// Returns how many mounts were undone.
pub fn unmount_all(dirs: &AgentDirs) -> io::Result<usize> {
    unmount_under(&dirs.kubelet_pods)
}

/// Unmounts (lazily) everything mounted under `dir`, deepest first, leaving the files;
/// returns how many mounts were undone.
pub fn unmount_under(dir: &Path) -> io::Result<usize> {
    let Ok(dir) = dir.canonicalize() else {
        return Ok(0);
    };
    let mut undone = 0;
    for _ in 0..8 {
        let mounts = mounts_under(&dir);
        if mounts.is_empty() {
            break;
        }
        for m in mounts {
            umount(&m)?;
            undone += 1;
        }
    }
    Ok(undone)
}

/// Unmounts whatever is mounted under `dir`, then removes it — never through a mount.
fn remove_unmounted(dir: &Path) -> io::Result<()> {
    // mountinfo has resolved paths (the data dir may be reached through a symlink).
    let resolved = match dir.canonicalize() {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let dir = resolved.as_path();
    // Rounds, since unmounting one layer of a stacked mount may reveal another.
    for _ in 0..8 {
        let mounts = mounts_under(dir);
        if mounts.is_empty() {
            break;
        }
        for m in mounts {
            debug!(mount = %m.display(), "unmounting");
            umount(&m)?;
        }
    }
    if let Some(m) = mounts_under(dir).first() {
        return Err(io::Error::other(format!(
            "{} is still mounted; not removing {}",
            m.display(),
            dir.display()
        )));
    }
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Whether `dir` is the root of a mount (another device than its parent).
fn is_mount_point(dir: &Path) -> bool {
    let parent = dir.parent().unwrap_or(Path::new("/"));
    match (std::fs::metadata(dir), std::fs::metadata(parent)) {
        (Ok(d), Ok(p)) => d.dev() != p.dev() || d.ino() == p.ino(),
        _ => false,
    }
}

/// Mounts a tmpfs of `size` bytes on `dir` (created) unless one is there already.
pub(crate) fn mount_tmpfs(dir: &Path, size: Option<i64>) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    if is_mount_point(dir) {
        return Ok(());
    }
    let target = CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let options = CString::new(size.map(|s| format!("size={s}")).unwrap_or_default())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: valid NUL-terminated strings; tmpfs takes its options as a string. No flags,
    // as upstream's emptyDir.
    let rc = unsafe {
        libc::mount(
            c"tmpfs".as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            options.as_ptr().cast(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    debug!(dir = %dir.display(), ?size, "tmpfs mounted");
    Ok(())
}

/// Go's rendering of an OS error ("no such file or directory"), for upstream's messages.
pub(crate) fn go_error(e: &io::Error) -> String {
    let s = e.to_string();
    let s = s.split(" (os error").next().unwrap_or(&s).to_owned();
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
        None => s,
    }
}

/// The content of a `..data`-style volume (configMap, secret, downwardAPI, projected) written
/// into a memory-backed (`memory`) or plain directory at `dir`.
pub(crate) fn write_payload(
    host: &VolumeHost,
    pod: &Pod,
    dir: &Path,
    memory: bool,
    payload: &atomic_writer::Payload,
) -> Result<(), String> {
    let fresh = !dir.join("..data").exists();
    if memory {
        let size = empty_dir::memory_size(pod, host.node_memory, None);
        mount_tmpfs(dir, Some(size))
            .map_err(|e| format!("mounting tmpfs at {}: {}", dir.display(), go_error(&e)))?;
    } else {
        empty_dir::make_dir(dir)?;
    }
    match atomic_writer::write(dir, payload) {
        Ok(written) => {
            if written {
                debug!(dir = %dir.display(), files = payload.len(), "volume content written");
            }
            // New files (or a new volume) take the pod's fsGroup, read-only for the group.
            if (written || fresh)
                && let Some(gid) = fs_group(pod)
            {
                set_volume_ownership(dir, gid, true);
            }
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// The pod's `securityContext.fsGroup`.
pub(crate) fn fs_group(pod: &Pod) -> Option<i64> {
    pod.spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|s| s.fs_group)
}

/// Upstream's `SetVolumeOwnership` (fsGroupChangePolicy `Always`): everything under `dir`
/// (not following symlinks) gets group `gid` and group read (+write unless `read_only`)
/// permission; directories also group exec and setgid, so new files inherit the group.
pub(crate) fn set_volume_ownership(dir: &Path, gid: i64, read_only: bool) {
    use std::os::unix::fs::PermissionsExt as _;
    let Ok(gid) = libc::gid_t::try_from(gid) else {
        return;
    };
    let mask: u32 = if read_only { 0o440 } else { 0o660 };
    fn walk(p: &Path, f: &mut dyn FnMut(&Path, &std::fs::Metadata)) {
        let Ok(m) = std::fs::symlink_metadata(p) else {
            return;
        };
        if m.is_dir()
            && let Ok(rd) = std::fs::read_dir(p)
        {
            for e in rd.flatten() {
                walk(&e.path(), f);
            }
        }
        f(p, &m);
    }
    walk(dir, &mut |p, m| {
        let Ok(c) = CString::new(p.as_os_str().as_encoded_bytes()) else {
            return;
        };
        // SAFETY: a valid NUL-terminated path; uid -1 keeps the owner.
        if unsafe { libc::lchown(c.as_ptr(), u32::MAX, gid) } != 0 {
            warn!(path = %p.display(), error = %io::Error::last_os_error(), "lchown failed");
        }
        // chmod of a symlink would change its target's mode, which the plugin chose.
        if m.file_type().is_symlink() {
            return;
        }
        let mut mode = m.permissions().mode() & 0o7777 | mask;
        if m.is_dir() {
            mode |= libc::S_ISGID | 0o110;
        }
        if let Err(e) = std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)) {
            warn!(path = %p.display(), error = %e, "chmod failed");
        }
    });
}

/// `defaultMode` as upstream defaults it (0644).
pub(crate) fn mode_or_default(m: Option<i32>) -> u32 {
    m.and_then(|m| u32::try_from(m).ok()).unwrap_or(0o644)
}

/// Upstream's `utilerrors.NewAggregate` message.
pub(crate) fn aggregate(errors: Vec<String>) -> Result<(), String> {
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.into_iter().next().unwrap_or_default()),
        _ => Err(format!("[{}]", errors.join(", "))),
    }
}

/// What a container's mounts come from besides its volumeMounts.
pub struct MountInputs<'a> {
    pub volumes: &'a PodVolumes,
    /// The container's environment, for `subPathExpr`.
    pub env: &'a [(String, String)],
    /// The pod's managed hosts file, when it has one.
    pub etc_hosts: Option<&'a Path>,
    /// This container instance's termination-message file.
    pub termination_log: Option<&'a Path>,
    /// Where subPath bind mounts go (`<pod dir>/volume-subpaths`).
    pub subpaths: &'a Path,
}

pub const ETC_HOSTS: &str = "/etc/hosts";

fn propagation(mode: Option<&str>) -> Result<i32, String> {
    Ok(match mode {
        None | Some("None") => api::MountPropagation::PropagationPrivate,
        Some("HostToContainer") => api::MountPropagation::PropagationHostToContainer,
        Some("Bidirectional") => api::MountPropagation::PropagationBidirectional,
        Some(other) => return Err(format!("invalid MountPropagation mode: {other:?}")),
    } as i32)
}

/// Whether `c` mounts its own `/etc/hosts` (then the kubelet does not manage it).
pub fn mounts_etc_hosts(c: &Container) -> bool {
    c.volume_mounts
        .iter()
        .flatten()
        .any(|m| m.mount_path == ETC_HOSTS)
}

/// Upstream's `makeMounts` + the termination-log mount of `kuberuntime`: the CRI mounts of
/// container `c`. The error is the container's `CreateContainerConfigError` message.
pub fn container_mounts(
    c: &Container,
    inputs: &MountInputs<'_>,
) -> Result<Vec<api::Mount>, String> {
    let mut out = Vec::new();
    for (index, m) in c.volume_mounts.iter().flatten().enumerate() {
        let vol = inputs.volumes.get(&m.name).ok_or_else(|| {
            format!(
                "cannot find volume {:?} to mount into container {:?}",
                m.name, c.name
            )
        })?;
        let mut host_path = vol.host_path.clone();
        let mut sub_path = m.sub_path.clone().unwrap_or_default();
        if let Some(expr) = m.sub_path_expr.as_deref().filter(|e| !e.is_empty()) {
            sub_path = expand_sub_path(expr, inputs.env)?;
        }
        if !sub_path.is_empty() {
            let target = inputs
                .subpaths
                .join(&m.name)
                .join(&c.name)
                .join(index.to_string());
            host_path = prepare_sub_path(&host_path, &sub_path, &target, &m.name, &c.name)?;
        }
        out.push(api::Mount {
            container_path: m.mount_path.clone(),
            host_path: host_path.to_string_lossy().into_owned(),
            readonly: m.read_only.unwrap_or(false) || vol.read_only,
            propagation: propagation(m.mount_propagation.as_deref())?,
            ..Default::default()
        });
    }
    if let Some(hosts) = inputs.etc_hosts
        && !mounts_etc_hosts(c)
    {
        out.push(api::Mount {
            container_path: ETC_HOSTS.into(),
            host_path: hosts.to_string_lossy().into_owned(),
            ..Default::default()
        });
    }
    if let (Some(log), Some(path)) = (
        inputs.termination_log,
        c.termination_message_path
            .as_deref()
            .filter(|p| !p.is_empty()),
    ) {
        out.push(api::Mount {
            container_path: path.to_owned(),
            host_path: log.to_string_lossy().into_owned(),
            ..Default::default()
        });
    }
    Ok(out)
}

/// `subPathExpr`: `$(VAR)` from the container's environment; a missing or empty variable is
/// an error, as upstream.
fn expand_sub_path(expr: &str, env: &[(String, String)]) -> Result<String, String> {
    let vars: HashMap<&str, &str> = env
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (out, missing) = crate::env::expand_checked(expr, &vars);
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(format!("missing value for {}", missing.join(", ")))
    }
}

/// Upstream's subPath preparation: relative, no `..`, created as a directory (with the
/// volume's mode) when missing, inside the volume once symlinks are resolved — and then bound
/// race-free (upstream's `PrepareSafeSubpath`): the resolved path is opened one component at a
/// time without following symlinks, and that open file is bind-mounted at `target`, which the
/// runtime gets. A container that swaps a directory of its volume for a symlink after the check
/// makes the open fail instead of exposing the node.
fn prepare_sub_path(
    volume: &Path,
    sub_path: &str,
    target: &Path,
    mount_name: &str,
    container: &str,
) -> Result<PathBuf, String> {
    if sub_path.starts_with('/') {
        return Err(format!(
            "error SubPath `{sub_path}` must not be an absolute path"
        ));
    }
    if sub_path.split('/').any(|p| p == "..") {
        return Err(format!(
            "unable to provision SubPath `{sub_path}`: must not contain '..'"
        ));
    }
    let path = volume.join(sub_path);
    if std::fs::symlink_metadata(&path).is_err() {
        let mode = std::fs::metadata(volume).map_or(0o755, |m| m.mode() & 0o7777);
        let made = std::fs::create_dir_all(&path).and_then(|()| {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
        });
        if let Err(e) = made {
            warn!(path = %path.display(), error = %e, "cannot create a subPath directory");
            return Err(format!(
                "failed to create subPath directory for volumeMount {mount_name:?} of container {container:?}"
            ));
        }
    }
    let failed = |why: String| {
        // Details stay in the log: they could tell the pod about the node's filesystem.
        warn!(path = %path.display(), %why, "cannot prepare a subPath");
        format!(
            "failed to prepare subPath for volumeMount {mount_name:?} of container {container:?}"
        )
    };
    let root = volume.canonicalize().map_err(|e| failed(e.to_string()))?;
    let resolved = path.canonicalize().map_err(|e| failed(e.to_string()))?;
    let rel = resolved
        .strip_prefix(&root)
        .map_err(|_| failed(format!("{} is outside the volume", resolved.display())))?;
    // A bind made for an earlier instance of the container is reused (upstream does too; so
    // a configMap subPath keeps the content it had when first bound).
    if is_mounted_at(target) {
        return Ok(target.to_owned());
    }
    bind_safely(&root, rel, target).map_err(|e| failed(e.to_string()))?;
    Ok(target.to_owned())
}

/// Opens `rel` under `root` refusing symlinks in every component, and bind-mounts the opened
/// file or directory at `target` (created to match) through `/proc/self/fd`.
fn bind_safely(root: &Path, rel: &Path, target: &Path) -> io::Result<()> {
    use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_encoded_bytes())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
    };
    let root_c = c(root)?;
    // SAFETY: a valid NUL-terminated path; the fd is owned below.
    let fd = unsafe {
        libc::open(
            root_c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let mut cur = unsafe { OwnedFd::from_raw_fd(fd) };
    for seg in rel.components() {
        let seg_c = c(Path::new(seg.as_os_str()))?;
        // SAFETY: cur is open, seg_c NUL-terminated.
        let fd = unsafe {
            libc::openat(
                cur.as_raw_fd(),
                seg_c.as_ptr(),
                libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: as above.
        cur = unsafe { OwnedFd::from_raw_fd(fd) };
    }
    // SAFETY: an all-zero stat is a valid out-parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: cur is open and st is writable.
    if unsafe { libc::fstat(cur.as_raw_fd(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
        return Err(io::Error::other("the subPath is a symlink"));
    }
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        std::fs::create_dir_all(target)?;
    } else if std::fs::symlink_metadata(target).is_err() {
        std::fs::File::create(target)?;
    }
    let source = c(Path::new(&format!("/proc/self/fd/{}", cur.as_raw_fd())))?;
    let target_c = c(target)?;
    // SAFETY: valid NUL-terminated paths; a bind mount takes no type or data.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target_c.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    debug!(target = %target.display(), "subPath bound");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::VolumeMount;

    fn mount(name: &str, path: &str) -> VolumeMount {
        VolumeMount {
            name: name.into(),
            mount_path: path.into(),
            ..Default::default()
        }
    }

    #[test]
    fn mounts_from_volume_mounts() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let vol = dir.path().join("v");
        std::fs::create_dir(&vol)?;
        let mut vols = PodVolumes::default();
        vols.by_name.insert(
            "data".into(),
            MountedVolume {
                host_path: vol.clone(),
                read_only: false,
            },
        );
        vols.by_name.insert(
            "cfg".into(),
            MountedVolume {
                host_path: vol.clone(),
                read_only: true,
            },
        );
        let mut sub = mount("data", "/sub");
        sub.sub_path_expr = Some("logs/$(POD)".into());
        let mut prop = mount("data", "/p");
        prop.mount_propagation = Some("HostToContainer".into());
        let c = Container {
            name: "c".into(),
            termination_message_path: Some("/dev/termination-log".into()),
            volume_mounts: Some(vec![
                mount("data", "/data"),
                mount("cfg", "/cfg"),
                sub,
                prop,
            ]),
            ..Default::default()
        };
        let env = vec![("POD".to_owned(), "p1".to_owned())];
        let hosts = dir.path().join("etc-hosts");
        let log = dir.path().join("log");
        let subpaths = dir.path().join("volume-subpaths");
        // subPath binds need mount(2); without root only the rest is checked.
        let root = crate::machine::is_root();
        let c = if root {
            c
        } else {
            Container {
                volume_mounts: c.volume_mounts.map(|v| {
                    v.into_iter()
                        .filter(|m| m.sub_path_expr.is_none())
                        .collect()
                }),
                ..c
            }
        };
        let made = container_mounts(
            &c,
            &MountInputs {
                volumes: &vols,
                env: &env,
                etc_hosts: Some(&hosts),
                termination_log: Some(&log),
                subpaths: &subpaths,
            },
        );
        let bound = mounts_under(&subpaths.canonicalize().unwrap_or(subpaths.clone()));
        remove_unmounted(&subpaths)?;
        let mut ms = made.map_err(anyhow::Error::msg)?;
        if !root {
            return Ok(());
        }
        assert_eq!(bound.len(), 1, "{bound:?}");
        assert_eq!(ms[2].host_path, subpaths.join("data/c/2").to_string_lossy());
        ms[2].host_path.clear();
        let paths: Vec<&str> = ms.iter().map(|m| m.container_path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/data",
                "/cfg",
                "/sub",
                "/p",
                "/etc/hosts",
                "/dev/termination-log"
            ]
        );
        assert!(!ms[0].readonly && ms[1].readonly);
        assert!(vol.join("logs/p1").is_dir());
        assert_eq!(
            ms[3].propagation,
            api::MountPropagation::PropagationHostToContainer as i32
        );
        // Errors, with upstream's messages.
        let one = |m: VolumeMount, env: &[(String, String)]| {
            let c = Container {
                name: "c".into(),
                volume_mounts: Some(vec![m]),
                ..Default::default()
            };
            let r = container_mounts(
                &c,
                &MountInputs {
                    volumes: &vols,
                    env,
                    etc_hosts: None,
                    termination_log: None,
                    subpaths: &subpaths,
                },
            );
            let _ = remove_unmounted(&subpaths);
            r.err().unwrap_or_default()
        };
        assert_eq!(
            one(mount("nope", "/x"), &env),
            "cannot find volume \"nope\" to mount into container \"c\""
        );
        let mut bad = mount("data", "/x");
        bad.sub_path = Some("../etc".into());
        assert!(one(bad, &env).contains("must not contain '..'"));
        let mut missing = mount("data", "/x");
        missing.sub_path_expr = Some("$(NOPE)".into());
        assert_eq!(one(missing, &env), "missing value for NOPE");
        std::os::unix::fs::symlink("/etc", vol.join("escape"))?;
        let mut escape = mount("data", "/x");
        escape.sub_path = Some("escape".into());
        assert!(one(escape, &env).starts_with("failed to prepare subPath"));
        Ok(())
    }

    #[test]
    fn fs_group_ownership() -> anyhow::Result<()> {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        std::fs::create_dir(d.join("sub"))?;
        std::fs::write(d.join("sub/f"), "x")?;
        std::fs::set_permissions(d.join("sub/f"), std::fs::Permissions::from_mode(0o600))?;
        std::os::unix::fs::symlink("sub/f", d.join("link"))?;
        set_volume_ownership(d, 4242, false);
        let f = std::fs::metadata(d.join("sub/f"))?;
        assert_eq!(f.mode() & 0o7777, 0o660);
        let sub = std::fs::metadata(d.join("sub"))?;
        assert_eq!(sub.mode() & libc::S_ISGID, libc::S_ISGID);
        if crate::machine::is_root() {
            assert_eq!(f.gid(), 4242);
        }
        Ok(())
    }

    #[test]
    fn removal_unmounts_first() -> anyhow::Result<()> {
        if !crate::machine::is_root() {
            return Ok(());
        }
        let dir = tempfile::tempdir()?;
        let pod = dir.path().join("pod uid");
        let vol = pod.join("volumes/kubernetes.io~empty-dir/m");
        mount_tmpfs(&vol, Some(1 << 20))?;
        let mounted = is_mount_point(&vol);
        // The removal must unmount (mountinfo escapes the space) before removing; the test
        // unmounts itself whatever happened.
        let removed = std::fs::write(vol.join("f"), "x")
            .map_err(anyhow::Error::from)
            .and_then(|()| remove_unmounted(&pod).map_err(anyhow::Error::from));
        if removed.is_err() {
            let _ = umount(&vol);
        }
        removed?;
        assert!(mounted);
        assert!(!pod.exists());
        assert!(mounts_under(dir.path()).is_empty());
        Ok(())
    }

    #[test]
    fn sub_path_binds_refuse_symlinks() -> anyhow::Result<()> {
        // A component swapped for a symlink after the checks: the open fails, nothing is bound.
        let dir = tempfile::tempdir()?;
        let root = dir.path().join("vol");
        std::fs::create_dir(&root)?;
        std::os::unix::fs::symlink("/etc", root.join("a"))?;
        let target = dir.path().join("t");
        assert!(bind_safely(&root, Path::new("a"), &target).is_err());
        assert!(bind_safely(&root, Path::new("a/passwd"), &target).is_err());
        assert!(!is_mounted_at(&target));
        Ok(())
    }

    #[test]
    fn mountinfo_unescaping() {
        assert_eq!(unescape_mountinfo("/a\\040b\\134c"), "/a b\\c");
    }

    #[test]
    fn go_errors() {
        assert_eq!(
            go_error(&io::Error::from_raw_os_error(libc::ENOENT)),
            "no such file or directory"
        );
    }
}
