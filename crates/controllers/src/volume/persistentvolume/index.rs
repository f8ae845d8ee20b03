//! The controller's own caches of volumes and claims (upstream's persistentVolumeOrderedIndex
//! and claim store): fed by the informers and by the controller's own writes, newest
//! resourceVersion kept, so a sync never undoes a write whose watch event has not arrived.
//! Volumes are grouped by their set of access modes: a claim is matched against the groups
//! offering all its modes, fewest modes first, so it gets what is closest to what it asked for.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::Resource;

use super::matching;
use crate::volume::claims;

/// Access modes in upstream's canonical order, with the abbreviations of its index keys.
const MODES: [(&str, &str); 4] = [
    ("ReadWriteOnce", "RWO"),
    ("ReadOnlyMany", "ROX"),
    ("ReadWriteMany", "RWX"),
    ("ReadWriteOncePod", "RWOP"),
];

/// A set of access modes in canonical order (unknown modes last, sorted) and its index key.
fn mode_set(modes: &[String]) -> (String, Vec<String>) {
    let mut set: Vec<String> = MODES
        .iter()
        .filter(|(m, _)| modes.iter().any(|x| x == m))
        .map(|(m, _)| m.to_string())
        .collect();
    let mut unknown: Vec<String> = modes
        .iter()
        .filter(|m| !MODES.iter().any(|(k, _)| k == m))
        .cloned()
        .collect();
    unknown.sort();
    unknown.dedup();
    set.extend(unknown);
    let key = set
        .iter()
        .map(|m| {
            MODES
                .iter()
                .find(|(k, _)| k == m)
                .map_or(m.as_str(), |(_, a)| a)
        })
        .collect::<Vec<_>>()
        .join(",");
    (key, set)
}

struct Group {
    modes: Vec<String>,
    /// By name, so ties between equal sizes are broken the same way every time; with the
    /// capacity in bytes.
    volumes: BTreeMap<String, (Arc<PersistentVolume>, i64)>,
}

#[derive(Default)]
pub struct VolumeIndex {
    /// Volume name → its group key.
    group_of: HashMap<String, String>,
    groups: BTreeMap<String, Group>,
}

impl VolumeIndex {
    pub fn get(&self, name: &str) -> Option<Arc<PersistentVolume>> {
        let key = self.group_of.get(name)?;
        self.groups
            .get(key)?
            .volumes
            .get(name)
            .map(|(v, _)| v.clone())
    }

    pub fn len(&self) -> usize {
        self.group_of.len()
    }

    pub fn is_empty(&self) -> bool {
        self.group_of.is_empty()
    }

    /// Stores a version of a volume; `false` (and nothing stored) when an older one than the
    /// cached version.
    pub fn store(&mut self, volume: Arc<PersistentVolume>) -> bool {
        let name = claims::name(volume.meta()).to_string();
        if let Some(old) = self.get(&name) {
            if !claims::not_older(volume.meta(), old.meta()) {
                return false;
            }
            self.remove(&name);
        }
        let (key, modes) = mode_set(claims::volume_access_modes(&volume));
        let size = claims::bytes(claims::volume_storage(&volume));
        self.group_of.insert(name.clone(), key.clone());
        self.groups
            .entry(key)
            .or_insert_with(|| Group {
                modes,
                volumes: BTreeMap::new(),
            })
            .volumes
            .insert(name, (volume, size));
        true
    }

    pub fn remove(&mut self, name: &str) -> Option<Arc<PersistentVolume>> {
        let key = self.group_of.remove(name)?;
        let group = self.groups.get_mut(&key)?;
        let removed = group.volumes.remove(name).map(|(v, _)| v);
        if group.volumes.is_empty() {
            self.groups.remove(&key);
        }
        removed
    }

    /// The best volume for the claim (upstream's findBestMatchForClaim): the groups whose
    /// modes include all the claim's, fewest modes first, each searched with
    /// [`matching::find_matching_sized`].
    pub fn find_best_match(
        &self,
        claim: &PersistentVolumeClaim,
        delay_binding: bool,
    ) -> Option<Arc<PersistentVolume>> {
        let wanted = claims::claim_access_modes(claim);
        let mut candidates: Vec<(&String, &Group)> = self
            .groups
            .iter()
            .filter(|(_, g)| wanted.iter().all(|m| g.modes.contains(m)))
            .collect();
        candidates.sort_by(|(ka, a), (kb, b)| a.modes.len().cmp(&b.modes.len()).then(ka.cmp(kb)));
        candidates.into_iter().find_map(|(_, g)| {
            let sized = g.volumes.values().map(|(v, size)| (v, *size));
            matching::find_matching_sized(claim, sized, None, None, delay_binding).cloned()
        })
    }
}

/// The controller's claims, by `namespace/name`, newest version kept.
#[derive(Default)]
pub struct ClaimStore {
    claims: HashMap<String, Arc<PersistentVolumeClaim>>,
}

impl ClaimStore {
    pub fn get(&self, key: &str) -> Option<Arc<PersistentVolumeClaim>> {
        self.claims.get(key).cloned()
    }

    /// As [`VolumeIndex::store`].
    pub fn store(&mut self, claim: Arc<PersistentVolumeClaim>) -> bool {
        let key = claims::claim_key(&claim);
        if let Some(old) = self.claims.get(&key)
            && !claims::not_older(claim.meta(), old.meta())
        {
            return false;
        }
        self.claims.insert(key, claim);
        true
    }

    pub fn remove(&mut self, key: &str) -> Option<Arc<PersistentVolumeClaim>> {
        self.claims.remove(key)
    }
}
