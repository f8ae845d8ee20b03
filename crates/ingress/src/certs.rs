//! Parsed certificates by Secret and resourceVersion: a rebuild for an endpoint change does
//! not parse every key again.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use rustls::sign::CertifiedKey;

use crate::tls;

type Parsed = Result<Arc<CertifiedKey>, String>;

#[derive(Default)]
pub struct CertCache {
    /// `namespace/name` → (resourceVersion, parse result).
    entries: HashMap<String, (Option<String>, Parsed)>,
    used: HashSet<String>,
}

impl CertCache {
    /// Begins a build: what it does not ask for is dropped at [`CertCache::finish_build`].
    pub fn start_build(&mut self) {
        self.used.clear();
    }

    pub fn finish_build(&mut self) {
        let used = std::mem::take(&mut self.used);
        self.entries.retain(|k, _| used.contains(k));
    }

    /// The Secret's certificate, parsed once per resourceVersion.
    pub fn get(&mut self, secret: &Secret) -> Parsed {
        let m = &secret.metadata;
        let key = format!(
            "{}/{}",
            m.namespace.as_deref().unwrap_or_default(),
            m.name.as_deref().unwrap_or_default()
        );
        self.used.insert(key.clone());
        if let Some((rv, parsed)) = self.entries.get(&key)
            && rv.is_some()
            && *rv == m.resource_version
        {
            return parsed.clone();
        }
        let parsed = tls::from_secret(secret)
            .map(Arc::new)
            .map_err(|e| e.to_string());
        self.entries
            .insert(key, (m.resource_version.clone(), parsed.clone()));
        parsed
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
