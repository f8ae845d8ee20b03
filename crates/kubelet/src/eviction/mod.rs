//! The kubelet's eviction manager (upstream's `pkg/kubelet/eviction`): node pressure from
//! real signals, the MemoryPressure / DiskPressure / PIDPressure conditions, disk reclaim, and
//! pods evicted one at a time in upstream's order.
//!
//! * [`thresholds`]: signals, `--eviction-hard`/`--eviction-soft` thresholds, observations.
//! * [`ranking`]: which pod goes first.
//! * [`local_storage`]: emptyDir `sizeLimit` and `ephemeral-storage` limits.
//! * [`reclaim`]: dead containers and unused images, before pods, under disk pressure.
//! * [`manager`]: the loop, the conditions and the eviction itself.
//! * [`admit`]: new pods refused while the node is under pressure.

pub mod admit;
pub mod local_storage;
pub mod manager;
pub mod ranking;
pub mod reclaim;
pub mod thresholds;

pub use manager::{EvictionConfig, EvictionManager, Pressure};
