//! kube-aggregator's APIService controllers, in one loop over the watch cache:
//!
//! - autoregister and crdregistration: an APIService (no `service`: `Local`) for every
//!   group-version this server serves — the built-in ones (labelled `onstart`, with
//!   upstream's priorities), and those of CRDs and in-process services (labelled `true`,
//!   removed again when the group-version goes);
//! - the available controller: local APIServices are `Available=True` (`Local`); a remote
//!   one's Service is resolved to a ready endpoint and `/apis/<group>/<version>` fetched
//!   over TLS with the front-proxy certificate: `Passed`, or why not (`ServiceNotFound`,
//!   `ServicePortError`, `EndpointsNotFound`, `MissingEndpoints`, `FailedDiscoveryCheck`).
//!   The fetched resources are what aggregated discovery lists for it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::task::JoinHandle;

use super::endpoint::{self, Unavailable};
use super::remote::{OpenApiDoc, ProxyClient, Remote, Target, intern};
use crate::error::{ApiError, ApiResult};
use crate::handler::ApiState;
use crate::registry::{DeleteOptions, WriteOptions};
use crate::resources::ResourceInfo;

const GROUP: &str = "apiregistration.k8s.io";
/// Upstream's label on the APIServices it manages, `onstart` or `true`.
const AUTOMANAGED: &str = "kube-aggregator.kubernetes.io/automanaged";
/// How often the loop looks at the APIServices (the watch cache: cheap).
const TICK: Duration = Duration::from_millis(500);
/// How often an available remote APIService is checked again; an unavailable one is
/// retried every second.
const RECHECK: Duration = Duration::from_secs(30);
const RETRY: Duration = Duration::from_secs(1);
/// Upstream's discovery check timeout.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Upstream's `apiVersionPriorities` (kube-apiserver's and the generic API server's):
/// group priority and version priority of each built-in group-version.
fn builtin_priority(group: &str, version: &str) -> Option<(i64, i64)> {
    Some(match (group, version) {
        ("", "v1") | ("apiregistration.k8s.io", "v1") => (18000, 1),
        ("apps", "v1") => (17800, 15),
        ("events.k8s.io", "v1") => (17750, 15),
        ("authentication.k8s.io", "v1") => (17700, 15),
        ("authorization.k8s.io", "v1") => (17600, 15),
        ("autoscaling", "v1") => (17500, 15),
        ("autoscaling", "v2") => (17500, 30),
        ("batch", "v1") => (17400, 15),
        ("certificates.k8s.io", "v1") => (17300, 15),
        ("networking.k8s.io", "v1") => (17200, 15),
        ("policy", "v1") => (17100, 15),
        ("rbac.authorization.k8s.io", "v1") => (17000, 15),
        ("storage.k8s.io", "v1") => (16800, 15),
        ("apiextensions.k8s.io", "v1") | ("admissionregistration.k8s.io", "v1") => (16700, 15),
        ("scheduling.k8s.io", "v1") => (16600, 15),
        ("coordination.k8s.io", "v1") => (16500, 15),
        ("node.k8s.io", "v1") => (16300, 15),
        ("discovery.k8s.io", "v1") => (16200, 15),
        ("flowcontrol.apiserver.k8s.io", "v1") => (16100, 21),
        _ => return None,
    })
}

/// What the loop remembers of a remote APIService between checks.
struct Checked {
    /// The spec it was checked with: a changed spec is checked at once.
    spec: Value,
    at: Instant,
    remote: Remote,
}

/// Starts the loop; it runs until the handle is aborted.
pub fn start(state: Arc<ApiState>, client: ProxyClient) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut generation = None;
        let mut checked: HashMap<String, Checked> = HashMap::new();
        loop {
            if let Err(e) = tick(&state, &client, &mut generation, &mut checked).await {
                tracing::warn!(error = %e.message, "APIService controller");
            }
            tokio::time::sleep(TICK).await;
        }
    })
}

fn info() -> ApiResult<&'static ResourceInfo> {
    crate::resources::by_kind(GROUP, "APIService")
}

async fn tick(
    state: &ApiState,
    client: &ProxyClient,
    generation: &mut Option<u64>,
    checked: &mut HashMap<String, Checked>,
) -> ApiResult<()> {
    // Local APIServices follow the served kinds: reconciled when those change.
    let now = crate::kinds::generation();
    if *generation != Some(now) {
        register_local(state).await?;
        *generation = Some(now);
    }
    let services = state.registry.cached_objects(info()?, None).await?;
    let mut due = Vec::new();
    let mut remote_names = std::collections::HashSet::new();
    for svc in &services {
        let name = crate::meta::name(svc).to_string();
        let spec = svc.get("spec").cloned().unwrap_or(Value::Null);
        if spec.get("service").is_none_or(Value::is_null) {
            let message = "Local APIServices are always available";
            report(set_available(state, svc, true, "Local", message).await);
            continue;
        }
        remote_names.insert(name.clone());
        if is_due(state, checked.get(&name), &spec).await {
            due.push((svc.clone(), spec));
        }
    }
    checked.retain(|name, _| remote_names.contains(name));
    let checks = due
        .iter()
        .map(|(svc, spec)| check(state, client, crate::meta::name(svc), spec));
    let results = futures::future::join_all(checks).await;
    for ((svc, spec), (remote, reason, message)) in due.into_iter().zip(results) {
        report(set_available(state, &svc, remote.available(), reason, &message).await);
        let checked_at = Instant::now();
        let entry = Checked {
            spec,
            at: checked_at,
            remote,
        };
        checked.insert(entry.remote.name.clone(), entry);
    }
    state
        .catalog
        .remote
        .set(checked.values().map(|c| c.remote.clone()).collect());
    Ok(())
}

/// Whether a remote APIService is checked now: never checked, its spec changed, its
/// Service now resolves elsewhere (a new endpoint), or its recheck (retry) time is up.
async fn is_due(state: &ApiState, last: Option<&Checked>, spec: &Value) -> bool {
    let Some(last) = last.filter(|c| c.spec == *spec) else {
        return true;
    };
    match &last.remote.target {
        Some(target) => {
            let moved = endpoint::resolve(&state.registry, spec)
                .await
                .map_or(true, |addr| addr != target.addr);
            moved || last.at.elapsed() >= RECHECK
        }
        None => last.at.elapsed() >= RETRY,
    }
}

/// Logs a failed status write: the next change writes it again.
fn report(result: ApiResult<()>) {
    if let Err(e) = result {
        tracing::warn!(error = %e.message, "writing an APIService's status");
    }
}

/// Checks one remote APIService: the Remote (with a target when available), the reason
/// and message of its `Available` condition.
async fn check(
    state: &ApiState,
    client: &ProxyClient,
    name: &str,
    spec: &Value,
) -> (Remote, &'static str, String) {
    let s = |k: &str| spec.get(k).and_then(Value::as_str).unwrap_or("");
    let int = |k: &str| spec.get(k).and_then(Value::as_i64).unwrap_or(0);
    let (group, version) = (s("group"), s("version"));
    let mut remote = Remote {
        name: name.to_string(),
        group: intern(group),
        version: intern(version),
        group_priority: int("groupPriorityMinimum"),
        version_priority: int("versionPriority"),
        target: None,
        resources: Default::default(),
        discovery: None,
        openapi: None,
    };
    let addr = match endpoint::resolve(&state.registry, spec).await {
        Ok(addr) => addr,
        Err(Unavailable { reason, message }) => return (remote, reason, message),
    };
    let service = spec.get("service").cloned().unwrap_or_default();
    let svc = |k: &str| service.get(k).and_then(Value::as_str).unwrap_or("");
    let tls = match client.connector(spec) {
        Ok(t) => t,
        Err(e) => return (remote, "FailedDiscoveryCheck", e),
    };
    let target = Arc::new(Target {
        addr,
        server_name: format!("{}.{}.svc", svc("name"), svc("namespace")),
        tls,
    });
    let path = format!("/apis/{group}/{version}");
    let url = format!("https://{addr}{path}");
    let get = super::proxy::get(&target, &path, "application/json", name);
    let body = match tokio::time::timeout(CHECK_TIMEOUT, get).await {
        Ok(Ok((status, _, body))) if (200..300).contains(&status) => body,
        Ok(Ok((status, ..))) => {
            let message =
                format!("failing or missing response from {url}: bad status from {url}: {status}");
            return (remote, "FailedDiscoveryCheck", message);
        }
        Ok(Err(e)) => {
            let message = format!("failing or missing response from {url}: {e}");
            return (remote, "FailedDiscoveryCheck", message);
        }
        Err(_) => {
            let message =
                format!("failing or missing response from {url}: context deadline exceeded");
            return (remote, "FailedDiscoveryCheck", message);
        }
    };
    remote.resources = Arc::new(
        serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("resources").and_then(Value::as_array).cloned())
            .unwrap_or_default(),
    );
    remote.discovery = aggregated_discovery(&target, name, group, version).await;
    remote.openapi = openapi_v3(&target, name, group, version).await;
    remote.target = Some(target);
    (remote, "Passed", "all checks passed".to_string())
}

/// The server's OpenAPI v3 document of `group/version`, if it serves one (upstream's
/// OpenAPI v3 aggregator reads its `/openapi/v3` index, then the document it points at).
async fn openapi_v3(
    target: &Target,
    name: &str,
    group: &str,
    version: &str,
) -> Option<Arc<OpenApiDoc>> {
    let fetch = |path: String| async move {
        let get = super::proxy::get(target, &path, "application/json", name);
        match tokio::time::timeout(CHECK_TIMEOUT, get).await {
            Ok(Ok((200, _, body))) => Some(body),
            _ => None,
        }
    };
    let index: Value = serde_json::from_slice(&fetch("/openapi/v3".into()).await?).ok()?;
    let url = index
        .get("paths")?
        .get(format!("apis/{group}/{version}"))?
        .get("serverRelativeURL")?
        .as_str()?
        .to_string();
    let doc = fetch(url).await?;
    Some(Arc::new(OpenApiDoc::new(doc)))
}

/// The server's aggregated discovery of `group/version`, if it serves aggregated discovery
/// (upstream's discovery manager asks `/apis` for it, and converts the legacy list when the
/// answer is not one).
async fn aggregated_discovery(
    target: &Target,
    name: &str,
    group: &str,
    version: &str,
) -> Option<Arc<Value>> {
    const ACCEPT: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
    let get = super::proxy::get(target, "/apis", ACCEPT, name);
    let (status, content_type, body) = tokio::time::timeout(CHECK_TIMEOUT, get).await.ok()?.ok()?;
    if !(200..300).contains(&status) || !content_type.contains("as=APIGroupDiscoveryList") {
        return None;
    }
    let list: Value = serde_json::from_slice(&body).ok()?;
    list.get("items")?
        .as_array()?
        .iter()
        .filter(|g| g.pointer("/metadata/name").and_then(Value::as_str) == Some(group))
        .flat_map(|g| {
            g.get("versions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .find(|v| v.get("version").and_then(Value::as_str) == Some(version))
        .map(|v| Arc::new(v.clone()))
}

/// Writes the `Available` condition when it changed (its transition time only when the
/// status did).
async fn set_available(
    state: &ApiState,
    svc: &Value,
    available: bool,
    reason: &str,
    message: &str,
) -> ApiResult<()> {
    let status = if available { "True" } else { "False" };
    let current = svc
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some("Available"))
        });
    let same = |k: &str, v: &str| current.and_then(|c| c.get(k)).and_then(Value::as_str) == Some(v);
    if same("status", status) && same("reason", reason) && same("message", message) {
        return Ok(());
    }
    let name = crate::meta::name(svc);
    tracing::info!(
        apiservice = name,
        status,
        reason,
        message,
        "APIService availability"
    );
    let result = state
        .registry
        .update_with(
            state.internal(),
            info()?,
            None,
            name,
            Some("status"),
            |old| {
                let mut new = old.clone();
                let mut conditions: Vec<Value> = new
                    .pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let previous = conditions
                    .iter()
                    .position(|c| c.get("type").and_then(Value::as_str) == Some("Available"));
                let since = previous
                    .map(|i| &conditions[i])
                    .filter(|c| c.get("status").and_then(Value::as_str) == Some(status))
                    .and_then(|c| c.get("lastTransitionTime").cloned())
                    .unwrap_or_else(|| json!(crate::meta::now_rfc3339()));
                let condition = json!({"type": "Available", "status": status,
                "lastTransitionTime": since, "reason": reason, "message": message});
                match previous {
                    Some(i) => conditions[i] = condition,
                    None => conditions.push(condition),
                }
                if !new.get("status").is_some_and(Value::is_object) {
                    new["status"] = json!({});
                }
                new["status"]["conditions"] = Value::Array(conditions);
                Ok(new)
            },
        )
        .await;
    match result {
        // Deleted meanwhile: nothing to report on.
        Ok(_) | Err(ApiError { code: 404, .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The group-versions served here, each with its label value and priorities.
fn local_group_versions(state: &ApiState) -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&'static str, &'static str)> = Vec::new();
    let served = crate::kinds::all()
        .into_iter()
        .map(|k| (k.info.group, k.info.version))
        .chain(state.catalog.local.iter().copied());
    for gv in served {
        if !out.contains(&gv) {
            out.push(gv);
        }
    }
    out
}

/// Creates the missing local APIServices and deletes those of group-versions no longer
/// served (only the ones registered while running: `automanaged=true`).
async fn register_local(state: &ApiState) -> ApiResult<()> {
    let info = info()?;
    let existing = state.registry.cached_objects(info, None).await?;
    let wanted = local_group_versions(state);
    let name_of = |(g, v): (&str, &str)| format!("{v}.{g}");
    for gv in &wanted {
        let name = name_of(*gv);
        if existing.iter().any(|s| crate::meta::name(s) == name) {
            continue;
        }
        let (priorities, managed) = match builtin_priority(gv.0, gv.1) {
            Some(p) => (p, "onstart"),
            // crdregistration's: CRDs rank below the built-in groups.
            None => ((1000, 100), "true"),
        };
        let obj = json!({
            "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
            "metadata": {"name": name, "labels": {AUTOMANAGED: managed}},
            "spec": {"group": gv.0, "version": gv.1,
                "groupPriorityMinimum": priorities.0, "versionPriority": priorities.1},
        });
        match state
            .registry
            .create(info, None, obj, WriteOptions::new(state.internal()))
            .await
        {
            Ok(_) | Err(ApiError { code: 409, .. }) => {}
            Err(e) => return Err(e),
        }
    }
    for svc in existing {
        let name = crate::meta::name(&svc);
        let managed = svc
            .pointer(&format!(
                "/metadata/labels/{}",
                AUTOMANAGED.replace('/', "~1")
            ))
            .and_then(Value::as_str);
        let local = svc.pointer("/spec/service").is_none_or(Value::is_null);
        if managed != Some("true") || !local || wanted.iter().any(|gv| name_of(*gv) == name) {
            continue;
        }
        match state
            .registry
            .delete(
                state.internal(),
                info,
                None,
                name,
                &DeleteOptions::default(),
            )
            .await
        {
            Ok(_) | Err(ApiError { code: 404, .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
