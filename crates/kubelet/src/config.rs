//! The kubelet's settings (its flags, in upstream terms).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::paths::AgentDirs;

/// The Kubernetes version this kubelet reports (`nodeInfo.kubeletVersion`).
pub const KUBELET_VERSION: &str = "v1.33.0";

/// How the kubelet names itself to the API server.
pub const USER_AGENT: &str = "kubelet/v1.33.0 (linux) rkube";

/// Namespace of the node heartbeat Leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

#[derive(Clone, Debug)]
pub struct KubeletConfig {
    /// The Node's name (`--node-name`; default: the hostname, lowercased).
    pub node_name: String,
    /// The machine's hostname (the `Hostname` address).
    pub hostname: String,
    /// The `InternalIP` address and the pods' `hostIP`; detected when `None`.
    pub node_ip: Option<IpAddr>,
    /// rkube's `--data-dir`; the agent's files live under `<data_dir>/agent`.
    pub data_dir: PathBuf,
    /// Extra labels for the Node (`--node-labels`).
    pub node_labels: Vec<(String, String)>,
    /// Name of the CNI network (libcni caches results machine-wide by this name).
    pub cni_network: String,
    /// The Linux bridge the pods attach to.
    pub cni_bridge: String,
    /// Root of the pods' cgroups (cgroupfs driver): `/kubepods/[burstable|besteffort/]pod<uid>`.
    pub cgroup_root: String,
    /// The Service CIDR: routed into a sink on the node, so a VIP no proxy rule catches
    /// never leaves the machine.
    pub service_cidr: String,
    /// Whether image pulls may reach registries off this machine; when false only loopback
    /// registries are pulled from and other images must be imported.
    pub remote_image_pulls: bool,
    /// Cluster DNS servers written into pods' resolv.conf (`dnsPolicy: ClusterFirst`).
    pub cluster_dns: Vec<String>,
    pub cluster_domain: String,
    /// The network namespace the runtime (and so the pod network) lives in, when not the
    /// agent's own: probes connect to pod IPs from there.
    pub pod_netns: Option<PathBuf>,
    /// Node status is computed this often, and written when it changed.
    pub node_status_update_frequency: Duration,
    /// An unchanged node status is written again after this long (upstream's
    /// nodeStatusReportFrequency), so `lastHeartbeatTime` stays meaningful.
    pub node_status_report_frequency: Duration,
    /// The node Lease's duration; it is renewed every quarter of it (10 s for 40 s).
    pub node_lease_duration: Duration,
    /// How often the runtime is relisted to notice container changes (no CRI events in
    /// containerd 1.6).
    pub relist_period: Duration,
    /// A pod worker re-syncs at least this often even when nothing changed.
    pub resync_period: Duration,
    /// Crash-loop back-off: first delay, and the cap it doubles to.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// The kubelet server's port on the node IP (`status.daemonEndpoints`); 0 = any free
    /// port, the one bound being advertised.
    pub kubelet_port: i32,
    /// CA certificates (DER) that sign the clients the kubelet server accepts (the cluster CA,
    /// from the kubeconfig's certificate-authority-data). Empty: no server is started.
    pub client_ca: Vec<Vec<u8>>,
    /// Ask the cluster for a serving certificate signed by its CA (upstream's
    /// `serverTLSBootstrap`); otherwise the server's certificate is self-signed.
    pub server_tls_bootstrap: bool,
    /// How long the kubelet server keeps a TokenReview's answer about a bearer token
    /// (upstream's `authentication.webhook.cacheTTL`).
    pub authentication_cache_ttl: Duration,
    /// How long it keeps a SubjectAccessReview's answer: allowed, and not allowed (upstream's
    /// `authorization.webhook.cacheAuthorizedTTL` and `cacheUnauthorizedTTL`).
    pub authorized_cache_ttl: Duration,
    pub unauthorized_cache_ttl: Duration,
    /// `pods` capacity of the node.
    pub max_pods: i64,
    /// How often the stats provider samples every cgroup's CPU time for the CPU rates it
    /// reports (cAdvisor's `--housekeeping_interval` in upstream's kubelet).
    pub housekeeping_interval: Duration,
    /// Where local-path volumes of this node live (`<data_dir>/storage`, as k3s'
    /// `/var/lib/rancher/k3s/storage`), advertised as the Node's `rkube.io/local-storage-path`.
    pub local_storage_dir: PathBuf,
    /// How often directories of deleted local-path volumes are removed.
    pub local_storage_sweep_period: Duration,
    /// Where static pod manifests are read from (`--pod-manifest-path`; default
    /// `<data-dir>/agent/pod-manifests`, as k3s): a directory, or one file.
    pub pod_manifest_path: PathBuf,
    /// How often the manifests are read again (upstream's `fileCheckFrequency`, 20 s).
    pub file_check_frequency: Duration,
    /// The eviction manager's thresholds and periods (`--eviction-hard`, …).
    pub eviction: crate::eviction::EvictionConfig,
    /// Image garbage collection (`--image-gc-high-threshold`, `--image-gc-low-threshold`).
    pub image_gc: crate::image_gc::ImageGcPolicy,
    /// Container garbage collection (`--maximum-dead-containers-per-container`, ...).
    pub container_gc: crate::container_gc::ContainerGcPolicy,
}

impl KubeletConfig {
    /// Defaults for a node called `node_name` (or the hostname) keeping its files in `data_dir`.
    pub fn new(node_name: Option<&str>, data_dir: impl Into<PathBuf>) -> Self {
        let hostname = crate::machine::hostname();
        let data_dir: PathBuf = data_dir.into();
        KubeletConfig {
            local_storage_dir: data_dir.join("storage"),
            local_storage_sweep_period: Duration::from_secs(60),
            pod_manifest_path: AgentDirs::new(&data_dir).agent.join("pod-manifests"),
            file_check_frequency: Duration::from_secs(20),
            eviction: Default::default(),
            image_gc: Default::default(),
            container_gc: Default::default(),
            node_name: node_name.map_or_else(|| hostname.to_lowercase(), str::to_owned),
            hostname,
            node_ip: None,
            data_dir,
            node_labels: Vec::new(),
            cni_network: "rkube".into(),
            cni_bridge: "cni0".into(),
            cgroup_root: "/kubepods".into(),
            service_cidr: "10.43.0.0/16".into(),
            remote_image_pulls: false,
            cluster_dns: vec!["10.43.0.10".into()],
            cluster_domain: "cluster.local".into(),
            pod_netns: None,
            node_status_update_frequency: Duration::from_secs(10),
            node_status_report_frequency: Duration::from_secs(300),
            node_lease_duration: Duration::from_secs(40),
            relist_period: Duration::from_secs(1),
            resync_period: Duration::from_secs(10),
            backoff_initial: Duration::from_secs(10),
            backoff_max: Duration::from_secs(300),
            kubelet_port: 10250,
            client_ca: Vec::new(),
            server_tls_bootstrap: false,
            authentication_cache_ttl: Duration::from_secs(120),
            authorized_cache_ttl: Duration::from_secs(300),
            unauthorized_cache_ttl: Duration::from_secs(30),
            max_pods: 110,
            housekeeping_interval: Duration::from_secs(10),
        }
    }

    pub fn dirs(&self) -> AgentDirs {
        AgentDirs::new(&self.data_dir)
    }
}
