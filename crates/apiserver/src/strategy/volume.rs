//! PersistentVolumes and PersistentVolumeClaims start `Pending` until bound, with upstream's
//! defaults: volumeMode Filesystem, and a volume's reclaim policy Retain. StorageClasses get
//! upstream's `storage.k8s.io/v1` defaults: reclaim policy Delete, binding mode Immediate.

use serde_json::{Value, json};

use super::{Strategy, set_default};

pub struct VolumeStrategy;

impl Strategy for VolumeStrategy {
    fn defaults(&self, obj: &mut Value) {
        let is_volume = obj.get("kind").and_then(Value::as_str) == Some("PersistentVolume");
        if let Some(spec) = obj.get_mut("spec") {
            set_default(spec, "volumeMode", json!("Filesystem"));
            if is_volume {
                set_default(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
            }
        }
    }

    fn prepare_for_create(&self, obj: &mut Value, _user: Option<&crate::user::UserInfo>) {
        obj["status"] = json!({"phase": "Pending"});
    }
}

pub struct StorageClassStrategy;

impl Strategy for StorageClassStrategy {
    fn defaults(&self, obj: &mut Value) {
        set_default(obj, "reclaimPolicy", json!("Delete"));
        set_default(obj, "volumeBindingMode", json!("Immediate"));
    }
}
