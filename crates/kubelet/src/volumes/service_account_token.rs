//! The `serviceAccountToken` source of projected volumes (upstream's token manager): a token
//! from the TokenRequest API for the pod's ServiceAccount, bound to the pod, for the audience
//! and lifetime asked. Tokens are cached and requested again once 80% of their life has
//! passed (or after 24 hours), at the pod sync that finds them so.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount, ServiceAccountTokenProjection};
use kube::Api;
use kube::api::PostParams;

use super::VolumeHost;
use super::atomic_writer::{FileProjection, Payload};

/// Upstream's rule: refresh at 80% of the lifetime, and at least daily.
const REFRESH_FRACTION: f64 = 0.8;
const MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// (namespace, account, audience, seconds, pod uid): what a token was issued for.
type TokenKey = (String, String, String, i64, String);

#[derive(Default)]
pub struct TokenManager {
    /// Each token, with when to refresh it.
    cache: Mutex<HashMap<TokenKey, (String, Instant)>>,
}

impl TokenManager {
    /// Forgets a pod's tokens (it is gone).
    pub fn forget_pod(&self, uid: &str) {
        if let Ok(mut c) = self.cache.lock() {
            c.retain(|k, _| k.4 != uid);
        }
    }

    async fn token(
        &self,
        client: &kube::Client,
        pod: &Pod,
        audience: &str,
        seconds: i64,
    ) -> Result<String, String> {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let account = pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into());
        let key = (
            ns.clone(),
            account.clone(),
            audience.to_string(),
            seconds,
            uid.clone(),
        );
        if let Ok(c) = self.cache.lock()
            && let Some((token, refresh_at)) = c.get(&key)
            && Instant::now() < *refresh_at
        {
            return Ok(token.clone());
        }
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: if audience.is_empty() {
                    Vec::new()
                } else {
                    vec![audience.to_string()]
                },
                expiration_seconds: Some(seconds),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: Some(name),
                    uid: Some(uid),
                }),
            },
            ..Default::default()
        };
        let api: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
        let issued: TokenRequest = api
            .create_subresource("token", &account, &PostParams::default(), &request)
            .await
            .map_err(|e| format!("failed to fetch token: {e}"))?;
        let token = issued.status.map(|s| s.token).unwrap_or_default();
        let life = Duration::from_secs(u64::try_from(seconds).unwrap_or(3600));
        let refresh_at = Instant::now() + life.mul_f64(REFRESH_FRACTION).min(MAX_AGE);
        if let Ok(mut c) = self.cache.lock() {
            c.insert(key, (token.clone(), refresh_at));
        }
        Ok(token)
    }
}

/// The file a `serviceAccountToken` source contributes to a projected volume.
pub async fn payload(
    host: &VolumeHost,
    pod: &Pod,
    src: &ServiceAccountTokenProjection,
    mode: u32,
) -> Result<Payload, String> {
    let seconds = src.expiration_seconds.unwrap_or(3600);
    let audience = src.audience.clone().unwrap_or_default();
    let token = host
        .tokens
        .token(&host.client, pod, &audience, seconds)
        .await?;
    let mut p = Payload::new();
    p.insert(
        src.path.clone(),
        FileProjection {
            data: token.into_bytes(),
            mode,
        },
    );
    Ok(p)
}
