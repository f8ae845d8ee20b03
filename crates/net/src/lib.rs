//! Node networking between nodes. Pods get their IPs from the CNI bridge on their node (see
//! the kubelet's `cni`); what makes the pod network flat across nodes is here: host-gw
//! routes, one per other node, sending its pod CIDR to its InternalIP (the seed's
//! IP-per-pod model without NAT between pods; nodes must share a link, as flannel's host-gw
//! backend requires).

pub mod hostgw;
pub mod netns;
