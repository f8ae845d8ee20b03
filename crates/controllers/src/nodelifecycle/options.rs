//! The node lifecycle controller's settings, named after kube-controller-manager's flags.

use std::time::Duration;

/// How the node lifecycle controller watches node health and paces NoExecute tainting.
#[derive(Clone, Debug)]
pub struct Options {
    /// `--node-monitor-period`: how often every node's health is looked at (5 s).
    pub node_monitor_period: Duration,
    /// `--node-monitor-grace-period`: how long a node may go without a heartbeat (its Ready
    /// condition's `lastHeartbeatTime` or its Lease's `renewTime`) before its conditions are
    /// set to Unknown (50 s: upstream's default since 1.32, above the 45 s a kubelet's
    /// HTTP/2 health check needs to drop a dead connection).
    pub node_monitor_grace_period: Duration,
    /// `--node-startup-grace-period`: the same for a node that never posted a Ready
    /// condition (60 s).
    pub node_startup_grace_period: Duration,
    /// `--node-eviction-rate`: nodes per second that get a NoExecute taint while their zone
    /// is healthy (0.1).
    pub node_eviction_rate: f32,
    /// `--secondary-node-eviction-rate`: the same while a large zone is partially disrupted
    /// (0.01).
    pub secondary_node_eviction_rate: f32,
    /// `--large-cluster-size-threshold`: a zone of more nodes than this is large; a smaller
    /// partially disrupted zone gets no NoExecute taints at all (50).
    pub large_cluster_size_threshold: i32,
    /// `--unhealthy-zone-threshold`: the share of not-Ready nodes (at least three) from
    /// which a zone counts as partially disrupted (0.55).
    pub unhealthy_zone_threshold: f32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            node_monitor_period: Duration::from_secs(5),
            node_monitor_grace_period: Duration::from_secs(50),
            node_startup_grace_period: Duration::from_secs(60),
            node_eviction_rate: 0.1,
            secondary_node_eviction_rate: 0.01,
            large_cluster_size_threshold: 50,
            unhealthy_zone_threshold: 0.55,
        }
    }
}
