//! NodeName (the seed's PodFitsHost): a pod naming a node fits only that node.

use crate::framework::{CycleState, Plugin, Status};
use crate::nodeinfo::NodeInfo;

pub const ERR: &str = "node(s) didn't match the requested node name";

pub struct NodeName;

impl Plugin for NodeName {
    fn name(&self) -> &'static str {
        "NodeName"
    }
    fn filter(&self, state: &CycleState, node: &NodeInfo) -> Status {
        match state
            .pod
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
        {
            Some(n) if !n.is_empty() && n != node.name() => Status::unresolvable(ERR),
            _ => Status::Success,
        }
    }
}
