//! Discovery: `/version`, `/api`, `/apis` (aggregated v2 / v2beta1, or the legacy lists) and
//! the per group-version resource lists kubectl reads to map names to resources.

use serde_json::{Value, json};

use crate::resources::{self, Catalog, ResourceInfo};

/// The Kubernetes version whose API rkube serves.
pub const MAJOR: &str = "1";
pub const MINOR: &str = "33";
pub const GIT_VERSION: &str = "v1.33.0+rkube";

pub fn version() -> Value {
    json!({
        "major": MAJOR,
        "minor": MINOR,
        "gitVersion": GIT_VERSION,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": concat!("rust (rkube ", env!("CARGO_PKG_VERSION"), ")"),
        "compiler": "rustc",
        "platform": "linux/amd64",
    })
}

fn sub_verbs(sub: &str) -> Vec<&'static str> {
    match sub {
        "binding" | "token" | "eviction" => vec!["create"],
        "finalize" => vec!["update"],
        "approval" => vec!["get", "patch", "update"],
        "log" => vec!["get"],
        "exec" | "attach" | "portforward" => vec!["create", "get"],
        "proxy" => vec!["create", "delete", "get", "patch", "update"],
        _ => vec!["get", "patch", "update"],
    }
}

fn sub_kind(r: &ResourceInfo, sub: &str) -> (String, String, String) {
    match sub {
        "scale" => ("autoscaling".into(), "v1".into(), "Scale".into()),
        "binding" => ("".into(), "v1".into(), "Binding".into()),
        "eviction" => ("policy".into(), "v1".into(), "Eviction".into()),
        "exec" => ("".into(), "v1".into(), "PodExecOptions".into()),
        "attach" => ("".into(), "v1".into(), "PodAttachOptions".into()),
        "portforward" => ("".into(), "v1".into(), "PodPortForwardOptions".into()),
        "proxy" => ("".into(), "v1".into(), format!("{}ProxyOptions", r.kind)),
        "token" => (
            "authentication.k8s.io".into(),
            "v1".into(),
            "TokenRequest".into(),
        ),
        _ => (r.group.into(), r.version.into(), r.kind.into()),
    }
}

/// The legacy `APIResourceList` of one group/version.
pub fn resource_list(catalog: &Catalog, group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    for r in catalog
        .resources()
        .into_iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let mut entry = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs(),
            "storageVersionHash": "",
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        resources.push(entry);
        for sub in r.subresources {
            let (g, v, k) = sub_kind(r, sub);
            let mut e = json!({
                "name": format!("{}/{sub}", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": k,
                "verbs": sub_verbs(sub),
            });
            if g != r.group || v != r.version {
                e["group"] = json!(g);
                e["version"] = json!(v);
            }
            resources.push(e);
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})
}

/// Legacy `/api`.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_entry(g: &resources::GroupInfo) -> Value {
    let versions: Vec<Value> = g
        .versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{}/{v}", g.name), "version": v}))
        .collect();
    json!({"name": g.name, "versions": versions, "preferredVersion": versions[0]})
}

/// The named groups served here, then those of remote APIServices (a version served here
/// wins): every one for legacy discovery, the available ones for aggregated discovery.
fn all_groups(catalog: &Catalog, legacy: bool) -> Vec<resources::GroupInfo> {
    let mut out = catalog.groups();
    for remote in catalog.remote.groups(!legacy) {
        match out.iter_mut().find(|g| g.name == remote.name) {
            Some(g) => {
                for v in remote.versions {
                    if !g.versions.contains(&v) {
                        g.versions.push(v);
                    }
                }
            }
            None => out.push(remote),
        }
    }
    out
}

/// Legacy `/apis`.
pub fn api_group_list(catalog: &Catalog) -> Value {
    let groups: Vec<Value> = all_groups(catalog, true).iter().map(group_entry).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// Legacy `/apis/<group>`.
pub fn api_group(catalog: &Catalog, group: &str) -> Option<Value> {
    all_groups(catalog, true)
        .iter()
        .find(|g| g.name == group)
        .map(|g| {
            let mut e = group_entry(g);
            e["kind"] = json!("APIGroup");
            e["apiVersion"] = json!("v1");
            e
        })
}

fn aggregated_version(catalog: &Catalog, group: &str, version: &str) -> Value {
    let resources: Vec<Value> = catalog
        .resources()
        .into_iter()
        .filter(|r| r.group == group && r.version == version)
        .map(|r| {
            let subs: Vec<Value> = r
                .subresources
                .iter()
                .map(|sub| {
                    let (g, v, k) = sub_kind(r, sub);
                    json!({"subresource": sub, "responseKind": {"group": g, "version": v, "kind": k}, "verbs": sub_verbs(sub)})
                })
                .collect();
            let mut e = json!({
                "resource": r.plural,
                "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                "singularResource": r.singular,
                "verbs": r.verbs(),
            });
            if !r.short_names.is_empty() {
                e["shortNames"] = json!(r.short_names);
            }
            if !r.categories.is_empty() {
                e["categories"] = json!(r.categories);
            }
            if !subs.is_empty() {
                e["subresources"] = json!(subs);
            }
            e
        })
        .collect();
    json!({"version": version, "resources": resources, "freshness": "Current"})
}

/// A group-version's `APIVersionDiscovery`: served here, or by a remote APIService.
fn version_discovery(catalog: &Catalog, group: &str, version: &str) -> Option<Value> {
    if catalog.has_version(group, version) {
        return Some(aggregated_version(catalog, group, version));
    }
    let remote = catalog.remote.find(group, version)?;
    Some(crate::aggregator::discovery::aggregated_version(&remote))
}

/// Aggregated discovery for `/api` (core) or `/apis` (named groups), in `api_version`
/// (`apidiscovery.k8s.io/v2` or `v2beta1`: clients accept only the one they asked for).
pub fn aggregated(catalog: &Catalog, core: bool, api_version: &str) -> Value {
    let items: Vec<Value> = if core {
        vec![
            json!({"metadata": {"creationTimestamp": null}, "versions": [aggregated_version(catalog, "", "v1")]}),
        ]
    } else {
        all_groups(catalog, false)
            .iter()
            .map(|g| {
                let versions: Vec<Value> = g.versions.iter().filter_map(|v| version_discovery(catalog, g.name, v)).collect();
                json!({"metadata": {"name": g.name, "creationTimestamp": null}, "versions": versions})
            })
            .collect()
    };
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": api_version, "metadata": {}, "items": items})
}
