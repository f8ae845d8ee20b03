//! PersistentVolumes and PersistentVolumeClaims start `Pending` until bound.

use serde_json::{Value, json};

use super::Strategy;

pub struct VolumeStrategy;

impl Strategy for VolumeStrategy {
    fn prepare_for_create(&self, obj: &mut Value, _user: Option<&crate::user::UserInfo>) {
        obj["status"] = json!({"phase": "Pending"});
    }
}
