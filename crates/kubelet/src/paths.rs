//! Where the agent keeps its files under `<data-dir>/agent` (the layout follows k3s).

use std::path::{Path, PathBuf};

/// The agent's directories and files. Only computes paths; [`crate::containerd::Containerd`]
/// creates what it needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentDirs {
    /// `<data-dir>/agent`
    pub agent: PathBuf,
    /// `agent/containerd`: containerd's root, state, opt, runc root, socket, log and pid file.
    pub containerd: PathBuf,
    /// `agent/containerd/containerd.sock`: containerd's gRPC socket, which serves CRI too.
    pub containerd_socket: PathBuf,
    /// `agent/etc/containerd/config.toml`
    pub containerd_config: PathBuf,
    /// `agent/etc/containerd/certs.d`: per-registry `hosts.toml` (mirrors, plain HTTP, CAs).
    pub registry_config: PathBuf,
    /// `agent/etc/cni/net.d`: the CNI conflist containerd loads.
    pub cni_conf: PathBuf,
    /// `agent/cni/networks`: host-local IPAM's allocations.
    pub cni_ipam: PathBuf,
    /// `agent/images`: image tarballs imported at start (air-gapped machines).
    pub images: PathBuf,
    /// `agent/pods`: pod log directories, `<namespace>_<name>_<uid>/<container>/<n>.log`.
    pub pod_logs: PathBuf,
    /// `agent/kubelet/pods`: per pod UID, as upstream's `/var/lib/kubelet/pods/<uid>`:
    /// `volumes/<plugin>/<name>`, `containers/<name>/<id>` (termination logs), `etc-hosts`.
    pub kubelet_pods: PathBuf,
    /// `agent/serving-kubelet.crt|key`: the kubelet server's self-signed certificate.
    pub serving_cert: PathBuf,
    pub serving_key: PathBuf,
}

impl AgentDirs {
    pub fn new(data_dir: &Path) -> Self {
        let agent = data_dir.join("agent");
        let containerd = agent.join("containerd");
        AgentDirs {
            containerd_socket: containerd.join("containerd.sock"),
            containerd_config: agent.join("etc/containerd/config.toml"),
            registry_config: agent.join("etc/containerd/certs.d"),
            cni_conf: agent.join("etc/cni/net.d"),
            cni_ipam: agent.join("cni/networks"),
            images: agent.join("images"),
            pod_logs: agent.join("pods"),
            kubelet_pods: agent.join("kubelet/pods"),
            serving_cert: agent.join("serving-kubelet.crt"),
            serving_key: agent.join("serving-kubelet.key"),
            containerd,
            agent,
        }
    }

    /// A pod's log directory (CRI `log_directory`), named as the kubelet names it.
    pub fn pod_log_dir(&self, namespace: &str, name: &str, uid: &str) -> PathBuf {
        self.pod_logs.join(format!("{namespace}_{name}_{uid}"))
    }

    /// A pod's own directory (volumes, termination logs, /etc/hosts).
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.kubelet_pods.join(uid)
    }

    /// Where volume `name` of plugin `plugin` (e.g. `kubernetes.io~empty-dir`) lives.
    pub fn pod_volume_dir(&self, uid: &str, plugin: &str, name: &str) -> PathBuf {
        self.pod_dir(uid).join("volumes").join(plugin).join(name)
    }

    /// Termination-log files of container `name` of the pod, one per container instance.
    pub fn pod_container_dir(&self, uid: &str, name: &str) -> PathBuf {
        self.pod_dir(uid).join("containers").join(name)
    }

    /// The kubelet-managed `/etc/hosts` of the pod.
    pub fn pod_etc_hosts(&self, uid: &str) -> PathBuf {
        self.pod_dir(uid).join("etc-hosts")
    }

    pub fn containerd_log(&self) -> PathBuf {
        self.containerd.join("containerd.log")
    }

    pub fn containerd_pid_file(&self) -> PathBuf {
        self.containerd.join("containerd.pid")
    }
}
