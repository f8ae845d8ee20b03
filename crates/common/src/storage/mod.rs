//! Storage rules the PersistentVolume controller, the scheduler's VolumeBinding, admission and
//! the kubelet all apply (upstream's `component-helpers/storage/volume` and `ephemeral`):
//! the annotations they talk through, accessors of claims and volumes with the API's
//! defaults, which volume a claim gets, which claims a pod uses, and what classes decide.

pub mod annotations;
pub mod claims;
pub mod classes;
pub mod matching;
pub mod pods;
