//! Images for containers: imagePullPolicy (Always / IfNotPresent / Never), pulls through CRI,
//! and a per-image back-off so a failing pull shows ErrImagePull, then ImagePullBackOff.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use tracing::{info, warn};

use crate::backoff::Backoff;
use crate::cri::{RuntimeClient, api};

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
    pub fn new(cri: RuntimeClient, initial: Duration, max: Duration) -> Self {
        ImageManager {
            cri,
            backoff: Mutex::new(Backoff::new(initial, max)),
        }
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
    ) -> Result<String, ImageFailure> {
        let policy = policy.unwrap_or_else(|| default_policy(image));
        let present = if policy == "Always" {
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
            return Ok(img.id);
        }
        if policy == "Never" {
            return Err(ImageFailure {
                reason: "ErrImageNeverPull",
                message: format!(
                    "Container image \"{image}\" is not present with pull policy of Never"
                ),
                retry_in: None,
            });
        }
        let now = SystemTime::now();
        let key = format!("pull/{image}");
        if let Some(wait) = self.backoff().remaining(&key, now, now) {
            return Err(ImageFailure {
                reason: "ImagePullBackOff",
                message: format!("Back-off pulling image \"{image}\""),
                retry_in: Some(wait),
            });
        }
        info!(%image, "pulling image");
        match self
            .cri
            .pull_image(image, None, Some(sandbox.clone()))
            .await
        {
            Ok(reference) => {
                self.backoff().reset(&key);
                Ok(reference)
            }
            Err(e) => {
                warn!(%image, error = %e, "image pull failed");
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
}
