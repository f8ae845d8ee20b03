//! Node networking. [`cni`]: the pods' bridge network on a node (a minimal bridge CNI config
//! for the node's pod CIDR, which the kubelet writes for containerd); [`service_route`]: the
//! Service CIDR's route into a sink device on the node, so traffic to a ClusterIP never leaves
//! it; [`hostgw`]: what makes the pod network flat across nodes, host-gw routes, one per other
//! node, sending its pod CIDR to its InternalIP (the seed's IP-per-pod model without NAT
//! between pods; nodes must share a link, as flannel's host-gw backend requires);
//! [`netns`]: running network tools in a node's namespace.

pub mod cni;
pub mod hostgw;
pub mod netns;
pub mod service_route;
