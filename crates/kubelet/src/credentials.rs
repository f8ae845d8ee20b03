//! Registry credentials from a pod's `imagePullSecrets` (upstream's pkg/credentialprovider
//! keyring): `kubernetes.io/dockerconfigjson` and legacy `kubernetes.io/dockercfg` Secrets,
//! matched against the image's registry (host, port and path prefix, `*.` wildcards), the
//! longest match first.

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;
use serde_json::Value;
use tracing::debug;

use crate::cri::api;

/// One registry entry of a docker config: its key as written and its credentials.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    key: String,
    auth: api::AuthConfig,
}

/// The entries of a `.dockerconfigjson` (`{"auths": {...}}`) or `.dockercfg` (`{...}`).
pub fn parse_docker_config(raw: &[u8]) -> Vec<Entry> {
    let Ok(v) = serde_json::from_slice::<Value>(raw) else {
        return Vec::new();
    };
    let auths = v.get("auths").unwrap_or(&v);
    let Some(map) = auths.as_object() else {
        return Vec::new();
    };
    let s = |e: &Value, k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    map.iter()
        .map(|(key, e)| Entry {
            key: key.clone(),
            auth: api::AuthConfig {
                username: s(e, "username"),
                password: s(e, "password"),
                // Base64 "user:password"; the runtime decodes it.
                auth: s(e, "auth"),
                // containerd parses this as a URL and checks it against the host; the key
                // already chose the registry, so it stays empty (as upstream's kubelet sends).
                server_address: String::new(),
                identity_token: s(e, "identitytoken"),
                registry_token: s(e, "registrytoken"),
            },
        })
        .collect()
}

/// `registry[:port]/path` of a docker config key (a scheme and a trailing `/v1/` or `/v2/`
/// dropped), and of an image (its tag or digest dropped).
fn key_location(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let k = k.trim_end_matches('/');
    let k = k
        .strip_suffix("/v1")
        .or_else(|| k.strip_suffix("/v2"))
        .unwrap_or(k);
    // Docker Hub's historical key.
    if k == "index.docker.io" {
        return "docker.io".into();
    }
    k.to_owned()
}

fn image_location(image: &str) -> String {
    let name = image.split('@').next().unwrap_or(image);
    let name = match name.rsplit_once(':') {
        Some((n, tag)) if !tag.contains('/') => n,
        _ => name,
    };
    let host = crate::image_manager::registry_host(name);
    if host == "docker.io" && !name.starts_with("docker.io/") {
        let path = if name.contains('/') {
            name.to_owned()
        } else {
            format!("library/{name}")
        };
        return format!("docker.io/{path}");
    }
    name.to_owned()
}

/// Whether a host pattern (with `*` matching one DNS label) matches a host.
fn host_matches(pattern: &str, host: &str) -> bool {
    let (p_host, p_port) = pattern.rsplit_once(':').unwrap_or((pattern, ""));
    let (h_host, h_port) = host.rsplit_once(':').unwrap_or((host, ""));
    if p_port != h_port {
        return false;
    }
    let p: Vec<&str> = p_host.split('.').collect();
    let h: Vec<&str> = h_host.split('.').collect();
    p.len() == h.len() && p.iter().zip(&h).all(|(p, h)| *p == "*" || p == h)
}

/// Whether a docker config key applies to `image`: same registry, and the key's path (if
/// any) is a prefix of the image's repository path.
fn key_matches(key: &str, image: &str) -> bool {
    let key = key_location(key);
    let image = image_location(image);
    let (k_host, k_path) = key.split_once('/').unwrap_or((key.as_str(), ""));
    let (i_host, i_path) = image.split_once('/').unwrap_or((image.as_str(), ""));
    host_matches(k_host, i_host)
        && (k_path.is_empty() || i_path == k_path || i_path.starts_with(&format!("{k_path}/")))
}

/// Credentials for `image` among `entries`, most specific key first.
pub fn lookup(entries: &[Entry], image: &str) -> Vec<api::AuthConfig> {
    let mut found: Vec<&Entry> = entries
        .iter()
        .filter(|e| key_matches(&e.key, image))
        .collect();
    found.sort_by_key(|e| std::cmp::Reverse(key_location(&e.key).len()));
    found.into_iter().map(|e| e.auth.clone()).collect()
}

/// The docker config entries of the pod's `imagePullSecrets` (a missing Secret is skipped,
/// as upstream: the pull is then tried without it).
pub async fn pull_secrets(client: &kube::Client, pod: &Pod) -> Vec<Entry> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut entries = Vec::new();
    let names = pod
        .spec
        .as_ref()
        .and_then(|s| s.image_pull_secrets.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|r| Some(r.name.clone()).filter(|n| !n.is_empty()));
    for name in names {
        match api.get_opt(&name).await {
            Ok(Some(secret)) => {
                let data = secret.data.unwrap_or_default();
                for key in [".dockerconfigjson", ".dockercfg"] {
                    if let Some(raw) = data.get(key) {
                        entries.extend(parse_docker_config(&raw.0));
                    }
                }
            }
            Ok(None) => debug!(secret = %name, "imagePullSecret not found; pulling without it"),
            Err(e) => debug!(secret = %name, error = %e, "cannot read an imagePullSecret"),
        }
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<Entry> {
        parse_docker_config(
            br#"{"auths": {
                "127.0.0.1:5000": {"auth": "YWxpY2U6czNjcmV0"},
                "https://127.0.0.1:5000/team/v2/": {"username": "bob", "password": "pw"},
                "*.example.com": {"username": "w", "password": "x"},
                "https://index.docker.io/v1/": {"username": "hub", "password": "y"}
            }}"#,
        )
    }

    fn users(image: &str) -> Vec<String> {
        lookup(&entries(), image)
            .into_iter()
            .map(|a| {
                if a.username.is_empty() {
                    a.auth
                } else {
                    a.username
                }
            })
            .collect()
    }

    #[test]
    fn keys_match_registry_and_path_prefix_most_specific_first() {
        assert_eq!(users("127.0.0.1:5000/web:1"), ["YWxpY2U6czNjcmV0"]);
        assert_eq!(
            users("127.0.0.1:5000/team/web:1"),
            ["bob", "YWxpY2U6czNjcmV0"]
        );
        assert_eq!(users("127.0.0.1:5000/teamx/web:1"), ["YWxpY2U6czNjcmV0"]);
        assert!(users("127.0.0.1:5001/web:1").is_empty());
        assert_eq!(users("registry.example.com/a/b@sha256:00"), ["w"]);
        assert!(users("a.b.example.com/x").is_empty());
        assert_eq!(users("busybox"), ["hub"]);
        assert_eq!(users("docker.io/library/busybox:1"), ["hub"]);
    }

    #[test]
    fn legacy_dockercfg_and_garbage() {
        let e = parse_docker_config(br#"{"localhost:5000": {"auth": "eDp5"}}"#);
        assert_eq!(lookup(&e, "localhost:5000/x:1")[0].auth, "eDp5");
        assert!(parse_docker_config(b"not json").is_empty());
    }
}
