//! VolumeRestrictions (the seed's NoDiskConflict): two pods may not use the same
//! ReadWrite disk on one node (GCE PD, AWS EBS, RBD, iSCSI as Kubernetes checks them), and a
//! ReadWriteOncePod claim is used by one pod only (in the whole cluster: a pod whose claim
//! another scheduled pod uses fits nowhere, unless preemption removes that pod).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Volume};

use crate::framework::{CycleState, Plugin, Snapshot, Status};
use crate::nodeinfo::NodeInfo;

pub const ERR: &str = "node(s) had no available disk";
pub const ERR_RWOP: &str =
    "node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode";

/// Looks a claim up by namespace and name (the scheduler's claim informer).
pub type ClaimLookup = Arc<dyn Fn(&str, &str) -> Option<Arc<PersistentVolumeClaim>> + Send + Sync>;

/// Without `claims` (no claim informer) the ReadWriteOncePod check is off.
#[derive(Clone, Default)]
pub struct VolumeRestrictions {
    pub claims: Option<ClaimLookup>,
}

const KEY: &str = "VolumeRestrictions";

/// The pod's ReadWriteOncePod claims (`ns/name`) and the nodes whose pods already use each.
struct RwopState {
    users: HashMap<String, HashSet<String>>,
}

/// The `ns/name` of each claim a pod names in a `persistentVolumeClaim` volume.
fn claim_keys(pod: &Pod) -> impl Iterator<Item = String> + '_ {
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    volumes(pod).iter().filter_map(move |v| {
        Some(format!(
            "{ns}/{}",
            v.persistent_volume_claim.as_ref()?.claim_name
        ))
    })
}

fn uses(pod: &Pod, key: &str) -> bool {
    claim_keys(pod).any(|k| k == key)
}

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
    fn pre_filter(&self, state: &mut CycleState, snapshot: &Snapshot<'_>) -> Status {
        let Some(lookup) = &self.claims else {
            return Status::Success;
        };
        let pod = state.pod.pod.clone();
        let mut users = HashMap::new();
        for key in claim_keys(&pod) {
            let (ns, name) = key.split_once('/').unwrap_or_default();
            let Some(claim) = lookup(ns, name) else {
                return Status::unresolvable(format!("persistentvolumeclaim {name:?} not found"));
            };
            let rwop = claim
                .spec
                .as_ref()
                .and_then(|s| s.access_modes.as_ref())
                .is_some_and(|m| m.iter().any(|m| m == "ReadWriteOncePod"));
            if !rwop {
                continue;
            }
            let nodes: HashSet<String> = snapshot
                .pods()
                .filter(|(_, p)| uses(&p.pod, &key))
                .map(|(n, _)| n.name().to_string())
                .collect();
            users.insert(key, nodes);
        }
        if !users.is_empty() {
            state.write(KEY, RwopState { users });
        }
        Status::Success
    }

    fn filter(&self, state: &CycleState, node: &NodeInfo) -> Status {
        if let Some(s) = state.read::<RwopState>(KEY) {
            // Users elsewhere as the cycle began; on this node as `node` now has it (a
            // preemption trial removes pods from it).
            let conflict = s.users.iter().any(|(key, nodes)| {
                nodes.iter().any(|n| n != node.name())
                    || node.pods.iter().any(|p| uses(&p.pod, key))
            });
            if conflict {
                return Status::unschedulable(ERR_RWOP);
            }
        }
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
    use crate::framework::Snapshot;
    use crate::testutil::{filter_all, node, pod};

    #[test]
    fn the_same_disk_twice_on_one_node() {
        let disk = |ro: bool| json!({"volumes": [{"name": "d", "gcePersistentDisk": {"pdName": "data", "readOnly": ro}}]});
        let mut nodes = vec![node("n1", json!({})), node("n2", json!({}))];
        nodes[0].add_pod(pod("writer", disk(false), json!({})));
        let plugin = VolumeRestrictions::default();
        let got = filter_all(&plugin, &nodes, pod("p", disk(false), json!({})));
        assert_eq!(got, [Status::unschedulable(ERR), Status::Success]);
        // Read-only on both sides is allowed for GCE PD.
        nodes[0] = node("n1", json!({}));
        nodes[0].add_pod(pod("reader", disk(true), json!({})));
        let got = filter_all(&plugin, &nodes, pod("p", disk(true), json!({})));
        assert_eq!(got, [Status::Success, Status::Success]);
    }

    #[test]
    fn a_read_write_once_pod_claim_has_one_user_in_the_cluster() {
        let claim = |name: &str, mode: &str| -> Arc<PersistentVolumeClaim> {
            Arc::new(
                serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default"},
                    "spec": {"accessModes": [mode]}}))
                .unwrap(),
            )
        };
        let claims: HashMap<String, Arc<PersistentVolumeClaim>> = [
            (
                "default/solo".to_string(),
                claim("solo", "ReadWriteOncePod"),
            ),
            (
                "default/shared".to_string(),
                claim("shared", "ReadWriteOnce"),
            ),
        ]
        .into();
        let plugin = VolumeRestrictions {
            claims: Some(Arc::new(move |ns, name| {
                claims.get(&format!("{ns}/{name}")).cloned()
            })),
        };
        let using = |n: &str, c: &str| {
            pod(
                n,
                json!({"volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": c}}]}),
                json!({}),
            )
        };
        let mut nodes = vec![node("n1", json!({})), node("n2", json!({}))];
        // Nobody uses it yet: anywhere.
        let got = filter_all(&plugin, &nodes, using("a", "solo"));
        assert_eq!(got, [Status::Success, Status::Success]);
        // Once a pod on n1 uses it, no node fits another.
        nodes[0].add_pod(using("a", "solo"));
        let got = filter_all(&plugin, &nodes, using("b", "solo"));
        assert_eq!(
            got,
            [
                Status::unschedulable(ERR_RWOP),
                Status::unschedulable(ERR_RWOP)
            ]
        );
        // A ReadWriteOnce claim is not restricted.
        nodes[0].add_pod(using("c", "shared"));
        let got = filter_all(&plugin, &nodes, using("d", "shared"));
        assert_eq!(got, [Status::Success, Status::Success]);
        // A missing claim fails PreFilter with upstream's words.
        let snapshot = Snapshot { nodes: &nodes };
        let mut state = CycleState::new(using("e", "absent"));
        assert_eq!(
            plugin.pre_filter(&mut state, &snapshot),
            Status::unresolvable(r#"persistentvolumeclaim "absent" not found"#)
        );
    }
}
