//! Volume usage of each pod, as upstream's fsResourceAnalyzer: computed in the background
//! (here by the housekeeping task) at most once per [`VOLUME_STATS_PERIOD`] per pod and
//! served from the cache, since walking a volume costs more than a scrape should.
//!
//! The volumes are the mounted ones found on disk (`pods/<uid>/volumes/kubernetes.io~<plugin>/
//! <name>`); host paths have none and report nothing, as upstream's (their metrics are not
//! supported). Local ephemeral volumes (emptyDir on disk, configMap — upstream's
//! `IsLocalEphemeralVolume`) also count toward the pod's ephemeral storage.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::host::{self, TMPFS_MAGIC};
use super::summary::{FsStats, Time, VolumeStats};
use crate::paths::AgentDirs;

/// Upstream's `volumeStatsAggPeriod` default.
pub const VOLUME_STATS_PERIOD: Duration = Duration::from_secs(60);

/// Entries walked per volume at most.
const WALK_LIMIT: usize = 100_000;

/// The plugins whose volumes report usage (upstream's MetricsDu providers).
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
    pub fn refresh(&self, dirs: &AgentDirs, uids: &[String]) {
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
            let volumes = pod_volumes(dirs, &uid);
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
        cache.refresh(&dirs, &["u1".to_owned()]);
        assert_eq!(cache.get("u1").map(|v| v.len()), Some(2));
        cache.refresh(&dirs, &[]);
        assert_eq!(cache.get("u1"), None);
    }
}
