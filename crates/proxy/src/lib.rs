//! kube-proxy on nftables (being built).
