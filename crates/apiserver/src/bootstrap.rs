//! What every cluster has from its first start, as the API server's post-start hooks make
//! it (upstream's `bootstrap-controller` and friends): the system namespaces and
//! PriorityClasses, the default RBAC policy, the `kubernetes` Service and its endpoints,
//! and `kube-public/cluster-info`.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::handler::ApiState;
use crate::kinds::core::SYSTEM_NAMESPACES;
use crate::registry::WriteOptions;

/// Creates the namespaces every cluster has.
pub async fn bootstrap(state: &ApiState) -> ApiResult<()> {
    let ns = crate::resources::namespace_info();
    for name in SYSTEM_NAMESPACES {
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        match state
            .registry
            .create(&ns, None, obj, WriteOptions::new(state.internal()))
            .await
        {
            Ok(_) => tracing::info!(namespace = name, "created namespace"),
            Err(e) if e.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    // The system PriorityClasses.
    let pc = crate::resources::priority_class_info();
    for (name, value, description) in crate::admission::priority::SYSTEM_CLASSES {
        let obj = json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": name}, "value": value, "description": description});
        match state
            .registry
            .create(&pc, None, obj, WriteOptions::new(state.internal()))
            .await
        {
            Ok(_) | Err(ApiError { code: 409, .. }) => {}
            Err(e) => return Err(e),
        }
    }
    crate::authz::bootstrap_policy::reconcile(&state.registry, state.internal()).await?;
    // The `kubernetes` Service, at the first address of the Service range.
    let svc = crate::resources::service_info();
    let kubernetes = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {
            "clusterIP": crate::service_alloc::KUBERNETES_SERVICE_IP.to_string(),
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
        },
    });
    create_if_missing(state, &svc, "default", "kubernetes", kubernetes).await?;
    Ok(())
}

/// Creates `obj` unless an object of that name is there (never updated).
pub(crate) async fn create_if_missing(
    state: &ApiState,
    info: &crate::resources::ResourceInfo,
    namespace: &str,
    name: &str,
    obj: Value,
) -> ApiResult<()> {
    match state.registry.get(info, Some(namespace), name).await {
        Ok(_) => Ok(()),
        Err(e) if e.code == 404 => {
            match state
                .registry
                .create(
                    info,
                    Some(namespace),
                    obj,
                    WriteOptions::new(state.internal()),
                )
                .await
            {
                Ok(_) | Err(ApiError { code: 409, .. }) => {}
                Err(e) => return Err(e),
            }
            tracing::info!(namespace, name, "created {}", info.kind);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Makes the ConfigMap `namespace/name` hold `data` (created, or its data replaced).
pub(crate) async fn write_configmap(
    state: &ApiState,
    namespace: &str,
    name: &str,
    data: Value,
) -> ApiResult<()> {
    let cm = crate::resources::by_kind("", "ConfigMap")?;
    match state.registry.get(cm, Some(namespace), name).await {
        Ok(live) if live.get("data") == Some(&data) => Ok(()),
        Ok(_) => {
            let ctx = state.internal();
            let replace = |old: &Value| {
                let mut new = old.clone();
                new["data"] = data.clone();
                Ok(new)
            };
            let updated = state
                .registry
                .update_with(ctx, cm, Some(namespace), name, None, replace)
                .await;
            updated.map(drop)
        }
        Err(e) if e.code == 404 => {
            let obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": namespace}, "data": data});
            create_if_missing(state, cm, namespace, name, obj).await
        }
        Err(e) => Err(e),
    }
}

/// Publishes `kube-public/cluster-info` (the server's URL and CA, as kubeadm does), readable
/// by anyone: a joining node reads it and checks the CA against the hash in its token.
pub async fn publish_cluster_info(state: &ApiState, server: &str, ca_pem: &str) -> ApiResult<()> {
    use base64::Engine;
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: \"\"\n  cluster:\n    certificate-authority-data: {}\n    server: {server}\ncontexts: null\ncurrent-context: \"\"\npreferences: {{}}\nusers: null\n",
        base64::engine::general_purpose::STANDARD.encode(ca_pem)
    );
    let catalog = crate::resources::Catalog::new();
    let data = json!({"kubeconfig": kubeconfig});
    write_configmap(state, "kube-public", "cluster-info", data).await?;
    let (Some(role), Some(binding)) = (
        catalog.by_kind("rbac.authorization.k8s.io", "Role"),
        catalog.by_kind("rbac.authorization.k8s.io", "RoleBinding"),
    ) else {
        return Ok(());
    };
    let name = "rkube:bootstrap-signer-clusterinfo";
    let role_obj = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": name, "namespace": "kube-public"},
        "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["cluster-info"]}],
    });
    create_if_missing(state, role, "kube-public", name, role_obj).await?;
    let binding_obj = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": "kube-public"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:anonymous"}],
    });
    create_if_missing(state, binding, "kube-public", name, binding_obj).await
}

/// Where each API server keeps its lease (upstream's `masterleases`), outside the watch
/// cache's `/registry/` so no resource reads them.
pub const MASTER_LEASES: &str = "/masterleases/";
/// How long a server's lease outlives its last renewal (upstream's 15 s master lease TTL).
pub const MASTER_LEASE_TTL: std::time::Duration = std::time::Duration::from_secs(15);
/// How often each server renews its lease and rewrites the endpoints (upstream: 10 s).
pub const ENDPOINT_RECONCILE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// Points the `kubernetes` Service at every live API server (upstream's lease endpoint
/// reconciler, `pkg/controlplane/reconcilers/lease.go`): this server keeps a lease
/// `/masterleases/<ip>` with a 15 s time-to-live, renewed every 10 s in the background, and
/// the Endpoints object (not mirrored, as upstream marks it) and its slice list the IPs of
/// the unexpired leases. One server: one address, as before.
pub async fn reconcile_kubernetes_endpoints(
    state: &Arc<ApiState>,
    at: std::net::SocketAddr,
) -> ApiResult<()> {
    reconcile_endpoints_once(state, at).await?;
    // Weak: the loop ends with the server's state instead of keeping it alive.
    let weak = Arc::downgrade(state);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(ENDPOINT_RECONCILE_INTERVAL).await;
            let Some(state) = weak.upgrade() else { return };
            if let Err(e) = reconcile_endpoints_once(&state, at).await {
                tracing::warn!(error = %e.message, "reconciling the kubernetes service's endpoints");
            }
        }
    });
    Ok(())
}

/// Removes this server's lease (a server stopping for good, as upstream's `RemoveEndpoints`
/// on shutdown); the others drop its address at their next reconcile.
pub async fn remove_master_lease(store: &dyn store::Store, ip: std::net::IpAddr) {
    match store.delete(&format!("{MASTER_LEASES}{ip}"), None).await {
        Ok(_) | Err(store::Error::NotFound { .. }) => {}
        Err(e) => tracing::warn!(error = %e, "removing this server's endpoint lease"),
    }
}

/// Renews this server's lease and writes the endpoints from all unexpired leases.
async fn reconcile_endpoints_once(state: &ApiState, at: std::net::SocketAddr) -> ApiResult<()> {
    let store = &state.registry.store;
    let key = format!("{MASTER_LEASES}{}", at.ip());
    let value = bytes::Bytes::from(at.ip().to_string());
    let fault = |e: store::Error| ApiError::unavailable(format!("the endpoint leases: {e}"));
    let renewed = match store.get(&key).await.map_err(fault)? {
        Some(kv) => store
            .update(&key, value, kv.mod_revision, Some(MASTER_LEASE_TTL))
            .await
            .map(drop),
        None => store
            .create(&key, value, Some(MASTER_LEASE_TTL))
            .await
            .map(drop),
    };
    match renewed {
        // Another writer of the same key (this server's earlier loop, a restart): the lease
        // is there; the next round renews it.
        Ok(()) | Err(store::Error::Conflict { .. } | store::Error::AlreadyExists { .. }) => {}
        Err(e) => return Err(fault(e)),
    }
    let leases = store
        .list(MASTER_LEASES, store::ListOptions::default())
        .await
        .map_err(fault)?;
    let mut ips: Vec<std::net::IpAddr> = leases
        .kvs
        .iter()
        .filter_map(|kv| std::str::from_utf8(&kv.value).ok()?.parse().ok())
        .filter(|ip: &std::net::IpAddr| ip.is_ipv4() == at.is_ipv4())
        .collect();
    if !ips.contains(&at.ip()) {
        ips.push(at.ip());
    }
    ips.sort();
    ips.dedup();
    write_kubernetes_endpoints(state, &ips, at.port(), at.is_ipv4()).await
}

/// Makes the `kubernetes` Endpoints and EndpointSlice list `ips` on `port` (written only when
/// they differ, so idle servers do not churn revisions).
async fn write_kubernetes_endpoints(
    state: &ApiState,
    ips: &[std::net::IpAddr],
    port: u16,
    ipv4: bool,
) -> ApiResult<()> {
    let addresses: Vec<Value> = ips.iter().map(|ip| json!({"ip": ip.to_string()})).collect();
    let endpoints = json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default",
            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": addresses, "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
    });
    let slice_endpoints: Vec<Value> = ips
        .iter()
        .map(|ip| json!({"addresses": [ip.to_string()], "conditions": {"ready": true}}))
        .collect();
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "namespace": "default",
            "labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": if ipv4 { "IPv4" } else { "IPv6" },
        "endpoints": slice_endpoints,
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    });
    let catalog = &state.catalog;
    for (group, version, resource, obj) in [
        ("", "v1", "endpoints", endpoints),
        ("discovery.k8s.io", "v1", "endpointslices", slice),
    ] {
        let Some(info) = catalog.find(group, version, resource) else {
            continue;
        };
        let info = info.clone();
        match state
            .registry
            .get(&info, Some("default"), "kubernetes")
            .await
        {
            Ok(current) => {
                let mut obj = obj;
                obj["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
                let same = ["subsets", "endpoints", "ports"]
                    .iter()
                    .all(|k| current[k] == obj[k]);
                if !same {
                    let written = state
                        .registry
                        .update(
                            &info,
                            Some("default"),
                            "kubernetes",
                            obj,
                            None,
                            WriteOptions::new(state.internal()),
                        )
                        .await;
                    match written {
                        // Another server wrote it first: the next round sees its write.
                        Ok(_) | Err(ApiError { code: 409, .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            Err(e) if e.code == 404 => {
                create_if_missing(state, &info, "default", "kubernetes", obj).await?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
