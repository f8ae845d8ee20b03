//! Volume usage of each pod, as upstream's fsResourceAnalyzer: computed in the background
//! (here by the housekeeping task) at most once per [`VOLUME_STATS_PERIOD`] per pod and
//! served from the cache, since walking a volume costs more than a scrape should.
//!
//! The volumes are the mounted ones found on disk (`pods/<uid>/volumes/kubernetes.io~<plugin>/
//! <name>`); host paths have none and report nothing, as upstream's (their metrics are not
//! supported). Local ephemeral volumes (emptyDir on disk, configMap — upstream's
//! `IsLocalEphemeralVolume`) also count toward the pod's ephemeral storage.
//!
//! A claim's volume (mounted at `kubernetes.io~local-volume/<name>`) reports its filesystem
//! as `statfs` sees it, as upstream's `local` plugin (MetricsStatFS), with the claim's name as
//! `pvcRef`. Network filesystems (an `nfs` PV, inline `nfs`) are not measured: a server that
//! stopped answering would hang the housekeeping thread in `statfs` (upstream asks them too).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

#[derive(Default)]
pub struct VolumeCache {
    entries: Mutex<HashMap<String, (Instant, Vec<PodVolume>)>>,
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
            volumes.extend(claim_volumes(dirs, &uid, &claims(&uid)));
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

/// The pod's claim volumes that are mounted on local filesystems, with their claims.
pub fn claim_volumes(
    dirs: &AgentDirs,
    uid: &str,
    claims: &HashMap<String, PvcReference>,
) -> Vec<PodVolume> {
    let base = dirs.pod_dir(uid).join("volumes").join(CLAIM_PLUGIN);
    let Ok(rd) = std::fs::read_dir(base) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let path = e.path();
        // Only a mounted volume: an empty mount point would report the node's disk.
        match crate::volumes::mounted_fs_type(&path) {
            Some(t) if !is_network_fs(&t) => {}
            _ => continue,
        }
        let Some(fs) = host::statfs(&path) else {
            continue;
        };
        let name = e.file_name().to_string_lossy().into_owned();
        out.push(PodVolume {
            stats: VolumeStats {
                fs: statfs_stats(&fs),
                pvc_ref: claims.get(&name).cloned(),
                name,
            },
            local_ephemeral: false,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
