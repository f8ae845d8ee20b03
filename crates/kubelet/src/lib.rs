//! rkube's kubelet: registers its node and runs the pods bound to it as real containers.
//!
//! The runtime layer — how the node agent reaches a container runtime:
//!
//! * [`cri`]: CRI v1 client ([`RuntimeClient`]) over a unix socket.
//! * [`containerd`]: the agent's own supervised containerd ([`Containerd`]).
//! * [`images`]: the project's pause image, image tarballs built from host files, imports.
//! * [`Runtime`]: either a supervised containerd or an external
//!   `--container-runtime-endpoint`, and a client for it.
//!
//! The kubelet on top of it, [`Kubelet::run`]:
//!
//! * [`node`]: Node registration, pod CIDR, node status, the heartbeat Lease.
//! * [`pod_workers`]: one worker per pod: sandbox, images, init containers, containers,
//!   restarts with back-off, probes, graceful termination.
//! * [`kuberuntime`]: pod spec → CRI sandbox and container configs ([`env`], [`resources`]).
//! * [`status`]: pod status generation and the status manager.
//! * [`pleg`]: the periodic runtime relist that wakes pod workers and finds orphans.
//! * [`prober`]: exec, httpGet, tcpSocket and gRPC ([`grpc_probe`]) probes.
//! * [`lifecycle`]: postStart and preStop hooks.
//! * [`credentials`]: registry credentials from `imagePullSecrets`.
//! * [`volumes`]: the volume manager and one module per volume type (emptyDir, hostPath,
//!   configMap, secret, downwardAPI, projected), container mounts, `/etc/hosts`.
//! * [`events`]: events about pods and containers (Pulled, Created, Started, BackOff, …).
//! * [`server`]: the HTTPS server on port 10250 (`/containerLogs`, `/healthz`, `/pods`,
//!   `/run`, `/stats/summary`, `/metrics/resource`, `/metrics/cadvisor`, and through
//!   [`streaming`] `/exec`, `/attach`, `/portForward`), reading logs through
//!   [`container_logs`]; every caller authenticated (client certificate or TokenReview) and
//!   authorized (SubjectAccessReview) by the API server.
//! * [`stats`]: resource stats of the node, pods and containers (cgroups, /proc, CRI) with
//!   cAdvisor-style housekeeping for CPU rates: the Summary API and the two metrics endpoints.

pub mod backoff;
pub mod cgroups;
pub mod config;
pub mod container_gc;
pub mod container_logs;
pub mod containerd;
pub mod credentials;
pub mod cri;
pub mod env;
pub mod events;
pub mod eviction;
pub mod grpc_probe;
pub mod image_gc;
pub mod image_manager;
pub mod images;
pub mod kubelet;
pub mod kuberuntime;
pub mod lifecycle;
pub mod machine;
pub mod node;
pub mod paths;
pub mod pleg;
pub mod pod_workers;
pub mod prober;
pub mod resources;
pub mod runtime_state;
pub mod server;
pub mod service_env;
pub mod static_pods;
pub mod stats;
pub mod status;
pub mod streaming;
pub mod volumes;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use config::KubeletConfig;
pub use containerd::{Containerd, ContainerdConfig, ContainerdError, ContainerdState};
pub use cri::{CriError, RuntimeClient};
pub use images::PAUSE_IMAGE;
pub use kubelet::Kubelet;
pub use paths::AgentDirs;

/// Which container runtime the agent uses.
#[derive(Clone, Debug)]
pub enum RuntimeEndpoint {
    /// Start and supervise containerd under the data dir (the default).
    Supervised(Box<ContainerdConfig>),
    /// Use a runtime someone else runs (`--container-runtime-endpoint`); supervise nothing and
    /// import nothing: its sandbox image and images are its own business.
    External(PathBuf),
}

impl RuntimeEndpoint {
    /// From the agent's flags: `--container-runtime-endpoint` if given, else a supervised
    /// containerd under `data_dir` with default settings.
    pub fn from_flags(endpoint: Option<&str>, data_dir: &Path) -> Result<Self, CriError> {
        match endpoint {
            Some(e) => Ok(RuntimeEndpoint::External(cri::parse_endpoint(e)?)),
            None => Ok(RuntimeEndpoint::Supervised(Box::new(
                ContainerdConfig::new(data_dir),
            ))),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Containerd(#[from] ContainerdError),
    #[error(transparent)]
    Cri(#[from] CriError),
}

/// A ready container runtime: a CRI client, plus the supervised containerd if we run it.
#[derive(Debug)]
pub struct Runtime {
    client: RuntimeClient,
    containerd: Option<Containerd>,
}

impl Runtime {
    /// Starts (or, for an external endpoint, waits up to `wait` for) the runtime and returns
    /// once CRI answers.
    pub async fn start(endpoint: RuntimeEndpoint, wait: Duration) -> Result<Self, RuntimeError> {
        match endpoint {
            RuntimeEndpoint::Supervised(mut config) => {
                config.ready_timeout = config.ready_timeout.max(wait);
                let containerd = Containerd::start(*config).await?;
                Ok(Runtime {
                    client: containerd.client(),
                    containerd: Some(containerd),
                })
            }
            RuntimeEndpoint::External(socket) => Ok(Runtime {
                client: RuntimeClient::connect(socket, wait).await?,
                containerd: None,
            }),
        }
    }

    pub fn client(&self) -> &RuntimeClient {
        &self.client
    }

    /// The supervised containerd; `None` with an external endpoint.
    pub fn containerd(&self) -> Option<&Containerd> {
        self.containerd.as_ref()
    }

    /// Stops the supervised containerd, if any. Pods keep running.
    pub async fn shutdown(self) {
        if let Some(c) = self.containerd {
            c.shutdown().await;
        }
    }
}
