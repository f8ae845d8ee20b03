//! The ClusterRoles and ClusterRoleBindings every cluster starts with (Kubernetes'
//! bootstrap policy): the user-facing roles (cluster-admin, and admin/edit/view aggregated
//! from their `system:aggregate-to-*` parts), discovery for everyone, and one role per
//! component. Reconciled at every start: missing objects are created, and rules are added
//! to those still marked `rbac.authorization.kubernetes.io/autoupdate: "true"`.

use serde_json::{Value, json};

const READ: &[&str] = &["get", "list", "watch"];
const READ_UPDATE: &[&str] = &["get", "list", "watch", "update", "patch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const ALL_RW: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Value {
    json!({"verbs": verbs, "apiGroups": groups, "resources": resources})
}

fn named(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> Value {
    json!({"verbs": verbs, "apiGroups": groups, "resources": resources, "resourceNames": names})
}

fn urls(verbs: &[&str], paths: &[&str]) -> Value {
    json!({"verbs": verbs, "nonResourceURLs": paths})
}

fn labels(extra: &[(&str, &str)]) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("kubernetes.io/bootstrapping".into(), json!("rbac-defaults"));
    for (k, v) in extra {
        m.insert((*k).into(), json!(v));
    }
    Value::Object(m)
}

fn cluster_role(name: &str, extra_labels: &[(&str, &str)], rules: Vec<Value>) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": name, "labels": labels(extra_labels),
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}},
        "rules": rules,
    })
}

/// A role whose rules the aggregation controller fills from roles carrying `label`.
fn aggregated(name: &str, extra_labels: &[(&str, &str)], label: &str) -> Value {
    let mut role = cluster_role(name, extra_labels, vec![]);
    role["aggregationRule"] = json!({"clusterRoleSelectors": [{"matchLabels": {label: "true"}}]});
    role
}

/// The subjects of a binding: `User:name`, `Group:name` or `ServiceAccount:ns:name`.
fn binding(name: &str, role: &str, subjects: &[&str]) -> Value {
    let subjects: Vec<Value> = subjects
        .iter()
        .map(|s| match s.split(':').collect::<Vec<_>>().as_slice() {
            ["ServiceAccount", ns, n] => json!({"kind": "ServiceAccount", "name": n, "namespace": ns}),
            [kind, rest @ ..] => json!({"kind": kind, "apiGroup": "rbac.authorization.k8s.io", "name": rest.join(":")}),
            [] => json!({}),
        })
        .collect();
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": name, "labels": labels(&[]),
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": subjects,
    })
}

/// Every bootstrap ClusterRole.
pub fn cluster_roles() -> Vec<Value> {
    let to_view = [("rbac.authorization.k8s.io/aggregate-to-view", "true")];
    let to_edit = [("rbac.authorization.k8s.io/aggregate-to-edit", "true")];
    let to_admin = [("rbac.authorization.k8s.io/aggregate-to-admin", "true")];
    let public_paths = ["/healthz", "/livez", "/readyz", "/version", "/version/"];
    vec![
        cluster_role(
            "cluster-admin",
            &[],
            vec![rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])],
        ),
        aggregated("admin", &[], "rbac.authorization.k8s.io/aggregate-to-admin"),
        aggregated(
            "edit",
            &to_admin,
            "rbac.authorization.k8s.io/aggregate-to-edit",
        ),
        aggregated(
            "view",
            &to_edit,
            "rbac.authorization.k8s.io/aggregate-to-view",
        ),
        cluster_role(
            "system:aggregate-to-admin",
            &to_admin,
            vec![
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["localsubjectaccessreviews"],
                ),
                rule(
                    ALL_RW,
                    &["rbac.authorization.k8s.io"],
                    &["rolebindings", "roles"],
                ),
            ],
        ),
        cluster_role(
            "system:aggregate-to-edit",
            &to_edit,
            vec![
                rule(
                    READ,
                    &[""],
                    &[
                        "pods/attach",
                        "pods/exec",
                        "pods/portforward",
                        "pods/proxy",
                        "secrets",
                        "services/proxy",
                    ],
                ),
                rule(&["impersonate"], &[""], &["serviceaccounts"]),
                rule(
                    WRITE,
                    &[""],
                    &[
                        "pods",
                        "pods/attach",
                        "pods/exec",
                        "pods/portforward",
                        "pods/proxy",
                    ],
                ),
                rule(&["create"], &[""], &["pods/eviction"]),
                rule(
                    WRITE,
                    &[""],
                    &[
                        "configmaps",
                        "events",
                        "persistentvolumeclaims",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "secrets",
                        "serviceaccounts",
                        "services",
                        "services/proxy",
                    ],
                ),
                rule(&["create"], &[""], &["serviceaccounts/token"]),
                rule(
                    WRITE,
                    &["apps"],
                    &[
                        "daemonsets",
                        "deployments",
                        "deployments/rollback",
                        "deployments/scale",
                        "replicasets",
                        "replicasets/scale",
                        "statefulsets",
                        "statefulsets/scale",
                    ],
                ),
                rule(WRITE, &["autoscaling"], &["horizontalpodautoscalers"]),
                rule(WRITE, &["batch"], &["cronjobs", "jobs"]),
                rule(WRITE, &["policy"], &["poddisruptionbudgets"]),
                rule(
                    WRITE,
                    &["networking.k8s.io"],
                    &["ingresses", "networkpolicies"],
                ),
                rule(ALL_RW, &["coordination.k8s.io"], &["leases"]),
                // The seed's PodPreset (edit held it while it existed upstream).
                rule(ALL_RW, &["settings.k8s.io"], &["podpresets"]),
            ],
        ),
        cluster_role(
            "system:aggregate-to-view",
            &to_view,
            vec![
                rule(
                    READ,
                    &[""],
                    &[
                        "configmaps",
                        "endpoints",
                        "persistentvolumeclaims",
                        "persistentvolumeclaims/status",
                        "pods",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "serviceaccounts",
                        "services",
                        "services/status",
                    ],
                ),
                rule(
                    READ,
                    &[""],
                    &[
                        "bindings",
                        "events",
                        "limitranges",
                        "namespaces/status",
                        "pods/log",
                        "pods/status",
                        "replicationcontrollers/status",
                        "resourcequotas",
                        "resourcequotas/status",
                    ],
                ),
                rule(READ, &[""], &["namespaces"]),
                rule(READ, &["discovery.k8s.io"], &["endpointslices"]),
                rule(
                    READ,
                    &["apps"],
                    &[
                        "controllerrevisions",
                        "daemonsets",
                        "daemonsets/status",
                        "deployments",
                        "deployments/scale",
                        "deployments/status",
                        "replicasets",
                        "replicasets/scale",
                        "replicasets/status",
                        "statefulsets",
                        "statefulsets/scale",
                        "statefulsets/status",
                    ],
                ),
                rule(
                    READ,
                    &["autoscaling"],
                    &[
                        "horizontalpodautoscalers",
                        "horizontalpodautoscalers/status",
                    ],
                ),
                rule(
                    READ,
                    &["batch"],
                    &["cronjobs", "cronjobs/status", "jobs", "jobs/status"],
                ),
                rule(
                    READ,
                    &["policy"],
                    &["poddisruptionbudgets", "poddisruptionbudgets/status"],
                ),
                rule(
                    READ,
                    &["networking.k8s.io"],
                    &["ingresses", "ingresses/status", "networkpolicies"],
                ),
            ],
        ),
        cluster_role(
            "system:basic-user",
            &[],
            vec![
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                rule(
                    &["create"],
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                ),
            ],
        ),
        cluster_role(
            "system:discovery",
            &[],
            vec![urls(
                &["get"],
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
            )],
        ),
        cluster_role(
            "system:public-info-viewer",
            &[],
            vec![urls(&["get"], &public_paths)],
        ),
        cluster_role(
            "system:monitoring",
            &[],
            vec![urls(
                &["get"],
                &[
                    "/healthz",
                    "/healthz/*",
                    "/livez",
                    "/livez/*",
                    "/metrics",
                    "/readyz",
                    "/readyz/*",
                ],
            )],
        ),
        cluster_role(
            "system:auth-delegator",
            &[],
            vec![
                rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                ),
            ],
        ),
        cluster_role(
            "system:node",
            &[],
            vec![
                rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["localsubjectaccessreviews", "subjectaccessreviews"],
                ),
                rule(READ, &[""], &["services"]),
                rule(&["create", "get", "list", "watch"], &[""], &["nodes"]),
                rule(&["patch", "update"], &[""], &["nodes/status"]),
                rule(&["patch", "update"], &[""], &["nodes"]),
                rule(
                    &["create", "patch", "update"],
                    &["", "events.k8s.io"],
                    &["events"],
                ),
                rule(READ, &[""], &["pods"]),
                rule(&["create", "delete"], &[""], &["pods"]),
                rule(&["patch", "update"], &[""], &["pods/status"]),
                rule(&["create"], &[""], &["pods/eviction"]),
                rule(&["get"], &[""], &["configmaps", "secrets"]),
                rule(
                    &["get"],
                    &[""],
                    &["persistentvolumeclaims", "persistentvolumes"],
                ),
                rule(&["get"], &[""], &["endpoints"]),
                rule(
                    &["update", "patch"],
                    &[""],
                    &["persistentvolumeclaims/status"],
                ),
                rule(&["create"], &[""], &["serviceaccounts/token"]),
                rule(
                    &["delete", "get", "create", "update", "patch"],
                    &["coordination.k8s.io"],
                    &["leases"],
                ),
                rule(
                    READ,
                    &["storage.k8s.io"],
                    &["storageclasses", "csidrivers", "csinodes"],
                ),
                rule(READ, &["node.k8s.io"], &["runtimeclasses"]),
                rule(
                    &["create", "get", "list", "watch"],
                    &["certificates.k8s.io"],
                    &["certificatesigningrequests"],
                ),
            ],
        ),
        cluster_role(
            "system:node-proxier",
            &[],
            vec![
                rule(&["list", "watch"], &[""], &["services", "endpoints"]),
                rule(&["get", "list", "watch"], &[""], &["nodes"]),
                rule(
                    &["create", "patch", "update"],
                    &["", "events.k8s.io"],
                    &["events"],
                ),
                rule(
                    &["list", "watch"],
                    &["discovery.k8s.io"],
                    &["endpointslices"],
                ),
            ],
        ),
        // rkube's kubelets remove the local-path directories of deleted volumes (k3s'
        // local-path runs a helper pod instead): they list the volumes to know which remain.
        cluster_role(
            "rkube:node-local-storage",
            &[],
            vec![rule(&["list", "watch"], &[""], &["persistentvolumes"])],
        ),
        // rkube's agent serves cluster DNS on every node and publishes its own endpoint of
        // `kube-dns` (k3s runs CoreDNS as a pod with a ServiceAccount instead).
        cluster_role(
            "rkube:node-dns",
            &[],
            vec![
                rule(
                    READ,
                    &[""],
                    &["services", "endpoints", "pods", "namespaces"],
                ),
                rule(READ, &["discovery.k8s.io"], &["endpointslices"]),
                rule(
                    &["create", "patch", "update", "get", "delete"],
                    &["discovery.k8s.io"],
                    &["endpointslices"],
                ),
            ],
        ),
        // rkube's agent runs the ingress controller on every node (k3s ships Traefik with a
        // ServiceAccount instead), under an identity of its own: a node may not list
        // Ingresses or Secrets. Exactly the calls `crates/ingress` makes: its informers'
        // list/watch, the status it writes (update), its Warning events (core, created then
        // counted up by patch). Its IngressClass is the server's packaged `ingress` manifest,
        // so no create.
        cluster_role(
            "system:rkube-ingress",
            &[],
            vec![
                rule(
                    &["list", "watch"],
                    &["networking.k8s.io"],
                    &["ingresses", "ingressclasses"],
                ),
                rule(&["update"], &["networking.k8s.io"], &["ingresses/status"]),
                rule(&["list", "watch"], &[""], &["services", "secrets"]),
                rule(
                    &["list", "watch"],
                    &["discovery.k8s.io"],
                    &["endpointslices"],
                ),
                rule(&["create", "patch"], &[""], &["events"]),
                // Gateway API (CRDs, perhaps not installed): routes served by the same proxy.
                rule(
                    &["list", "watch"],
                    &["gateway.networking.k8s.io"],
                    &[
                        "gatewayclasses",
                        "gateways",
                        "httproutes",
                        "grpcroutes",
                        "referencegrants",
                    ],
                ),
                rule(
                    &["update"],
                    &["gateway.networking.k8s.io"],
                    &[
                        "gatewayclasses/status",
                        "gateways/status",
                        "httproutes/status",
                        "grpcroutes/status",
                    ],
                ),
                // Listeners' `allowedRoutes.namespaces.selector` matches namespace labels.
                rule(&["list", "watch"], &[""], &["namespaces"]),
            ],
        ),
        cluster_role(
            "system:kube-dns",
            &[],
            vec![rule(&["list", "watch"], &[""], &["endpoints", "services"])],
        ),
        cluster_role(
            "system:node-bootstrapper",
            &[],
            vec![rule(
                &["create", "get", "list", "watch"],
                &["certificates.k8s.io"],
                &["certificatesigningrequests"],
            )],
        ),
        cluster_role(
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            &[],
            vec![rule(
                &["create"],
                &["certificates.k8s.io"],
                &["certificatesigningrequests/nodeclient"],
            )],
        ),
        cluster_role(
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            &[],
            vec![rule(
                &["create"],
                &["certificates.k8s.io"],
                &["certificatesigningrequests/selfnodeclient"],
            )],
        ),
        // The scheduler's volume binding: it binds claims to volumes (and marks claims for
        // provisioning) while placing their pods.
        cluster_role(
            "system:volume-scheduler",
            &[],
            vec![
                rule(READ_UPDATE, &[""], &["persistentvolumes"]),
                rule(READ, &["storage.k8s.io"], &["storageclasses"]),
                rule(READ_UPDATE, &[""], &["persistentvolumeclaims"]),
            ],
        ),
        cluster_role(
            "system:kube-scheduler",
            &[],
            vec![
                rule(
                    &["create", "patch", "update"],
                    &["", "events.k8s.io"],
                    &["events"],
                ),
                rule(&["create"], &["coordination.k8s.io"], &["leases"]),
                named(
                    &["get", "update"],
                    &["coordination.k8s.io"],
                    &["leases"],
                    &["kube-scheduler"],
                ),
                rule(READ, &[""], &["nodes"]),
                rule(&["delete", "get", "list", "watch"], &[""], &["pods"]),
                rule(&["create"], &[""], &["bindings", "pods/binding"]),
                rule(&["patch", "update"], &[""], &["pods/status"]),
                rule(READ, &[""], &["replicationcontrollers", "services"]),
                rule(READ, &["apps"], &["replicasets", "statefulsets"]),
                rule(READ, &["policy"], &["poddisruptionbudgets"]),
                rule(
                    READ,
                    &[""],
                    &["persistentvolumeclaims", "persistentvolumes"],
                ),
                rule(
                    READ,
                    &["storage.k8s.io"],
                    &[
                        "storageclasses",
                        "csinodes",
                        "csidrivers",
                        "csistoragecapacities",
                    ],
                ),
                rule(READ, &[""], &["namespaces"]),
                rule(READ, &["scheduling.k8s.io"], &["priorityclasses"]),
                rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                ),
            ],
        ),
        cluster_role(
            "system:kube-controller-manager",
            &[],
            vec![
                rule(
                    &["create", "patch", "update"],
                    &["", "events.k8s.io"],
                    &["events"],
                ),
                rule(&["create"], &["coordination.k8s.io"], &["leases"]),
                named(
                    &["get", "update"],
                    &["coordination.k8s.io"],
                    &["leases"],
                    &["kube-controller-manager"],
                ),
                // Upstream's controller manager runs each controller as its own
                // ServiceAccount with its own role; rkube's runs them in one process with
                // one identity, so that identity holds what they hold together.
                rule(&["*"], &["*"], &["*"]),
                rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                ),
            ],
        ),
    ]
}

/// Every bootstrap ClusterRoleBinding.
pub fn cluster_role_bindings() -> Vec<Value> {
    vec![
        binding("cluster-admin", "cluster-admin", &["Group:system:masters"]),
        binding(
            "system:basic-user",
            "system:basic-user",
            &["Group:system:authenticated"],
        ),
        binding(
            "system:discovery",
            "system:discovery",
            &["Group:system:authenticated"],
        ),
        binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            &["Group:system:authenticated", "Group:system:unauthenticated"],
        ),
        binding(
            "system:monitoring",
            "system:monitoring",
            &["Group:system:monitoring"],
        ),
        binding(
            "system:node-proxier",
            "system:node-proxier",
            &["User:system:kube-proxy", "Group:system:nodes"],
        ),
        binding("rkube:node-dns", "rkube:node-dns", &["Group:system:nodes"]),
        binding(
            "rkube:node-local-storage",
            "rkube:node-local-storage",
            &["Group:system:nodes"],
        ),
        binding(
            "system:rkube-ingress",
            "system:rkube-ingress",
            &["User:system:rkube-ingress"],
        ),
        binding(
            "system:kube-dns",
            "system:kube-dns",
            &["ServiceAccount:kube-system:kube-dns"],
        ),
        binding(
            "system:node-bootstrapper",
            "system:node-bootstrapper",
            &["Group:system:bootstrappers"],
        ),
        binding(
            "system:kube-scheduler",
            "system:kube-scheduler",
            &["User:system:kube-scheduler"],
        ),
        binding(
            "system:volume-scheduler",
            "system:volume-scheduler",
            &["User:system:kube-scheduler"],
        ),
        binding(
            "system:kube-controller-manager",
            "system:kube-controller-manager",
            &["User:system:kube-controller-manager"],
        ),
        // Joining nodes' client certificates are approved automatically (as kubeadm sets up).
        binding(
            "rkube:node-autoapprove-bootstrap",
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            &["Group:system:bootstrappers"],
        ),
        binding(
            "rkube:node-autoapprove-certificate-rotation",
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            &["Group:system:nodes"],
        ),
        // Bound to no one, as upstream: the Node authorizer applies the node role's rules
        // to each kubelet, and limits its reads to what its pods use.
        binding("system:node", "system:node", &[]),
    ]
}

/// The rules an aggregated role gets: those of every role matching its selectors
/// (the ClusterRole aggregation controller's job, done here for the bootstrap roles so a
/// fresh server is complete at once).
pub fn aggregate(roles: &mut [Value]) {
    // Aggregated roles feed others (view → edit → admin): repeat until nothing changes.
    loop {
        let mut changed = false;
        for i in 0..roles.len() {
            let Some(selectors) = roles[i]
                .pointer("/aggregationRule/clusterRoleSelectors")
                .and_then(Value::as_array)
                .cloned()
            else {
                continue;
            };
            let mut rules: Vec<Value> = Vec::new();
            for (j, other) in roles.iter().enumerate() {
                if i == j || !selectors.iter().any(|s| selector_matches(s, other)) {
                    continue;
                }
                for r in other
                    .get("rules")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if !rules.contains(r) {
                        rules.push(r.clone());
                    }
                }
            }
            let rules = Value::Array(rules);
            if roles[i].get("rules") != Some(&rules) {
                roles[i]["rules"] = rules;
                changed = true;
            }
        }
        if !changed {
            return;
        }
    }
}

/// Whether a role's labels match a `matchLabels` selector (the only form the bootstrap
/// roles use).
fn selector_matches(selector: &Value, role: &Value) -> bool {
    let labels = role.pointer("/metadata/labels");
    selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .is_some_and(|m| {
            m.iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        })
}

/// Creates the bootstrap roles and bindings that are missing, and adds missing rules and
/// subjects to those still marked for automatic update (upstream's reconciliation at start).
/// `ctx` is the server's own (no user).
pub async fn reconcile(
    registry: &crate::registry::Registry,
    ctx: crate::registry::RequestContext<'_>,
) -> crate::error::ApiResult<()> {
    let mut roles = cluster_roles();
    aggregate(&mut roles);
    let catalog = crate::resources::Catalog::new();
    let (Some(role_info), Some(binding_info)) = (
        catalog.by_kind("rbac.authorization.k8s.io", "ClusterRole"),
        catalog.by_kind("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ) else {
        return Ok(());
    };
    for (info, objects, field) in [
        (role_info, roles, "rules"),
        (binding_info, cluster_role_bindings(), "subjects"),
    ] {
        for obj in objects {
            let name = crate::meta::name(&obj).to_string();
            match registry.get(info, None, &name).await {
                Err(e) if e.code == 404 => {
                    match registry
                        .create(info, None, obj, crate::registry::WriteOptions::new(ctx))
                        .await
                    {
                        Ok(_) | Err(crate::error::ApiError { code: 409, .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
                Ok(live) => {
                    let auto = crate::meta::str_at(
                        &live,
                        "/metadata/annotations/rbac.authorization.kubernetes.io~1autoupdate",
                    ) == Some("true");
                    let have = live
                        .get(field)
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    let missing: Vec<Value> = obj
                        .get(field)
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter(|x| !have.contains(x))
                        .cloned()
                        .collect();
                    if !auto || missing.is_empty() {
                        continue;
                    }
                    let mut all = have;
                    all.extend(missing);
                    let all = Value::Array(all);
                    registry
                        .update_with(ctx, info, None, &name, None, |old| {
                            let mut new = old.clone();
                            new[field] = all.clone();
                            Ok(new)
                        })
                        .await?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_holds_edit_holds_view() {
        let mut roles = cluster_roles();
        aggregate(&mut roles);
        let rules = |name: &str| -> Vec<Value> {
            roles
                .iter()
                .find(|r| r["metadata"]["name"] == name)
                .and_then(|r| r["rules"].as_array().cloned())
                .unwrap_or_default()
        };
        let (admin, edit, view) = (rules("admin"), rules("edit"), rules("view"));
        assert!(!view.is_empty());
        assert!(view.iter().all(|r| edit.contains(r)));
        assert!(edit.iter().all(|r| admin.contains(r)));
        assert!(edit.len() > view.len() && admin.len() > edit.len());
    }
}
