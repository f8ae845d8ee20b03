//! Asking the API server a TokenReview or a SubjectAccessReview for the kubelet server, as
//! upstream's webhook authenticator and authorizer do: transient failures (a dropped
//! connection, 429, 500, 504) are retried with upstream's default webhook back-off (500 ms,
//! ×1.5, 5 tries), and the whole exchange is bounded in time.

use std::fmt::Debug;
use std::time::Duration;

use k8s_openapi::serde::Serialize;
use k8s_openapi::serde::de::DeserializeOwned;
use kube::Api;
use kube::api::PostParams;
use tracing::debug;

/// Upstream's `DefaultAuthWebhookRetryBackoff`: first wait, growth, attempts.
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_FACTOR: f64 = 1.5;
const ATTEMPTS: u32 = 5;
/// How long one review may take, retries included.
const REVIEW_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// The API server answered that the review itself failed (TokenReview `status.error`).
    #[error("{0}")]
    Rejected(String),
    #[error("creating a {kind}: {source}")]
    Api {
        kind: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("creating a {kind}: no answer within {REVIEW_TIMEOUT:?}")]
    Timeout { kind: &'static str },
    #[error("webhook subject access review returned both allow and deny response")]
    AllowedAndDenied,
}

/// Upstream's `DefaultShouldRetry`: the errors that say "try again".
fn transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => matches!(s.code, 429 | 500 | 504) || s.reason == "Timeout",
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// Creates `review` and returns the API server's answer.
pub async fn create<K>(api: &Api<K>, review: &K, kind: &'static str) -> Result<K, ReviewError>
where
    K: Clone + Debug + Serialize + DeserializeOwned,
{
    let attempts = async {
        let mut wait = RETRY_FIRST;
        let mut attempt = 1;
        loop {
            match api.create(&PostParams::default(), review).await {
                Ok(answer) => return Ok(answer),
                Err(e) if attempt < ATTEMPTS && transient(&e) => {
                    debug!(kind, attempt, error = %e, "review failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait = wait.mul_f64(RETRY_FACTOR);
                    attempt += 1;
                }
                Err(source) => return Err(ReviewError::Api { kind, source }),
            }
        }
    };
    tokio::time::timeout(REVIEW_TIMEOUT, attempts)
        .await
        .map_err(|_| ReviewError::Timeout { kind })?
}
