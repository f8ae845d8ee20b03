//! Image garbage collection on its own schedule (upstream's `realImageGCManager`): every
//! `period` (5 min), when the image filesystem is at least `high_threshold_percent` (85 %)
//! used, unused images go — least recently used first, then the first detected — until it
//! is back at `low_threshold_percent` (80 %). An image is spared while a container (running
//! or not) uses it, while it is pinned or the sandbox (pause) image, and while it is younger
//! than `min_age` (2 min) as this kubelet has seen it; images already there when the kubelet
//! started count as old. With `max_age` (`--image-maximum-gc-age`, off by default) an unused
//! image not used for longer than that goes whatever the disk, once the kubelet itself has
//! run that long. A round that fails is logged; two in a row make an `ImageGCFailed` warning
//! event on the Node (upstream's kubelet). The eviction manager's reclaim under disk pressure
//! is apart (`eviction::reclaim`): it removes every unused image at once.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::api::core::v1::ObjectReference;
use tracing::{debug, info, warn};

use crate::cri::RuntimeClient;
use crate::images::PAUSE_IMAGE;
use crate::stats::host;

/// Upstream's `ImageGCPolicy` and `ImageGCPeriod`.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageGcPolicy {
    /// `--image-gc-high-threshold`: the disk usage (percent) from which images are
    /// collected; 100 turns collection off.
    pub high_threshold_percent: u8,
    /// `--image-gc-low-threshold`: the usage collection brings the disk back to.
    pub low_threshold_percent: u8,
    /// Images younger than this are never collected (upstream's `ImageMinimumGCAge`).
    pub min_age: Duration,
    /// `--image-maximum-gc-age`: unused images not used for this long are collected
    /// whatever the disk usage (upstream's `ImageMaximumGCAge`); zero: never.
    pub max_age: Duration,
    /// How often the image filesystem is looked at.
    pub period: Duration,
}

impl Default for ImageGcPolicy {
    fn default() -> Self {
        ImageGcPolicy {
            high_threshold_percent: 85,
            low_threshold_percent: 80,
            min_age: Duration::from_secs(120),
            max_age: Duration::ZERO,
            period: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PolicyError {
    #[error("invalid HighThresholdPercent {0}, must be in range [0-100]")]
    High(u8),
    #[error("invalid LowThresholdPercent {0}, must be in range [0-100]")]
    Low(u8),
    #[error("LowThresholdPercent {low} can not be higher than HighThresholdPercent {high}")]
    LowAboveHigh { low: u8, high: u8 },
}

impl ImageGcPolicy {
    /// Upstream's checks (`NewImageGCManager`), in its words.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let (high, low) = (self.high_threshold_percent, self.low_threshold_percent);
        if high > 100 {
            return Err(PolicyError::High(high));
        }
        if low > 100 {
            return Err(PolicyError::Low(low));
        }
        if low > high {
            return Err(PolicyError::LowAboveHigh { low, high });
        }
        Ok(())
    }

    /// Whether collection runs at all (upstream stubs it out at 100 %).
    pub fn enabled(&self) -> bool {
        self.high_threshold_percent < 100
    }

    /// How many bytes to free on a filesystem of `capacity` with `available` free: none
    /// below the high threshold, else down to the low one (upstream's integer arithmetic).
    pub fn bytes_to_free(&self, capacity: u64, available: u64) -> Option<u64> {
        if capacity == 0 {
            return None;
        }
        let available = available.min(capacity);
        let usage = 100 - available.saturating_mul(100) / capacity;
        if usage < u64::from(self.high_threshold_percent) {
            return None;
        }
        let target = capacity.saturating_mul(100 - u64::from(self.low_threshold_percent)) / 100;
        Some(target.saturating_sub(available)).filter(|b| *b > 0)
    }
}

/// What this kubelet knows of one image (upstream's `imageRecord`).
#[derive(Clone, Debug, PartialEq)]
pub struct ImageRecord {
    /// When first seen; None: already there when the kubelet started (old enough).
    pub first_detected: Option<Instant>,
    /// When last seen in use; None: never.
    pub last_used: Option<Instant>,
    pub size: u64,
    /// Never collected: pinned by the runtime, or the sandbox image.
    pub pinned: bool,
}

/// The images to remove, in order, to free `bytes` at `now`, and the bytes they free:
/// unused and unpinned ones, least recently used first (never used before any), ties by
/// first detection, skipping those younger than `min_age`; stops once enough is freed.
pub fn select(
    records: &HashMap<String, ImageRecord>,
    in_use: &HashSet<String>,
    bytes: u64,
    now: Instant,
    min_age: Duration,
) -> (Vec<String>, u64) {
    let mut candidates: Vec<(&String, &ImageRecord)> = records
        .iter()
        .filter(|(id, r)| !in_use.contains(*id) && !r.pinned)
        .collect();
    // Option orders None first: never used, and detected before the kubelet started.
    candidates.sort_by(|(a_id, a), (b_id, b)| {
        (a.last_used, a.first_detected, *a_id).cmp(&(b.last_used, b.first_detected, *b_id))
    });
    let mut chosen = Vec::new();
    let mut freed = 0u64;
    for (id, r) in candidates {
        if r.first_detected
            .is_some_and(|t| now.saturating_duration_since(t) < min_age)
        {
            continue;
        }
        chosen.push(id.clone());
        freed = freed.saturating_add(r.size);
        if freed >= bytes {
            break;
        }
    }
    (chosen, freed)
}

/// The unused, unpinned images not used for longer than `max_age` at `now` (never used
/// counts as long ago), as upstream's `freeOldImages`: none while `max_age` is zero or the
/// kubelet has run (`uptime`) no longer than it, lest images be judged on a short memory.
pub fn select_old(
    records: &HashMap<String, ImageRecord>,
    in_use: &HashSet<String>,
    now: Instant,
    max_age: Duration,
    uptime: Duration,
) -> Vec<String> {
    if max_age.is_zero() || uptime <= max_age {
        return Vec::new();
    }
    let mut old: Vec<String> = records
        .iter()
        .filter(|(id, r)| !in_use.contains(*id) && !r.pinned)
        .filter(|(_, r)| {
            r.last_used
                .is_none_or(|t| now.saturating_duration_since(t) > max_age)
        })
        .map(|(id, _)| id.clone())
        .collect();
    old.sort();
    old
}

/// The collector: the records it keeps between rounds, and what it needs from the node.
pub struct ImageGc {
    cri: RuntimeClient,
    policy: ImageGcPolicy,
    records: HashMap<String, ImageRecord>,
    /// The first detection records images as already there (upstream's "initialized").
    initialized: bool,
    events: client_go::events::Recorder,
    node: ObjectReference,
    /// When collection began (upstream's `beganGC`): the kubelet's memory of use starts here.
    began: Instant,
}

impl ImageGc {
    pub fn new(
        cri: RuntimeClient,
        policy: ImageGcPolicy,
        events: client_go::events::Recorder,
        node_name: &str,
    ) -> Self {
        // Upstream's node reference: the node's name stands for its UID.
        let node = ObjectReference {
            kind: Some("Node".into()),
            name: Some(node_name.into()),
            uid: Some(node_name.into()),
            ..Default::default()
        };
        ImageGc {
            cri,
            policy,
            records: HashMap::new(),
            initialized: false,
            events,
            node,
            began: Instant::now(),
        }
    }

    /// Detects images now, then collects every period, until aborted.
    pub async fn run(mut self) {
        if let Err(e) = self.detect(Instant::now()).await {
            debug!(error = %format!("{e:#}"), "first image detection");
        }
        let mut failed_before = false;
        loop {
            tokio::time::sleep(self.policy.period).await;
            match self.garbage_collect().await {
                Ok(()) => failed_before = false,
                // Once may be stats not ready yet; twice in a row is worth an event.
                Err(e) if failed_before => {
                    warn!(error = %format!("{e:#}"), "image garbage collection failed multiple times in a row");
                    self.events.record_ref(
                        self.node.clone(),
                        true,
                        "ImageGCFailed",
                        format!("{e:#}"),
                    );
                }
                Err(e) => {
                    warn!(error = %format!("{e:#}"), "image garbage collection failed once");
                    failed_before = true;
                }
            }
        }
    }

    /// Updates the records from the runtime; returns the images in use (every name they go
    /// by: id, tags, digests).
    async fn detect(&mut self, now: Instant) -> anyhow::Result<HashSet<String>> {
        let used: HashSet<String> = self
            .cri
            .list_containers(None)
            .await
            .context("listing containers")?
            .into_iter()
            .flat_map(|c| [c.image_ref, c.image.map(|i| i.image).unwrap_or_default()])
            .filter(|s| !s.is_empty())
            .collect();
        let images = self.cri.list_images(None).await.context("listing images")?;
        let first_detected = self.initialized.then_some(now);
        let mut in_use = HashSet::new();
        let mut current = HashSet::new();
        for image in images {
            let names: Vec<&String> = std::iter::once(&image.id)
                .chain(&image.repo_tags)
                .chain(&image.repo_digests)
                .collect();
            let record = self
                .records
                .entry(image.id.clone())
                .or_insert_with(|| ImageRecord {
                    first_detected,
                    last_used: None,
                    size: 0,
                    pinned: false,
                });
            if names.iter().any(|n| used.contains(*n)) {
                record.last_used = Some(now);
                in_use.insert(image.id.clone());
            }
            record.size = image.size;
            record.pinned = image.pinned || image.repo_tags.iter().any(|t| t == PAUSE_IMAGE);
            current.insert(image.id);
        }
        self.records.retain(|id, _| current.contains(id));
        self.initialized = true;
        Ok(in_use)
    }

    /// Removes the images unused for longer than the maximum age (upstream's
    /// `freeOldImages`); an error names those that could not go.
    async fn free_old_images(
        &mut self,
        in_use: &HashSet<String>,
        now: Instant,
    ) -> anyhow::Result<()> {
        let uptime = now.saturating_duration_since(self.began);
        let old = select_old(&self.records, in_use, now, self.policy.max_age, uptime);
        let mut errors = Vec::new();
        for id in old {
            match self.cri.remove_image(&id).await {
                Ok(()) => {
                    info!(image = %id, max_age = ?self.policy.max_age, "removed an image unused for longer than the maximum age");
                    self.records.remove(&id);
                }
                Err(e) => errors.push(format!("{id}: {e}")),
            }
        }
        if !errors.is_empty() {
            anyhow::bail!(
                "wanted to free images older than {:?}, encountered errors in image deletion: [{}]",
                self.policy.max_age,
                errors.join(", ")
            );
        }
        Ok(())
    }

    /// One round (upstream's `GarbageCollect`).
    async fn garbage_collect(&mut self) -> anyhow::Result<()> {
        let now = Instant::now();
        let in_use = self.detect(now).await?;
        self.free_old_images(&in_use, now).await?;
        let fs = self
            .cri
            .image_fs_info()
            .await
            .context("image filesystem stats")?
            .image_filesystems
            .into_iter()
            .next()
            .context("the runtime reports no image filesystem")?;
        let mount = fs.fs_id.map(|f| f.mountpoint).unwrap_or_default();
        let info = host::statfs(Path::new(&mount))
            .with_context(|| format!("statfs of the image filesystem {mount:?}"))?;
        if info.capacity == 0 {
            let message = "invalid capacity 0 on image filesystem".to_owned();
            self.events.record_ref(
                self.node.clone(),
                true,
                "InvalidDiskCapacity",
                message.clone(),
            );
            anyhow::bail!(message);
        }
        let Some(bytes) = self.policy.bytes_to_free(info.capacity, info.available) else {
            return Ok(());
        };
        info!(
            amount_to_free = bytes,
            high = self.policy.high_threshold_percent,
            low = self.policy.low_threshold_percent,
            "disk usage on image filesystem is over the high threshold, trying to free bytes down to the low threshold"
        );
        let (chosen, _) = select(&self.records, &in_use, bytes, now, self.policy.min_age);
        let mut freed = 0u64;
        for id in chosen {
            let size = self.records.get(&id).map_or(0, |r| r.size);
            match self.cri.remove_image(&id).await {
                Ok(()) => {
                    info!(image = %id, size, "removed unused image");
                    self.records.remove(&id);
                    freed = freed.saturating_add(size);
                }
                Err(e) => warn!(image = %id, error = %e, "cannot remove an unused image"),
            }
        }
        if freed < bytes {
            let message = format!(
                "Failed to garbage collect required amount of images. Attempted to free {bytes} \
                 bytes, but only found {freed} bytes eligible to free."
            );
            self.events.record_ref(
                self.node.clone(),
                true,
                "FreeDiskSpaceFailed",
                message.clone(),
            );
            anyhow::bail!(message);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(
        detected_ago: Option<u64>,
        used_ago: Option<u64>,
        size: u64,
        now: Instant,
    ) -> ImageRecord {
        let ago = |s: u64| now.checked_sub(Duration::from_secs(s)).unwrap_or(now);
        ImageRecord {
            first_detected: detected_ago.map(ago),
            last_used: used_ago.map(ago),
            size,
            pinned: false,
        }
    }

    #[test]
    fn thresholds_as_upstream() {
        let p = ImageGcPolicy::default();
        assert_eq!(p.validate(), Ok(()));
        // 84 % used: nothing to do; 85 %: down to 80 %.
        assert_eq!(p.bytes_to_free(1000, 160), None);
        assert_eq!(p.bytes_to_free(1000, 150), Some(50));
        assert_eq!(p.bytes_to_free(1000, 0), Some(200));
        assert_eq!(p.bytes_to_free(0, 0), None);
        let off = ImageGcPolicy {
            high_threshold_percent: 100,
            ..p.clone()
        };
        assert!(!off.enabled());
        let bad = ImageGcPolicy {
            high_threshold_percent: 70,
            ..p
        };
        assert_eq!(
            bad.validate().map_err(|e| e.to_string()),
            Err("LowThresholdPercent 80 can not be higher than HighThresholdPercent 70".into())
        );
    }

    #[test]
    fn least_recently_used_old_unused_images_go_first() {
        let now = Instant::now();
        let min_age = Duration::from_secs(120);
        let records: HashMap<String, ImageRecord> = [
            // In use: spared whatever its age.
            ("running", record(None, Some(0), 100, now)),
            // Used 10 min ago.
            ("used-10m", record(Some(3600), Some(600), 30, now)),
            // Used an hour ago.
            ("used-1h", record(Some(7200), Some(3600), 20, now)),
            // Never used, there since before the kubelet started.
            ("never-old", record(None, None, 10, now)),
            // Never used, seen a minute ago: too young.
            ("never-young", record(Some(60), None, 1000, now)),
            ("pinned", {
                let mut r = record(None, None, 1000, now);
                r.pinned = true;
                r
            }),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let in_use: HashSet<String> = ["running".to_owned()].into();
        let (chosen, freed) = select(&records, &in_use, 25, now, min_age);
        assert_eq!(chosen, ["never-old", "used-1h"]);
        assert_eq!(freed, 30);
        // More than the eligible images hold: all of them, and the shortfall shows.
        let (chosen, freed) = select(&records, &in_use, 10_000, now, min_age);
        assert_eq!(chosen, ["never-old", "used-1h", "used-10m"]);
        assert_eq!(freed, 60);
        // Two minutes on, the young one is old enough.
        let later = now + min_age;
        let (chosen, _) = select(&records, &in_use, 10_000, later, min_age);
        assert_eq!(chosen, ["never-old", "never-young", "used-1h", "used-10m"]);
    }

    #[test]
    fn images_unused_past_the_maximum_age_go_whatever_the_disk() {
        let now = Instant::now();
        let max_age = Duration::from_secs(600);
        let records: HashMap<String, ImageRecord> = [
            ("running", record(None, Some(3600), 1, now)),
            ("used-5m", record(Some(7200), Some(300), 1, now)),
            ("used-11m", record(Some(7200), Some(660), 1, now)),
            ("never-used", record(Some(7200), None, 1, now)),
            ("pinned", {
                let mut r = record(None, None, 1, now);
                r.pinned = true;
                r
            }),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let in_use: HashSet<String> = ["running".to_owned()].into();
        let hour = Duration::from_secs(3600);
        assert_eq!(
            select_old(&records, &in_use, now, max_age, hour),
            ["never-used", "used-11m"]
        );
        // The kubelet has not run for the maximum age yet: nothing is judged old.
        assert!(select_old(&records, &in_use, now, max_age, max_age).is_empty());
        // Off by default.
        let off = ImageGcPolicy::default().max_age;
        assert!(select_old(&records, &in_use, now, off, hour).is_empty());
    }
}
