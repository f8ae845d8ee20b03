//! VolumeRestrictions (the seed's NoDiskConflict): two pods may not use the same
//! ReadWrite disk on one node (GCE PD, AWS EBS, RBD, iSCSI as Kubernetes checks them), and a
//! ReadWriteOncePod claim is used by one pod only.

use k8s_openapi::api::core::v1::Volume;

use crate::framework::{CycleState, Plugin, Status};
use crate::nodeinfo::NodeInfo;

pub const ERR: &str = "node(s) had no available disk";
pub const ERR_RWOP: &str =
    "node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode";

pub struct VolumeRestrictions;

fn volumes(p: &k8s_openapi::api::core::v1::Pod) -> &[Volume] {
    p.spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default()
}

/// Whether two volumes are the same disk mounted in a conflicting way.
fn conflict(a: &Volume, b: &Volume) -> bool {
    if let (Some(x), Some(y)) = (&a.gce_persistent_disk, &b.gce_persistent_disk) {
        return x.pd_name == y.pd_name && !(x.read_only == Some(true) && y.read_only == Some(true));
    }
    if let (Some(x), Some(y)) = (&a.aws_elastic_block_store, &b.aws_elastic_block_store) {
        return x.volume_id == y.volume_id;
    }
    if let (Some(x), Some(y)) = (&a.iscsi, &b.iscsi) {
        return x.iqn == y.iqn && !(x.read_only == Some(true) && y.read_only == Some(true));
    }
    if let (Some(x), Some(y)) = (&a.rbd, &b.rbd) {
        let shared_monitor = x.monitors.iter().any(|m| y.monitors.contains(m));
        return shared_monitor
            && x.pool == y.pool
            && x.image == y.image
            && !(x.read_only == Some(true) && y.read_only == Some(true));
    }
    false
}

impl Plugin for VolumeRestrictions {
    fn name(&self) -> &'static str {
        "VolumeRestrictions"
    }
    fn filter(&self, state: &CycleState, node: &NodeInfo) -> Status {
        let mine = volumes(&state.pod.pod);
        if mine.is_empty() {
            return Status::Success;
        }
        for other in &node.pods {
            for a in mine {
                if volumes(&other.pod).iter().any(|b| conflict(a, b)) {
                    return Status::unschedulable(ERR);
                }
            }
        }
        Status::Success
    }
}
