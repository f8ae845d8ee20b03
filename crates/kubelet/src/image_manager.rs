//! Images for containers: imagePullPolicy (Always / IfNotPresent / Never), pulls through CRI,
//! and a per-image back-off so a failing pull shows ErrImagePull, then ImagePullBackOff.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use tracing::{info, warn};

use crate::backoff::Backoff;
use crate::cri::{RuntimeClient, api};
use crate::events::{EventTarget, go_duration_precise};

/// Why a container cannot get its image: the waiting reason and message it shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageFailure {
    pub reason: &'static str,
    pub message: String,
    /// When to try again (for the pod worker's next sync).
    pub retry_in: Option<Duration>,
}

pub struct ImageManager {
    cri: RuntimeClient,
    backoff: Mutex<Backoff>,
    /// Whether pulls may reach registries off this machine (`--allow-remote-image-pulls`).
    remote_pulls: bool,
}

/// The registry an image reference names, as containerd resolves it: the first path
/// component when it looks like a host (has `.` or `:`, or is `localhost`), else Docker Hub.
pub fn registry_host(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first
        }
        _ => "docker.io",
    }
}

/// Whether a registry host (with an optional port) is this machine's loopback.
pub fn is_loopback_registry(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split_once(']').map_or(rest, |(ip, _)| ip)
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The pull policy Kubernetes defaults to: Always for `:latest` or untagged images, else
/// IfNotPresent.
pub fn default_policy(image: &str) -> &'static str {
    let name = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') {
        return "IfNotPresent";
    }
    match name.split_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

impl ImageManager {
    pub fn new(cri: RuntimeClient, initial: Duration, max: Duration, remote_pulls: bool) -> Self {
        ImageManager {
            cri,
            backoff: Mutex::new(Backoff::new(initial, max)),
            remote_pulls,
        }
    }

    /// Why `image` may not be pulled on this node, if it may not.
    fn pull_refused(&self, image: &str) -> Option<String> {
        let host = registry_host(image);
        (!self.remote_pulls && !is_loopback_registry(host)).then(|| {
            format!(
                "pulling image \"{image}\" would reach registry \"{host}\" off this machine; \
                 this node pulls only from loopback registries and uses images imported from \
                 its images directory (start the agent with --allow-remote-image-pulls to allow it)"
            )
        })
    }

    fn backoff(&self) -> std::sync::MutexGuard<'_, Backoff> {
        self.backoff.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes sure `image` is present per `policy`; returns its reference.
    pub async fn ensure(
        &self,
        image: &str,
        policy: Option<&str>,
        sandbox: &api::PodSandboxConfig,
        auths: &[api::AuthConfig],
        events: &EventTarget,
    ) -> Result<String, ImageFailure> {
        let policy = policy.unwrap_or_else(|| default_policy(image));
        let refused = self.pull_refused(image);
        // An image this node may not pull is used as present even under `Always`: on an
        // air-gapped node the imported copy is the only one there is.
        let present = if policy == "Always" && refused.is_none() {
            None
        } else {
            match self.cri.image_status(image).await {
                Ok(img) => img,
                Err(e) => {
                    return Err(ImageFailure {
                        reason: "ErrImagePull",
                        message: e.to_string(),
                        retry_in: Some(Duration::from_secs(1)),
                    });
                }
            }
        };
        if let Some(img) = present {
            events.normal(
                "Pulled",
                format!("Container image \"{image}\" already present on machine"),
            );
            return Ok(img.id);
        }
        if policy == "Never" {
            let message =
                format!("Container image \"{image}\" is not present with pull policy of Never");
            events.warning("ErrImageNeverPull", message.clone());
            return Err(ImageFailure {
                reason: "ErrImageNeverPull",
                message,
                retry_in: None,
            });
        }
        if let Some(message) = refused {
            events.warning(
                "Failed",
                format!("Failed to pull image \"{image}\": {message}"),
            );
            return Err(ImageFailure {
                reason: "ErrImagePull",
                message,
                retry_in: Some(Duration::from_secs(10)),
            });
        }
        let now = SystemTime::now();
        // Per pod and image, as upstream: one pod's failing pulls (say, without credentials)
        // do not hold back another's.
        let uid = sandbox.metadata.as_ref().map_or("", |m| m.uid.as_str());
        let key = format!("pull/{uid}/{image}");
        if let Some(wait) = self.backoff().remaining(&key, now, now) {
            events.normal("BackOff", format!("Back-off pulling image \"{image}\""));
            return Err(ImageFailure {
                reason: "ImagePullBackOff",
                message: format!("Back-off pulling image \"{image}\""),
                retry_in: Some(wait),
            });
        }
        info!(%image, "pulling image");
        events.normal("Pulling", format!("Pulling image \"{image}\""));
        let started = std::time::Instant::now();
        // Each matching credential in turn (most specific first), else anonymously.
        let mut attempts: Vec<Option<api::AuthConfig>> = auths.iter().cloned().map(Some).collect();
        if attempts.is_empty() {
            attempts.push(None);
        }
        let mut attempts = attempts.into_iter();
        let first = attempts.next().flatten();
        let mut result = self
            .cri
            .pull_image(image, first, Some(sandbox.clone()))
            .await;
        for auth in attempts {
            if result.is_ok() {
                break;
            }
            result = self
                .cri
                .pull_image(image, auth, Some(sandbox.clone()))
                .await;
        }
        match result {
            Ok(reference) => {
                self.backoff().reset(&key);
                let took = go_duration_precise(started.elapsed());
                let size = match self.cri.image_status(&reference).await {
                    Ok(Some(img)) => format!(" Image size: {} bytes.", img.size),
                    _ => String::new(),
                };
                events.normal(
                    "Pulled",
                    format!(
                        "Successfully pulled image \"{image}\" in {took} ({took} including waiting).{size}"
                    ),
                );
                Ok(reference)
            }
            Err(e) => {
                warn!(%image, error = %e, "image pull failed");
                events.warning("Failed", format!("Failed to pull image \"{image}\": {e}"));
                self.backoff().next(&key, now);
                // Look again soon: the container then shows ImagePullBackOff until the back-off
                // ends, as upstream's does.
                let retry_in = Some(Duration::from_secs(1));
                Err(ImageFailure {
                    reason: "ErrImagePull",
                    message: e.to_string(),
                    retry_in,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_pull_policies() {
        assert_eq!(default_policy("busybox"), "Always");
        assert_eq!(default_policy("busybox:latest"), "Always");
        assert_eq!(default_policy("rkube.local/busybox:test"), "IfNotPresent");
        assert_eq!(default_policy("localhost:5000/busybox"), "Always");
        assert_eq!(default_policy("r/b@sha256:abc"), "IfNotPresent");
    }

    #[test]
    fn registries() {
        assert_eq!(registry_host("busybox"), "docker.io");
        assert_eq!(registry_host("library/busybox:1"), "docker.io");
        assert_eq!(registry_host("rkube.local/pause:3.9"), "rkube.local");
        assert_eq!(registry_host("localhost/x"), "localhost");
        assert_eq!(registry_host("127.0.0.1:5000/b:t"), "127.0.0.1:5000");
        assert_eq!(registry_host("[::1]:5000/b"), "[::1]:5000");
        for ok in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.3.4.5",
            "[::1]:5000",
        ] {
            assert!(is_loopback_registry(ok), "{ok}");
        }
        for no in [
            "docker.io",
            "rkube.local",
            "10.0.0.1:5000",
            "registry.k8s.io",
            "[fd00::1]:5000",
        ] {
            assert!(!is_loopback_registry(no), "{no}");
        }
    }
}
