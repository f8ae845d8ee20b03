//! The filter and score plugins, one per module, named as Kubernetes names them.

pub mod balanced_allocation;
pub mod image_locality;
pub mod inter_pod_affinity;
pub mod node_affinity;
pub mod node_label;
pub mod node_name;
pub mod node_ports;
pub mod node_resources_fit;
pub mod node_unschedulable;
pub mod pod_topology_spread;
pub mod service_affinity;
pub mod taint_toleration;
pub mod volume_binding;
pub mod volume_restrictions;

use std::sync::Arc;

use crate::framework::{Plugin, Profile};

/// Kubernetes' default profile: its filters in its order, its scores with its weights.
/// VolumeBinding, which needs the storage informers, is added by `config` when it has them.
pub fn default_profile() -> Profile {
    let fit: Arc<dyn Plugin> = Arc::new(node_resources_fit::NodeResourcesFit);
    let taints: Arc<dyn Plugin> = Arc::new(taint_toleration::TaintToleration);
    let affinity: Arc<dyn Plugin> = Arc::new(node_affinity::NodeAffinity);
    let spread: Arc<dyn Plugin> = Arc::new(pod_topology_spread::PodTopologySpread);
    let pod_affinity: Arc<dyn Plugin> = Arc::new(inter_pod_affinity::InterPodAffinity);
    Profile {
        scheduler_name: "default-scheduler".into(),
        filters: vec![
            Arc::new(node_unschedulable::NodeUnschedulable),
            Arc::new(node_name::NodeName),
            taints.clone(),
            affinity.clone(),
            Arc::new(node_ports::NodePorts),
            fit.clone(),
            Arc::new(volume_restrictions::VolumeRestrictions::default()),
            spread.clone(),
            pod_affinity.clone(),
        ],
        scores: vec![
            (taints, 3),
            (affinity, 2),
            (fit, 1),
            (spread, 2),
            (pod_affinity, 2),
            (Arc::new(balanced_allocation::BalancedAllocation), 1),
            (Arc::new(image_locality::ImageLocality), 1),
        ],
        percentage_of_nodes_to_score: 0,
    }
}
