//! Volume usage of each pod, as upstream's fsResourceAnalyzer: computed in the background
//! (here by the housekeeping task) at most once per [`VOLUME_STATS_PERIOD`] per pod and
//! served from the cache, since walking a volume costs more than a scrape should.
//!
//! The volumes are the mounted ones found on disk (`pods/<uid>/volumes/kubernetes.io~<plugin>/
//! <name>`); host paths have none and report nothing, as upstream's (their metrics are not
//! supported). Local ephemeral volumes (emptyDir on disk, configMap — upstream's
//! `IsLocalEphemeralVolume`) also count toward the pod's ephemeral storage.
//!
//! A claim's volume (mounted at `kubernetes.io~local-volume/<name>`) and an inline `nfs`
//! volume (`kubernetes.io~nfs/<name>`) report their filesystem as `statfs` sees it, as
//! upstream's `local` and `nfs` plugins (MetricsStatFS), a claim's with the claim's name as
//! `pvcRef`. Which claims are mounted, and on what filesystem type, comes from
//! mountinfo alone: nothing looks at a mount point before its type is known. Network
//! filesystems (an `nfs` PV, FUSE) are measured by [`NetworkStatfs`]: `statfs` on a thread of
//! its own, given up after [`NETWORK_STATFS_TIMEOUT`], since a server that stopped answering
//! holds the call (and would hold housekeeping) for as long as it does not answer.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant};

use tracing::{debug, trace, warn};

use super::host::{self, FsInfo, TMPFS_MAGIC};
use super::summary::{FsStats, PvcReference, Time, VolumeStats};
use crate::paths::AgentDirs;

/// The claims a pod's volumes use, by volume name (from the kubelet's pods, by pod UID).
pub type ClaimsOf = dyn Fn(&str) -> HashMap<String, PvcReference> + Send + Sync;

/// Upstream's `volumeStatsAggPeriod` default.
pub const VOLUME_STATS_PERIOD: Duration = Duration::from_secs(60);

/// Entries walked per volume at most.
const WALK_LIMIT: usize = 100_000;

/// Where claims' volumes are mounted (whatever the PV's type).
pub(super) const CLAIM_PLUGIN: &str = "kubernetes.io~local-volume";
/// Where inline `nfs` volumes are mounted.
pub(super) const NFS_PLUGIN: &str = "kubernetes.io~nfs";

/// How long a network filesystem's `statfs` is waited for (the call itself cannot be
/// cancelled: it goes on in its thread).
pub const NETWORK_STATFS_TIMEOUT: Duration = Duration::from_secs(2);

/// Filesystem types `statfs` may block on for as long as a server does not answer.
fn is_network_fs(fs_type: &str) -> bool {
    matches!(
        fs_type,
        "nfs" | "nfs4" | "cifs" | "smb3" | "ceph" | "glusterfs" | "fuse"
    ) || fs_type.starts_with("fuse.")
}

/// The plugins whose volumes report usage by walking them (upstream's MetricsDu providers).
const PLUGINS: [&str; 5] = [
    "kubernetes.io~empty-dir",
    "kubernetes.io~configmap",
    "kubernetes.io~secret",
    "kubernetes.io~downward-api",
    "kubernetes.io~projected",
];

#[derive(Clone, Debug, PartialEq)]
pub struct PodVolume {
    pub stats: VolumeStats,
    pub local_ephemeral: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `statfs` of network filesystems, each call on its own thread and waited for at most a
/// timeout. A mount whose call has not returned is skipped until it does, so a dead server
/// holds one thread per mount, not one more each round.
pub struct NetworkStatfs {
    timeout: Duration,
    /// Mount paths whose `statfs` is still running.
    in_flight: Arc<Mutex<HashSet<PathBuf>>>,
}

impl Default for NetworkStatfs {
    fn default() -> Self {
        NetworkStatfs::new(NETWORK_STATFS_TIMEOUT)
    }
}

/// Forgets its path's call once the call returns (or its thread unwinds).
struct InFlight {
    set: Arc<Mutex<HashSet<PathBuf>>>,
    path: PathBuf,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        lock(&self.set).remove(&self.path);
    }
}

impl NetworkStatfs {
    pub fn new(timeout: Duration) -> Self {
        NetworkStatfs {
            timeout,
            in_flight: Arc::default(),
        }
    }

    /// The filesystem at `path`; `None` if it did not answer in time, or an earlier call for
    /// it still has not returned.
    pub fn statfs(&self, path: &Path) -> Option<FsInfo> {
        self.measure(path, host::statfs)
    }

    /// `measure(path)` on a thread of its own: its answer if it comes within the timeout.
    fn measure<F>(&self, path: &Path, measure: F) -> Option<FsInfo>
    where
        F: FnOnce(&Path) -> Option<FsInfo> + Send + 'static,
    {
        if !lock(&self.in_flight).insert(path.to_path_buf()) {
            // Logged when it timed out; once per round would repeat it for as long as the
            // server is away.
            trace!(path = %path.display(), "statfs of a network volume still running, skipped");
            return None;
        }
        let guard = InFlight {
            set: self.in_flight.clone(),
            path: path.to_path_buf(),
        };
        let (tx, rx) = mpsc::sync_channel(1);
        let spawned = std::thread::Builder::new()
            .name("netfs-statfs".into())
            .spawn(move || {
                let started = Instant::now();
                let fs = measure(&guard.path);
                let path = guard.path.clone();
                drop(guard);
                if tx.send(fs).is_err() {
                    debug!(path = %path.display(), took = ?started.elapsed(),
                        "a network volume's statfs returned after it was given up on");
                }
            });
        if let Err(e) = spawned {
            // The closure (and the guard in it) is dropped with the error: nothing in flight.
            warn!(path = %path.display(), error = %e, "no thread for a network volume's statfs");
            return None;
        }
        match rx.recv_timeout(self.timeout) {
            Ok(fs) => fs,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                warn!(path = %path.display(), timeout = ?self.timeout,
                    "statfs of a network volume did not answer; not measured until it returns");
                None
            }
            // The thread panicked.
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
        }
    }
}

#[derive(Default)]
pub struct VolumeCache {
    entries: Mutex<HashMap<String, (Instant, Vec<PodVolume>)>>,
    network: NetworkStatfs,
}

impl VolumeCache {
    /// Recomputes the pods of `uids` whose figures are older than the period (or missing) and
    /// forgets the others.
    pub fn refresh(&self, dirs: &AgentDirs, uids: &[String], claims: &ClaimsOf) {
        let stale: Vec<String> = {
            let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            map.retain(|uid, _| uids.contains(uid));
            uids.iter()
                .filter(|u| {
                    map.get(*u)
                        .is_none_or(|(at, _)| at.elapsed() >= VOLUME_STATS_PERIOD)
                })
                .cloned()
                .collect()
        };
        for uid in stale {
            let mut volumes = pod_volumes(dirs, &uid);
            volumes.extend(mounted_volumes(dirs, &uid, &claims(&uid), &self.network));
            volumes.sort_by(|a, b| a.stats.name.cmp(&b.stats.name));
            self.entries
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(uid, (Instant::now(), volumes));
        }
    }

    /// The pod's volumes as last computed; `None` before the first computation.
    pub fn get(&self, uid: &str) -> Option<Vec<PodVolume>> {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(uid)
            .map(|(_, v)| v.clone())
    }

    /// The volumes with a claim of the pods of `uids` as last computed, in that order.
    pub fn claim_stats<'a>(&self, uids: impl IntoIterator<Item = &'a str>) -> Vec<VolumeStats> {
        let map = lock(&self.entries);
        uids.into_iter()
            .filter_map(|uid| map.get(uid))
            .flat_map(|(_, volumes)| volumes)
            .filter(|v| v.stats.pvc_ref.is_some())
            .map(|v| v.stats.clone())
            .collect()
    }
}

/// Usage of every volume of the pod on disk, by name.
pub fn pod_volumes(dirs: &AgentDirs, uid: &str) -> Vec<PodVolume> {
    let base = dirs.pod_dir(uid).join("volumes");
    let mut out = Vec::new();
    for plugin in PLUGINS {
        let Ok(rd) = std::fs::read_dir(base.join(plugin)) else {
            continue;
        };
        for e in rd.flatten() {
            let path = e.path();
            let (Some(fs), Some(du)) = (host::statfs(&path), host::du(&path, WALK_LIMIT)) else {
                continue;
            };
            let local_ephemeral = match plugin {
                "kubernetes.io~empty-dir" => fs.fs_type != TMPFS_MAGIC,
                "kubernetes.io~configmap" => true,
                _ => false,
            };
            out.push(PodVolume {
                stats: VolumeStats {
                    fs: FsStats {
                        time: Time::now(),
                        available_bytes: Some(fs.available),
                        capacity_bytes: Some(fs.capacity),
                        used_bytes: Some(du.bytes),
                        inodes_free: Some(fs.inodes_free),
                        inodes: Some(fs.inodes),
                        inodes_used: Some(du.inodes),
                    },
                    name: e.file_name().to_string_lossy().into_owned(),
                    pvc_ref: None,
                },
                local_ephemeral,
            });
        }
    }
    out.sort_by(|a, b| a.stats.name.cmp(&b.stats.name));
    out
}

/// A filesystem's figures as `statfs` gives them (upstream's MetricsStatFS).
fn statfs_stats(fs: &FsInfo) -> FsStats {
    FsStats {
        time: Time::now(),
        available_bytes: Some(fs.available),
        capacity_bytes: Some(fs.capacity),
        used_bytes: Some(fs.usage),
        inodes_free: Some(fs.inodes_free),
        inodes: Some(fs.inodes),
        inodes_used: Some(fs.inodes.saturating_sub(fs.inodes_free)),
    }
}

/// The pod's mounted claim volumes, with their claims, and its inline NFS volumes.
pub fn mounted_volumes(
    dirs: &AgentDirs,
    uid: &str,
    claims: &HashMap<String, PvcReference>,
    network: &NetworkStatfs,
) -> Vec<PodVolume> {
    let mut out = Vec::new();
    for plugin in [CLAIM_PLUGIN, NFS_PLUGIN] {
        let Ok(rd) = std::fs::read_dir(dirs.pod_dir(uid).join("volumes").join(plugin)) else {
            continue;
        };
        let claims = (plugin == CLAIM_PLUGIN).then_some(claims);
        out.extend(
            rd.flatten()
                .filter_map(|e| mounted_volume(&e.path(), claims, network)),
        );
    }
    out
}

/// One volume's filesystem figures, with its claim from `claims` if it has one; `None` when
/// nothing is mounted there (an empty mount point would report the node's disk) or it cannot
/// be measured. Its type comes from mountinfo alone: nothing touches a network mount before
/// it is known as one.
fn mounted_volume(
    path: &Path,
    claims: Option<&HashMap<String, PvcReference>>,
    network: &NetworkStatfs,
) -> Option<PodVolume> {
    let fs_type = crate::volumes::mounted_fs_type(path)?;
    let fs = if is_network_fs(&fs_type) {
        network.statfs(path)
    } else {
        host::statfs(path)
    }?;
    let name = path.file_name()?.to_string_lossy().into_owned();
    Some(PodVolume {
        stats: VolumeStats {
            fs: statfs_stats(&fs),
            pvc_ref: claims.and_then(|c| c.get(&name)).cloned(),
            name,
        },
        local_ephemeral: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const NFS: FsInfo = FsInfo {
        capacity: 1 << 30,
        available: 3 << 28,
        usage: 1 << 28,
        inodes: 1000,
        inodes_free: 900,
        fs_type: 0x6969,
    };

    #[test]
    fn a_hung_network_statfs_is_given_up_and_not_asked_again_until_it_returns() {
        let net = NetworkStatfs::new(Duration::from_millis(200));
        let hung = Path::new("/mnt/claims/www");
        let (release, stuck) = mpsc::channel::<()>();
        let started = Instant::now();
        let got = net.measure(hung, move |_| {
            // Blocks as statfs on a dead server does, until the test lets it go.
            let _ = stuck.recv();
            Some(NFS)
        });
        let waited = started.elapsed();
        assert_eq!(got, None);
        assert!(
            waited >= Duration::from_millis(200) && waited < Duration::from_secs(2),
            "{waited:?}"
        );

        // While it is stuck the mount is skipped at once: no second call, no second thread.
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let started = Instant::now();
        let again = net.measure(hung, move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
            Some(NFS)
        });
        assert_eq!(again, None);
        assert!(started.elapsed() < Duration::from_millis(200));
        assert_eq!(calls.load(Ordering::SeqCst), 0);

        // Another mount is not held up by it.
        assert_eq!(
            net.measure(Path::new("/mnt/claims/logs"), |_| Some(NFS)),
            Some(NFS)
        );

        // Once the stuck call returns, the mount is measured again.
        release.send(()).unwrap_or_default();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(fs) = net.measure(hung, |_| Some(NFS)) {
                assert_eq!(fs, NFS);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "still skipped after the stuck statfs returned"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_network_statfs_that_answers_in_time_is_reported() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let net = NetworkStatfs::default();
        let got = net.statfs(tmp.path());
        let local = host::statfs(tmp.path());
        assert!(
            got.is_some_and(|fs| fs.capacity > 0 && fs.inodes > 0),
            "{got:?}"
        );
        assert_eq!(got.map(|fs| fs.capacity), local.map(|fs| fs.capacity));
        // A path that is gone answers nothing, and leaves nothing in flight.
        let gone = tmp.path().join("gone");
        assert_eq!(net.statfs(&gone), None);
        assert!(lock(&net.in_flight).is_empty());
        // A panicking call is not left in flight either.
        assert_eq!(net.measure(&gone, |_| panic!("statfs blew up")), None);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !lock(&net.in_flight).is_empty() {
            assert!(
                Instant::now() < deadline,
                "a panicked call stayed in flight"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn volumes_on_disk_are_measured() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let dirs = AgentDirs::new(tmp.path());
        let vol = dirs.pod_volume_dir("u1", "kubernetes.io~empty-dir", "data");
        std::fs::create_dir_all(&vol).unwrap_or_default();
        std::fs::write(vol.join("f"), vec![0u8; 8192]).unwrap_or_default();
        let cm = dirs.pod_volume_dir("u1", "kubernetes.io~secret", "token");
        std::fs::create_dir_all(&cm).unwrap_or_default();
        let v = pod_volumes(&dirs, "u1");
        let names: Vec<&str> = v.iter().map(|v| v.stats.name.as_str()).collect();
        assert_eq!(names, ["data", "token"]);
        assert!(v[0].local_ephemeral && !v[1].local_ephemeral);
        assert!(v[0].stats.fs.used_bytes.is_some_and(|b| b >= 8192));
        assert_eq!(v[0].stats.fs.inodes_used, Some(2));

        let cache = VolumeCache::default();
        assert_eq!(cache.get("u1"), None);
        let no_claims = |_: &str| HashMap::new();
        cache.refresh(&dirs, &["u1".to_owned()], &no_claims);
        assert_eq!(cache.get("u1").map(|v| v.len()), Some(2));
        cache.refresh(&dirs, &[], &no_claims);
        assert_eq!(cache.get("u1"), None);
    }

    #[test]
    fn a_claim_volume_reports_its_filesystem_and_claim() -> anyhow::Result<()> {
        if unsafe { libc::geteuid() } != 0 {
            common::ci::skip("mounting a claim's filesystem needs root");
            return Ok(());
        }
        let tmp = tempfile::tempdir()?;
        let dirs = AgentDirs::new(tmp.path());
        let data = dirs.pod_volume_dir("u1", CLAIM_PLUGIN, "data");
        // A mount point with nothing mounted (a volume not set up yet) reports nothing: its
        // statfs would be the node's disk.
        let idle = dirs.pod_volume_dir("u1", CLAIM_PLUGIN, "idle");
        std::fs::create_dir_all(&idle)?;
        crate::volumes::mount_tmpfs(&data, Some(8 << 20))?;
        let written = std::fs::write(data.join("f"), vec![1u8; 1 << 20]);
        let claims = HashMap::from([(
            "data".to_owned(),
            PvcReference {
                name: "www-web-0".into(),
                namespace: "shop".into(),
            },
        )]);
        let cache = VolumeCache::default();
        let given = claims.clone();
        cache.refresh(&dirs, &["u1".to_owned()], &move |uid: &str| match uid {
            "u1" => given.clone(),
            _ => HashMap::new(),
        });
        let got = cache.get("u1").unwrap_or_default();
        crate::volumes::umount(&data)?;
        written?;
        assert_eq!(got.len(), 1, "{got:?}");
        let v = &got[0].stats;
        assert_eq!(v.name, "data");
        assert_eq!(v.pvc_ref, claims.get("data").cloned());
        assert_eq!(v.fs.capacity_bytes, Some(8 << 20));
        assert!(v.fs.used_bytes.is_some_and(|b| b >= 1 << 20), "{v:?}");
        assert!(v.fs.available_bytes.is_some_and(|b| b <= 7 << 20), "{v:?}");
        assert!(v.fs.inodes_used.is_some_and(|n| n >= 2), "{v:?}");
        assert!(!got[0].local_ephemeral);
        Ok(())
    }

    #[test]
    fn an_inline_nfs_volume_reports_its_filesystem_without_a_claim() -> anyhow::Result<()> {
        if unsafe { libc::geteuid() } != 0 {
            common::ci::skip("mounting a volume's filesystem needs root");
            return Ok(());
        }
        let tmp = tempfile::tempdir()?;
        let dirs = AgentDirs::new(tmp.path());
        // A tmpfs stands in for the export: which filesystem it is does not change the path.
        let share = dirs.pod_volume_dir("u1", NFS_PLUGIN, "share");
        crate::volumes::mount_tmpfs(&share, Some(4 << 20))?;
        let cache = VolumeCache::default();
        // Even a claim of the same name (no pod has both) is not this volume's.
        let claims = HashMap::from([(
            "share".to_owned(),
            PvcReference {
                name: "other".into(),
                namespace: "shop".into(),
            },
        )]);
        cache.refresh(&dirs, &["u1".to_owned()], &move |_: &str| claims.clone());
        let got = cache.get("u1").unwrap_or_default();
        crate::volumes::umount(&share)?;
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].stats.name, "share");
        assert_eq!(got[0].stats.pvc_ref, None);
        assert_eq!(got[0].stats.fs.capacity_bytes, Some(4 << 20));
        Ok(())
    }
}
