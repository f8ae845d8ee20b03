//! A CRD's conversion webhook (`spec.conversion.strategy: Webhook`): objects whose
//! `apiVersion` is not the one wanted are sent in an `apiextensions.k8s.io/v1`
//! ConversionReview to the CRD's webhook, as upstream's webhook converter does, within 30 s.
//!
//! Conversion runs where objects are encoded and decoded, which is synchronous code on the
//! API server's runtime threads: the call is made with `block_in_place`, so the worker's
//! other tasks move to other threads while it waits (the server's runtime is
//! multi-threaded; on any other runtime conversion fails with an error, never a panic).

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::{Value, json};

use super::Convert;
use crate::error::{ApiError, ApiResult};
use crate::registry::Registry;
use crate::resources::ResourceInfo;

/// Upstream's conversion webhook timeout.
const TIMEOUT_SECONDS: u64 = 30;

pub struct Webhook {
    /// `group/version` of the storage version.
    pub storage: String,
    /// `{"name": <crd>, "clientConfig": ...}`: the webhook as the HTTPS client reads it.
    pub webhook: Value,
    /// Resolves a `service` clientConfig to its cluster IP.
    pub registry: Arc<Registry>,
}

fn api_version(obj: &Value) -> &str {
    obj.get("apiVersion").and_then(Value::as_str).unwrap_or("")
}

impl Webhook {
    fn failed(&self, info: &ResourceInfo, message: &str) -> ApiError {
        ApiError::internal(format!(
            "conversion webhook for {}, Kind={} failed: {message}",
            self.storage, info.kind
        ))
    }

    /// `obj` as `desired`, converted by the webhook.
    fn convert(&self, info: &ResourceInfo, obj: &Value, desired: &str) -> ApiResult<Value> {
        let uid = crate::meta::new_uid().to_string();
        let review = json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "ConversionReview",
            "request": {"uid": uid, "desiredAPIVersion": desired, "objects": [obj]},
        });
        let handle = tokio::runtime::Handle::try_current()
            .ok()
            .filter(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
            .ok_or_else(|| self.failed(info, "no multi-threaded runtime to call it from"))?;
        let body = tokio::task::block_in_place(|| {
            handle.block_on(crate::webhook_client::send(
                &*self.registry,
                &self.webhook,
                TIMEOUT_SECONDS,
                &review,
                "kube-apiserver",
            ))
        })
        .map_err(|e| self.failed(info, &e))?;
        let response: Value = serde_json::from_slice(&body)
            .map_err(|e| self.failed(info, &format!("invalid ConversionReview: {e}")))?;
        let r = &response["response"];
        if r.get("uid").and_then(Value::as_str) != Some(uid.as_str()) {
            return Err(self.failed(
                info,
                &format!(
                    "expected response uid {uid:?}, got {:?}",
                    r.get("uid").and_then(Value::as_str).unwrap_or("")
                ),
            ));
        }
        if r.pointer("/result/status").and_then(Value::as_str) != Some("Success") {
            let message = r
                .pointer("/result/message")
                .and_then(Value::as_str)
                .unwrap_or("");
            return Err(self.failed(info, &format!("conversion request failed: {message}")));
        }
        let converted = r
            .get("convertedObjects")
            .and_then(Value::as_array)
            .filter(|o| o.len() == 1)
            .and_then(|o| o.first())
            .ok_or_else(|| {
                self.failed(
                    info,
                    "expected 1 converted object in the webhook's response",
                )
            })?;
        if api_version(converted) != desired {
            return Err(self.failed(
                info,
                &format!(
                    "invalid converted object: apiVersion {:?} is not the desired {desired:?}",
                    api_version(converted)
                ),
            ));
        }
        // The webhook may change labels and annotations of the metadata, nothing else of it
        // (upstream restores the rest).
        let mut out = converted.clone();
        if let (Some(m), Some(orig)) = (out.get_mut("metadata"), obj.get("metadata")) {
            let labels = m.get("labels").cloned();
            let annotations = m.get("annotations").cloned();
            *m = orig.clone();
            for (key, value) in [("labels", labels), ("annotations", annotations)] {
                if let (Some(v), Some(mm)) = (value, m.as_object_mut()) {
                    mm.insert(key.into(), v);
                }
            }
        }
        Ok(out)
    }
}

impl Convert for Webhook {
    fn served(&self, info: &ResourceInfo, obj: Value) -> ApiResult<Value> {
        let desired = info.api_version();
        if api_version(&obj) == desired {
            return Ok(obj);
        }
        self.convert(info, &obj, &desired)
    }

    fn stored<'a>(&self, info: &ResourceInfo, obj: &'a Value) -> ApiResult<Cow<'a, Value>> {
        if api_version(obj) == self.storage {
            return Ok(Cow::Borrowed(obj));
        }
        self.convert(info, obj, &self.storage).map(Cow::Owned)
    }
}
