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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testutil::{filter_all, node, pod};

    #[test]
    fn the_same_disk_twice_on_one_node() {
        let disk = |ro: bool| json!({"volumes": [{"name": "d", "gcePersistentDisk": {"pdName": "data", "readOnly": ro}}]});
        let mut nodes = vec![node("n1", json!({})), node("n2", json!({}))];
        nodes[0].add_pod(pod("writer", disk(false), json!({})));
        let got = filter_all(
            &VolumeRestrictions,
            &nodes,
            pod("p", disk(false), json!({})),
        );
        assert_eq!(got, [Status::unschedulable(ERR), Status::Success]);
        // Read-only on both sides is allowed for GCE PD.
        nodes[0] = node("n1", json!({}));
        nodes[0].add_pod(pod("reader", disk(true), json!({})));
        let got = filter_all(&VolumeRestrictions, &nodes, pod("p", disk(true), json!({})));
        assert_eq!(got, [Status::Success, Status::Success]);
    }
}
