//! NodeUnschedulable: a cordoned node (`spec.unschedulable`) takes no new pods, unless
//! they tolerate `node.kubernetes.io/unschedulable:NoSchedule`.

use crate::framework::{CycleState, Plugin, Status};
use crate::nodeinfo::NodeInfo;
use crate::plugins::taint_toleration::tolerates;

pub const ERR: &str = "node(s) were unschedulable";

pub struct NodeUnschedulable;

impl Plugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        "NodeUnschedulable"
    }
    fn filter(&self, state: &CycleState, node: &NodeInfo) -> Status {
        let cordoned = node
            .node
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false);
        if !cordoned {
            return Status::Success;
        }
        let taint = k8s_openapi::api::core::v1::Taint {
            key: "node.kubernetes.io/unschedulable".into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        let tolerations = state
            .pod
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.as_deref())
            .unwrap_or_default();
        if tolerations.iter().any(|t| tolerates(t, &taint)) {
            Status::Success
        } else {
            Status::unresolvable(ERR)
        }
    }
}
