//! NodePorts (the seed's PodFitsPorts): a pod's hostPorts must be free on the node.

use crate::framework::{CycleState, Plugin, Status};
use crate::nodeinfo::{NodeInfo, ports_conflict};

pub const ERR: &str = "node(s) didn't have free ports for the requested pod ports";

pub struct NodePorts;

impl Plugin for NodePorts {
    fn name(&self) -> &'static str {
        "NodePorts"
    }
    fn filter(&self, state: &CycleState, node: &NodeInfo) -> Status {
        let clash = state.pod.ports.iter().any(|want| {
            node.used_ports
                .iter()
                .any(|used| ports_conflict(want, used))
        });
        if clash {
            Status::unschedulable(ERR)
        } else {
            Status::Success
        }
    }
}
