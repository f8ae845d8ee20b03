//! Kinds to resources through API discovery (upstream's deferred discovery REST mapper):
//! an HPA names its target and its object metrics by apiVersion and kind, the API by
//! resource. Found mappings are kept; a kind not found is looked up again next time (it may
//! be a CustomResourceDefinition created since).

use std::collections::HashMap;
use std::sync::Mutex;

use anyhow::anyhow;
use kube::Client;
use kube::discovery::ApiResource;

/// The group of an `apiVersion` (`apps/v1` → `apps`, `v1` → core).
pub fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

pub struct RestMapper {
    client: Client,
    /// (group, kind) to its resources, the group's preferred version first.
    found: Mutex<HashMap<(String, String), Vec<ApiResource>>>,
}

impl RestMapper {
    pub fn new(client: Client) -> Self {
        RestMapper {
            client,
            found: Mutex::new(HashMap::new()),
        }
    }

    /// Every version's resource of `kind` in `group`, the preferred version first (as
    /// `RESTMappings`); an error in apimachinery's words when there is none.
    pub async fn mappings(&self, group: &str, kind: &str) -> anyhow::Result<Vec<ApiResource>> {
        let key = (group.to_string(), kind.to_string());
        if let Some(found) = self
            .found
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(found.clone());
        }
        let no_match = || anyhow!("no matches for kind \"{kind}\" in group \"{group}\"");
        let api_group = match kube::discovery::group(&self.client, group).await {
            Ok(g) => g,
            Err(kube::Error::Discovery(_)) => return Err(no_match()),
            Err(e) => return Err(anyhow!("{e}")),
        };
        let preferred = api_group.preferred_version_or_latest().to_string();
        let mut versions: Vec<String> = api_group.versions().map(str::to_string).collect();
        versions.sort_by_key(|v| *v != preferred);
        let found: Vec<ApiResource> = versions
            .iter()
            .flat_map(|v| api_group.versioned_resources(v))
            .map(|(ar, _)| ar)
            .filter(|ar| ar.kind == kind)
            .collect();
        if found.is_empty() {
            return Err(no_match());
        }
        self.found
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, found.clone());
        Ok(found)
    }
}
