use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use k8s_cri::v1 as api;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};
use tracing::debug;

use super::CriError;

/// Deadline of an ordinary CRI call, as the kubelet's `--runtime-request-timeout` default.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Largest message accepted from the runtime; the kubelet uses 16 MiB too (big ListContainers).
const MAX_MESSAGE: usize = 16 << 20;

/// How long one readiness probe may take while waiting for the runtime to answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The output of [`RuntimeClient::exec_sync`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecResult {
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// A CRI v1 client (RuntimeService + ImageService) over a unix socket.
///
/// Cheap to clone and usable from many tasks at once: every call clones the underlying tonic
/// channel handle. The channel reconnects by itself when the runtime restarts; the call that
/// finds the connection broken fails with `Unavailable` (see [`CriError::is_unavailable`]),
/// later calls reconnect.
#[derive(Clone, Debug)]
pub struct RuntimeClient {
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
    socket: PathBuf,
    timeout: Duration,
}

/// Parses a `--container-runtime-endpoint` value: `unix:///run/x.sock` or a plain path.
pub fn parse_endpoint(endpoint: &str) -> Result<PathBuf, CriError> {
    let path = endpoint.strip_prefix("unix://").unwrap_or(endpoint);
    if path.starts_with('/') {
        Ok(PathBuf::from(path))
    } else {
        Err(CriError::InvalidEndpoint(endpoint.to_owned()))
    }
}

fn image_spec(image: &str) -> api::ImageSpec {
    api::ImageSpec {
        image: image.to_owned(),
        ..Default::default()
    }
}

impl RuntimeClient {
    /// A client for the runtime at `socket` that connects on first use and never waits.
    pub fn lazy(socket: impl Into<PathBuf>) -> Self {
        let socket = socket.into();
        let path = socket.clone();
        // The connector ignores the URI; it only has to parse.
        let channel =
            Endpoint::from_static("http://[::]:50051")
                .connect_timeout(Duration::from_secs(5))
                .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?))
                    }
                }));
        RuntimeClient {
            runtime: RuntimeServiceClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE),
            images: ImageServiceClient::new(channel).max_decoding_message_size(MAX_MESSAGE),
            socket,
            timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    /// Connects to the runtime at `socket`, retrying until it answers `Version` or `wait` has
    /// passed (the socket may not exist yet while containerd starts).
    pub async fn connect(socket: impl Into<PathBuf>, wait: Duration) -> Result<Self, CriError> {
        let client = Self::lazy(socket);
        client.wait_ready(wait).await?;
        Ok(client)
    }

    /// Waits until the runtime answers `Version`, for at most `wait`.
    pub async fn wait_ready(&self, wait: Duration) -> Result<api::VersionResponse, CriError> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(20);
        loop {
            let probe = self
                .clone()
                .with_request_timeout(self.timeout.min(PROBE_TIMEOUT));
            let last = match probe.version().await {
                Ok(v) => {
                    debug!(socket = %self.socket.display(), runtime = %v.runtime_name,
                        version = %v.runtime_version, waited = ?start.elapsed(), "CRI runtime ready");
                    return Ok(v);
                }
                Err(e) => e,
            };
            if start.elapsed() + pause > wait {
                return Err(CriError::NotReady {
                    socket: self.socket.clone(),
                    waited: start.elapsed(),
                    last: last.to_string(),
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(250));
        }
    }

    /// Sets the deadline of ordinary calls (default [`DEFAULT_REQUEST_TIMEOUT`]).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The runtime's unix socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        req.set_timeout(self.timeout);
        req
    }

    // ---- RuntimeService: runtime ------------------------------------------------------------

    pub async fn version(&self) -> Result<api::VersionResponse, CriError> {
        let req = self.request(api::VersionRequest {
            version: "v1".into(),
        });
        let resp = self.runtime.clone().version(req).await;
        resp.map(|r| r.into_inner())
            .map_err(|s| CriError::rpc("Version", "", s))
    }

    /// Runtime conditions (`RuntimeReady`, `NetworkReady`); `verbose` adds containerd's config.
    pub async fn status(&self, verbose: bool) -> Result<api::StatusResponse, CriError> {
        let req = self.request(api::StatusRequest { verbose });
        let resp = self.runtime.clone().status(req).await;
        resp.map(|r| r.into_inner())
            .map_err(|s| CriError::rpc("Status", "", s))
    }

    /// Tells the runtime the node's pod CIDR (containerd uses it only with a CNI conf template).
    pub async fn update_runtime_config(&self, pod_cidr: &str) -> Result<(), CriError> {
        let req = self.request(api::UpdateRuntimeConfigRequest {
            runtime_config: Some(api::RuntimeConfig {
                network_config: Some(api::NetworkConfig {
                    pod_cidr: pod_cidr.to_owned(),
                }),
            }),
        });
        let resp = self.runtime.clone().update_runtime_config(req).await;
        resp.map(|_| ())
            .map_err(|s| CriError::rpc("UpdateRuntimeConfig", pod_cidr, s))
    }

    // ---- RuntimeService: pod sandboxes ------------------------------------------------------

    /// Creates and starts a pod sandbox (the pause container, its namespaces and network);
    /// returns its ID. `runtime_handler` "" is the default (runc).
    pub async fn run_pod_sandbox(
        &self,
        config: api::PodSandboxConfig,
        runtime_handler: &str,
    ) -> Result<String, CriError> {
        let target = config
            .metadata
            .as_ref()
            .map(|m| format!("{}/{}", m.namespace, m.name))
            .unwrap_or_default();
        let req = self.request(api::RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: runtime_handler.to_owned(),
        });
        let resp = self.runtime.clone().run_pod_sandbox(req).await;
        resp.map(|r| r.into_inner().pod_sandbox_id)
            .map_err(|s| CriError::rpc("RunPodSandbox", target, s))
    }

    /// Stops every container of the sandbox and tears down its network; idempotent.
    pub async fn stop_pod_sandbox(&self, pod_sandbox_id: &str) -> Result<(), CriError> {
        let req = self.request(api::StopPodSandboxRequest {
            pod_sandbox_id: pod_sandbox_id.to_owned(),
        });
        let resp = self.runtime.clone().stop_pod_sandbox(req).await;
        resp.map(|_| ())
            .map_err(|s| CriError::rpc("StopPodSandbox", pod_sandbox_id, s))
    }

    /// Removes a stopped sandbox and its containers; idempotent.
    pub async fn remove_pod_sandbox(&self, pod_sandbox_id: &str) -> Result<(), CriError> {
        let req = self.request(api::RemovePodSandboxRequest {
            pod_sandbox_id: pod_sandbox_id.to_owned(),
        });
        let resp = self.runtime.clone().remove_pod_sandbox(req).await;
        resp.map(|_| ())
            .map_err(|s| CriError::rpc("RemovePodSandbox", pod_sandbox_id, s))
    }

    pub async fn pod_sandbox_status(
        &self,
        pod_sandbox_id: &str,
        verbose: bool,
    ) -> Result<api::PodSandboxStatusResponse, CriError> {
        let req = self.request(api::PodSandboxStatusRequest {
            pod_sandbox_id: pod_sandbox_id.to_owned(),
            verbose,
        });
        let resp = self.runtime.clone().pod_sandbox_status(req).await;
        resp.map(|r| r.into_inner())
            .map_err(|s| CriError::rpc("PodSandboxStatus", pod_sandbox_id, s))
    }

    /// Lists sandboxes. containerd 1.6 has no event stream, so the kubelet relists with this.
    pub async fn list_pod_sandbox(
        &self,
        filter: Option<api::PodSandboxFilter>,
    ) -> Result<Vec<api::PodSandbox>, CriError> {
        let req = self.request(api::ListPodSandboxRequest { filter });
        let resp = self.runtime.clone().list_pod_sandbox(req).await;
        resp.map(|r| r.into_inner().items)
            .map_err(|s| CriError::rpc("ListPodSandbox", "", s))
    }

    // ---- RuntimeService: containers ---------------------------------------------------------

    /// Creates a container in a sandbox; returns its ID. `sandbox_config` must be the config the
    /// sandbox was run with (the runtime takes log directory, cgroup parent, … from it).
    pub async fn create_container(
        &self,
        pod_sandbox_id: &str,
        config: api::ContainerConfig,
        sandbox_config: api::PodSandboxConfig,
    ) -> Result<String, CriError> {
        let target = format!(
            "{}/{}",
            pod_sandbox_id,
            config
                .metadata
                .as_ref()
                .map(|m| m.name.as_str())
                .unwrap_or_default()
        );
        let req = self.request(api::CreateContainerRequest {
            pod_sandbox_id: pod_sandbox_id.to_owned(),
            config: Some(config),
            sandbox_config: Some(sandbox_config),
        });
        let resp = self.runtime.clone().create_container(req).await;
        resp.map(|r| r.into_inner().container_id)
            .map_err(|s| CriError::rpc("CreateContainer", target, s))
    }

    pub async fn start_container(&self, container_id: &str) -> Result<(), CriError> {
        let req = self.request(api::StartContainerRequest {
            container_id: container_id.to_owned(),
        });
        let resp = self.runtime.clone().start_container(req).await;
        resp.map(|_| ())
            .map_err(|s| CriError::rpc("StartContainer", container_id, s))
    }

    /// SIGTERM (or the image's stop signal), then SIGKILL after `timeout`. The call lasts up to
    /// `timeout`, so its deadline is extended by it.
    pub async fn stop_container(
        &self,
        container_id: &str,
        timeout: Duration,
    ) -> Result<(), CriError> {
        let mut req = tonic::Request::new(api::StopContainerRequest {
            container_id: container_id.to_owned(),
            timeout: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
        });
        req.set_timeout(self.timeout + timeout);
        let resp = self.runtime.clone().stop_container(req).await;
        resp.map(|_| ())
            .map_err(|s| CriError::rpc("StopContainer", container_id, s))
    }

    pub async fn remove_container(&self, container_id: &str) -> Result<(), CriError> {
        let req = self.request(api::RemoveContainerRequest {
            container_id: container_id.to_owned(),
        });
        let resp = self.runtime.clone().remove_container(req).await;
        resp.map(|_| ())
            .map_err(|s| CriError::rpc("RemoveContainer", container_id, s))
    }

    pub async fn list_containers(
        &self,
        filter: Option<api::ContainerFilter>,
    ) -> Result<Vec<api::Container>, CriError> {
        let req = self.request(api::ListContainersRequest { filter });
        let resp = self.runtime.clone().list_containers(req).await;
        resp.map(|r| r.into_inner().containers)
            .map_err(|s| CriError::rpc("ListContainers", "", s))
    }

    /// State, exit code, reason, timestamps, image and log path of one container.
    pub async fn container_status(
        &self,
        container_id: &str,
        verbose: bool,
    ) -> Result<api::ContainerStatus, CriError> {
        self.container_status_response(container_id, verbose)
            .await?
            .status
            .ok_or_else(|| CriError::MissingField {
                op: "ContainerStatus",
                target: container_id.to_owned(),
                field: "status",
            })
    }

    /// The whole `ContainerStatusResponse`: with `verbose`, the runtime's `info` beside the
    /// status (what `crictl inspect` prints; the kubelet itself needs only the status).
    pub async fn container_status_response(
        &self,
        container_id: &str,
        verbose: bool,
    ) -> Result<api::ContainerStatusResponse, CriError> {
        let req = self.request(api::ContainerStatusRequest {
            container_id: container_id.to_owned(),
            verbose,
        });
        let resp = self.runtime.clone().container_status(req).await;
        Ok(resp
            .map_err(|s| CriError::rpc("ContainerStatus", container_id, s))?
            .into_inner())
    }

    /// Runs `cmd` in the container and collects its output (exec probes, tests). A `timeout` of
    /// zero means none; otherwise the runtime kills the command after it.
    pub async fn exec_sync(
        &self,
        container_id: &str,
        cmd: &[&str],
        timeout: Duration,
    ) -> Result<ExecResult, CriError> {
        let mut req = tonic::Request::new(api::ExecSyncRequest {
            container_id: container_id.to_owned(),
            cmd: cmd.iter().map(|s| (*s).to_owned()).collect(),
            timeout: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
        });
        // As the kubelet does: the command's own timeout plus the ordinary deadline.
        req.set_timeout(self.timeout + timeout);
        let resp = self.runtime.clone().exec_sync(req).await;
        let target = format!("{container_id}: {}", cmd.join(" "));
        let r = resp
            .map_err(|s| CriError::rpc("ExecSync", target, s))?
            .into_inner();
        Ok(ExecResult {
            exit_code: r.exit_code,
            stdout: r.stdout,
            stderr: r.stderr,
        })
    }

    /// A URL on the runtime's streaming server for an interactive exec (`kubectl exec`).
    pub async fn exec(&self, request: api::ExecRequest) -> Result<String, CriError> {
        let target = request.container_id.clone();
        let resp = self.runtime.clone().exec(self.request(request)).await;
        resp.map(|r| r.into_inner().url)
            .map_err(|s| CriError::rpc("Exec", target, s))
    }

    /// A URL on the runtime's streaming server for `kubectl attach`.
    pub async fn attach(&self, request: api::AttachRequest) -> Result<String, CriError> {
        let target = request.container_id.clone();
        let resp = self.runtime.clone().attach(self.request(request)).await;
        resp.map(|r| r.into_inner().url)
            .map_err(|s| CriError::rpc("Attach", target, s))
    }

    /// A URL on the runtime's streaming server for `kubectl port-forward`.
    pub async fn port_forward(
        &self,
        pod_sandbox_id: &str,
        ports: &[i32],
    ) -> Result<String, CriError> {
        let req = self.request(api::PortForwardRequest {
            pod_sandbox_id: pod_sandbox_id.to_owned(),
            port: ports.to_vec(),
        });
        let resp = self.runtime.clone().port_forward(req).await;
        resp.map(|r| r.into_inner().url)
            .map_err(|s| CriError::rpc("PortForward", pod_sandbox_id, s))
    }

    /// Makes the runtime reopen the container's log file (after the kubelet rotated it).
    pub async fn reopen_container_log(&self, container_id: &str) -> Result<(), CriError> {
        let req = self.request(api::ReopenContainerLogRequest {
            container_id: container_id.to_owned(),
        });
        let resp = self.runtime.clone().reopen_container_log(req).await;
        resp.map(|_| ())
            .map_err(|s| CriError::rpc("ReopenContainerLog", container_id, s))
    }

    pub async fn update_container_resources(
        &self,
        container_id: &str,
        linux: api::LinuxContainerResources,
    ) -> Result<(), CriError> {
        let req = self.request(api::UpdateContainerResourcesRequest {
            container_id: container_id.to_owned(),
            linux: Some(linux),
            ..Default::default()
        });
        let resp = self.runtime.clone().update_container_resources(req).await;
        resp.map(|_| ())
            .map_err(|s| CriError::rpc("UpdateContainerResources", container_id, s))
    }

    pub async fn container_stats(
        &self,
        container_id: &str,
    ) -> Result<api::ContainerStats, CriError> {
        let req = self.request(api::ContainerStatsRequest {
            container_id: container_id.to_owned(),
        });
        let resp = self.runtime.clone().container_stats(req).await;
        let resp = resp.map_err(|s| CriError::rpc("ContainerStats", container_id, s))?;
        resp.into_inner()
            .stats
            .ok_or_else(|| CriError::MissingField {
                op: "ContainerStats",
                target: container_id.to_owned(),
                field: "stats",
            })
    }

    pub async fn list_container_stats(
        &self,
        filter: Option<api::ContainerStatsFilter>,
    ) -> Result<Vec<api::ContainerStats>, CriError> {
        let req = self.request(api::ListContainerStatsRequest { filter });
        let resp = self.runtime.clone().list_container_stats(req).await;
        resp.map(|r| r.into_inner().stats)
            .map_err(|s| CriError::rpc("ListContainerStats", "", s))
    }

    // ---- ImageService -----------------------------------------------------------------------

    /// Pulls `image` (with registry credentials if given); returns the image reference
    /// (`repo@sha256:…`). No deadline: large pulls legitimately take long.
    pub async fn pull_image(
        &self,
        image: &str,
        auth: Option<api::AuthConfig>,
        sandbox_config: Option<api::PodSandboxConfig>,
    ) -> Result<String, CriError> {
        let req = tonic::Request::new(api::PullImageRequest {
            image: Some(image_spec(image)),
            auth,
            sandbox_config,
        });
        let resp = self.images.clone().pull_image(req).await;
        resp.map(|r| r.into_inner().image_ref)
            .map_err(|s| CriError::rpc("PullImage", image, s))
    }

    pub async fn list_images(
        &self,
        filter: Option<api::ImageFilter>,
    ) -> Result<Vec<api::Image>, CriError> {
        let req = self.request(api::ListImagesRequest { filter });
        let resp = self.images.clone().list_images(req).await;
        resp.map(|r| r.into_inner().images)
            .map_err(|s| CriError::rpc("ListImages", "", s))
    }

    /// The image if present, `None` if not (the runtime answers "no image", not NotFound).
    pub async fn image_status(&self, image: &str) -> Result<Option<api::Image>, CriError> {
        let req = self.request(api::ImageStatusRequest {
            image: Some(image_spec(image)),
            verbose: false,
        });
        let resp = self.images.clone().image_status(req).await;
        resp.map(|r| r.into_inner().image)
            .map_err(|s| CriError::rpc("ImageStatus", image, s))
    }

    /// Removes the image. containerd removes it by ID, so every tag of it goes.
    pub async fn remove_image(&self, image: &str) -> Result<(), CriError> {
        let req = self.request(api::RemoveImageRequest {
            image: Some(image_spec(image)),
        });
        let resp = self.images.clone().remove_image(req).await;
        resp.map(|_| ())
            .map_err(|s| CriError::rpc("RemoveImage", image, s))
    }

    /// Usage of the image filesystem (containerd samples it periodically: 0 right after start).
    pub async fn image_fs_info(&self) -> Result<api::ImageFsInfoResponse, CriError> {
        let req = self.request(api::ImageFsInfoRequest {});
        let resp = self.images.clone().image_fs_info(req).await;
        resp.map(|r| r.into_inner())
            .map_err(|s| CriError::rpc("ImageFsInfo", "", s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        assert_eq!(
            parse_endpoint("unix:///run/containerd/containerd.sock").ok(),
            Some(PathBuf::from("/run/containerd/containerd.sock"))
        );
        assert_eq!(
            parse_endpoint("/tmp/x.sock").ok(),
            Some(PathBuf::from("/tmp/x.sock"))
        );
        assert!(parse_endpoint("tcp://127.0.0.1:1234").is_err());
        assert!(parse_endpoint("relative.sock").is_err());
    }

    #[tokio::test]
    async fn missing_socket_is_not_ready() {
        let client = RuntimeClient::lazy("/nonexistent/rkube-test.sock")
            .with_request_timeout(Duration::from_millis(200));
        let err = client.wait_ready(Duration::from_millis(300)).await;
        let Err(err) = err else {
            panic!("a missing socket answered");
        };
        assert!(err.is_unavailable(), "{err}");
        assert!(
            err.to_string().contains("/nonexistent/rkube-test.sock"),
            "{err}"
        );
    }
}
