//! A container's environment: `envFrom`, `env` values with `$(VAR)` expansion, and `valueFrom`
//! (fieldRef, resourceFieldRef, configMapKeyRef, secretKeyRef), then the Service variables
//! the container does not set itself ([`crate::service_env`]); and `$(VAR)` expansion of
//! command and args.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::Api;

use crate::resources::{ContainerResources, parse_scaled};

/// What a container's environment may refer to besides the pod.
#[derive(Clone, Debug, Default)]
pub struct EnvContext {
    pub pod_ips: Vec<String>,
    pub host_ip: String,
    pub node_name: String,
    /// Node allocatable, the value of resourceFieldRef limits a container does not set.
    pub node_milli_cpu: i64,
    pub node_memory: i64,
    /// The Service variables of the pod ([`crate::service_env::service_env`]).
    pub services: BTreeMap<String, String>,
}

/// Why an environment cannot be made: the container stays Waiting with
/// `CreateContainerConfigError` and this message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EnvError(pub String);

/// ConfigMaps and Secrets read once per container start.
#[derive(Default)]
struct Sources {
    config_maps: HashMap<String, Option<BTreeMap<String, String>>>,
    secrets: HashMap<String, Option<BTreeMap<String, String>>>,
}

impl Sources {
    async fn config_map(
        &mut self,
        client: &kube::Client,
        ns: &str,
        name: &str,
    ) -> Result<Option<&BTreeMap<String, String>>, EnvError> {
        if !self.config_maps.contains_key(name) {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
            let cm = api
                .get_opt(name)
                .await
                .map_err(|e| EnvError(format!("reading configmap {name:?}: {e}")))?;
            let data = cm.map(|cm| {
                let mut d = cm.data.unwrap_or_default();
                for (k, v) in cm.binary_data.unwrap_or_default() {
                    d.insert(k, String::from_utf8_lossy(&v.0).into_owned());
                }
                d
            });
            self.config_maps.insert(name.to_owned(), data);
        }
        Ok(self.config_maps.get(name).and_then(Option::as_ref))
    }

    async fn secret(
        &mut self,
        client: &kube::Client,
        ns: &str,
        name: &str,
    ) -> Result<Option<&BTreeMap<String, String>>, EnvError> {
        if !self.secrets.contains_key(name) {
            let api: Api<Secret> = Api::namespaced(client.clone(), ns);
            let s = api
                .get_opt(name)
                .await
                .map_err(|e| EnvError(format!("reading secret {name:?}: {e}")))?;
            let data = s.map(|s| {
                let mut d: BTreeMap<String, String> = s
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                    .collect();
                d.extend(s.string_data.unwrap_or_default());
                d
            });
            self.secrets.insert(name.to_owned(), data);
        }
        Ok(self.secrets.get(name).and_then(Option::as_ref))
    }
}

/// The container's environment, in order (later entries win, as in a process environment).
pub async fn container_env(
    client: &kube::Client,
    pod: &Pod,
    c: &Container,
    ctx: &EnvContext,
) -> Result<Vec<(String, String)>, EnvError> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut sources = Sources::default();
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, k: String, v: String| {
        env.retain(|(n, _)| *n != k);
        env.push((k, v));
    };

    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            let optional = r.optional.unwrap_or(false);
            match sources.config_map(client, ns, &r.name).await? {
                Some(data) => {
                    for (k, v) in data {
                        set(&mut env, format!("{prefix}{k}"), v.clone());
                    }
                }
                None if optional => {}
                None => return Err(EnvError(format!("configmap \"{}\" not found", r.name))),
            }
        }
        if let Some(r) = &from.secret_ref {
            let optional = r.optional.unwrap_or(false);
            match sources.secret(client, ns, &r.name).await? {
                Some(data) => {
                    for (k, v) in data {
                        set(&mut env, format!("{prefix}{k}"), v.clone());
                    }
                }
                None if optional => {}
                None => return Err(EnvError(format!("secret \"{}\" not found", r.name))),
            }
        }
    }

    for e in c.env.iter().flatten() {
        let value = if let Some(from) = &e.value_from {
            if let Some(f) = &from.field_ref {
                Some(field_value(pod, &f.field_path, ctx)?)
            } else if let Some(r) = &from.resource_field_ref {
                let target = match r.container_name.as_deref() {
                    Some(name) if !name.is_empty() => find_container(pod, name)
                        .ok_or_else(|| EnvError(format!("container {name:?} not found")))?,
                    _ => c,
                };
                let divisor = r.divisor.as_ref().map(|q| q.0.as_str());
                Some(resource_value(target, &r.resource, divisor, ctx)?)
            } else if let Some(k) = &from.config_map_key_ref {
                let optional = k.optional.unwrap_or(false);
                match sources.config_map(client, ns, &k.name).await? {
                    Some(data) => match data.get(&k.key) {
                        Some(v) => Some(v.clone()),
                        None if optional => None,
                        None => {
                            return Err(EnvError(format!(
                                "couldn't find key {} in ConfigMap {ns}/{}",
                                k.key, k.name
                            )));
                        }
                    },
                    None if optional => None,
                    None => return Err(EnvError(format!("configmap \"{}\" not found", k.name))),
                }
            } else if let Some(k) = &from.secret_key_ref {
                let optional = k.optional.unwrap_or(false);
                match sources.secret(client, ns, &k.name).await? {
                    Some(data) => match data.get(&k.key) {
                        Some(v) => Some(v.clone()),
                        None if optional => None,
                        None => {
                            return Err(EnvError(format!(
                                "couldn't find key {} in Secret {ns}/{}",
                                k.key, k.name
                            )));
                        }
                    },
                    None if optional => None,
                    None => return Err(EnvError(format!("secret \"{}\" not found", k.name))),
                }
            } else {
                None
            }
        } else {
            // The container's own variables first, then the Services' (upstream's
            // `MappingFuncFor(tmpEnv, serviceEnv)`).
            let mut known: HashMap<&str, &str> = ctx
                .services
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            known.extend(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            Some(expand(e.value.as_deref().unwrap_or(""), &known))
        };
        if let Some(v) = value {
            set(&mut env, e.name.clone(), v);
        }
    }
    // A Service's variable the container sets itself is left as the container set it.
    let own: std::collections::HashSet<String> = env.iter().map(|(k, _)| k.clone()).collect();
    env.extend(
        ctx.services
            .iter()
            .filter(|(k, _)| !own.contains(*k))
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    Ok(env)
}

pub(crate) fn find_container<'a>(pod: &'a Pod, name: &str) -> Option<&'a Container> {
    let spec = pod.spec.as_ref()?;
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == name)
}

/// The downward API's `fieldRef` values.
pub fn field_value(pod: &Pod, path: &str, ctx: &EnvContext) -> Result<String, EnvError> {
    let m = &pod.metadata;
    let spec = pod.spec.as_ref();
    let subscript = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|r| r.strip_prefix("['").or_else(|| r.strip_prefix("[\"")))
            .and_then(|r| r.strip_suffix("']").or_else(|| r.strip_suffix("\"]")))
    };
    if let Some(key) = subscript("metadata.labels") {
        return Ok(m
            .labels
            .as_ref()
            .and_then(|l| l.get(key))
            .cloned()
            .unwrap_or_default());
    }
    if let Some(key) = subscript("metadata.annotations") {
        return Ok(m
            .annotations
            .as_ref()
            .and_then(|l| l.get(key))
            .cloned()
            .unwrap_or_default());
    }
    Ok(match path {
        "metadata.name" => m.name.clone().unwrap_or_default(),
        "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec
            .and_then(|s| s.node_name.clone())
            .unwrap_or_else(|| ctx.node_name.clone()),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" => ctx.pod_ips.first().cloned().unwrap_or_default(),
        "status.podIPs" => ctx.pod_ips.join(","),
        "status.hostIP" | "status.hostIPs" => ctx.host_ip.clone(),
        other => {
            return Err(EnvError(format!(
                "unsupported fieldRef fieldPath {other:?}"
            )));
        }
    })
}

/// The downward API's `resourceFieldRef` values: a limit the container does not set is the
/// node's allocatable; values are rounded up to the divisor.
pub(crate) fn resource_value(
    c: &Container,
    resource: &str,
    divisor: Option<&str>,
    ctx: &EnvContext,
) -> Result<String, EnvError> {
    let r = ContainerResources::of(c);
    let bad = || {
        EnvError(format!(
            "unsupported resourceFieldRef resource {resource:?}"
        ))
    };
    let (value, cpu) = match resource {
        "limits.cpu" => (r.cpu_limit.unwrap_or(ctx.node_milli_cpu), true),
        "requests.cpu" => (r.cpu_request.unwrap_or(0), true),
        "limits.memory" => (r.memory_limit.unwrap_or(ctx.node_memory), false),
        "requests.memory" => (r.memory_request.unwrap_or(0), false),
        _ => return Err(bad()),
    };
    let scale = if cpu { 1000 } else { 1 };
    let div = divisor
        .and_then(|d| parse_scaled(d, scale))
        .filter(|d| *d > 0)
        .unwrap_or(scale);
    let out = (value + div - 1) / div;
    // Upstream reports at least 1 core for a cpu request of 0 < x < 1.
    Ok(out.max(i64::from(cpu && value > 0)).to_string())
}

/// Kubernetes' `$(VAR)` expansion: known variables are replaced, unknown references are left
/// as written, and `$$` escapes a `$`.
pub fn expand(input: &str, vars: &HashMap<&str, &str>) -> String {
    expand_with(input, |name| vars.get(name).map(|v| (*v).to_owned()))
}

/// `$(VAR)` expansion where an unknown variable expands to nothing and is reported (as the
/// kubelet does for `subPathExpr`): the result and the missing names, sorted.
pub fn expand_checked(input: &str, vars: &HashMap<&str, &str>) -> (String, Vec<String>) {
    let mut missing = std::collections::BTreeSet::new();
    let out = expand_with(input, |name| {
        Some(vars.get(name).map_or_else(
            || {
                missing.insert(name.to_owned());
                String::new()
            },
            |v| (*v).to_owned(),
        ))
    });
    (out, missing.into_iter().collect())
}

/// The expansion syntax; `lookup` gives a variable's value, `None` keeps the reference.
fn expand_with(input: &str, mut lookup: impl FnMut(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('(') {
            match body.find(')') {
                Some(end) => {
                    let name = &body[..end];
                    match lookup(name) {
                        Some(v) => out.push_str(&v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &body[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = body;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expansion() {
        let vars = HashMap::from([("A", "x"), ("B", "y")]);
        assert_eq!(expand("$(A)-$(B)", &vars), "x-y");
        assert_eq!(expand("$(C)", &vars), "$(C)");
        assert_eq!(expand("$$(A)", &vars), "$(A)");
        assert_eq!(expand("a$b", &vars), "a$b");
        assert_eq!(expand("$(A", &vars), "$(A");
        assert_eq!(expand("cost: 5$", &vars), "cost: 5$");
    }

    #[test]
    fn downward_api() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c",
                "resources": {"limits": {"cpu": "1500m", "memory": "64Mi"}}}]}
        }))
        .unwrap_or_default();
        let ctx = EnvContext {
            pod_ips: vec!["10.42.0.5".into()],
            host_ip: "192.0.2.1".into(),
            node_name: "n1".into(),
            node_milli_cpu: 2000,
            node_memory: 1 << 30,
            ..Default::default()
        };
        let f = |p: &str| field_value(&pod, p, &ctx).unwrap_or_else(|e| e.0);
        assert_eq!(f("metadata.name"), "p");
        assert_eq!(f("metadata.namespace"), "ns");
        assert_eq!(f("status.podIP"), "10.42.0.5");
        assert_eq!(f("spec.nodeName"), "n1");
        assert_eq!(f("metadata.labels['app']"), "web");
        assert!(field_value(&pod, "spec.bogus", &ctx).is_err());
        let c = pod
            .spec
            .as_ref()
            .map(|s| s.containers[0].clone())
            .unwrap_or_default();
        let r = |res: &str, d: Option<&str>| resource_value(&c, res, d, &ctx).unwrap_or_default();
        assert_eq!(r("limits.cpu", None), "2");
        assert_eq!(r("limits.cpu", Some("1m")), "1500");
        assert_eq!(r("limits.memory", Some("1Mi")), "64");
        assert_eq!(r("requests.memory", None), (64 << 20).to_string());
    }
}
