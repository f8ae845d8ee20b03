//! Remote group-versions in discovery: the legacy group entries come from the APIServices
//! (upstream's `apisHandler`); the aggregated (v2) document is the extension's own, as the
//! availability check fetched it from its `/apis`, or, from a server without aggregated
//! discovery, its `APIResourceList` converted as upstream converts one.

use serde_json::{Map, Value, json};

use super::remote::Remote;

/// One `APIVersionDiscovery` of a remote group-version: the server's own, or its legacy
/// list converted.
pub fn aggregated_version(remote: &Remote) -> Value {
    if let Some(own) = &remote.discovery {
        let mut v = (**own).clone();
        v["freshness"] = json!("Current");
        return v;
    }
    let mut resources: Vec<Value> = Vec::new();
    let str_of = |r: &Value, k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let kind_of = |r: &Value| {
        let or = |k: &str, default: &str| {
            Some(str_of(r, k))
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| default.to_string())
        };
        json!({"group": or("group", remote.group), "version": or("version", remote.version), "kind": str_of(r, "kind")})
    };
    let listed = remote.resources.iter();
    for r in listed.clone().filter(|r| !str_of(r, "name").contains('/')) {
        let mut e = Map::new();
        e.insert("resource".into(), json!(str_of(r, "name")));
        e.insert("responseKind".into(), kind_of(r));
        let namespaced = r.get("namespaced").and_then(Value::as_bool) == Some(true);
        e.insert(
            "scope".into(),
            json!(if namespaced { "Namespaced" } else { "Cluster" }),
        );
        e.insert("singularResource".into(), json!(str_of(r, "singularName")));
        e.insert("verbs".into(), r.get("verbs").cloned().unwrap_or(json!([])));
        for k in ["shortNames", "categories"] {
            if let Some(v) = r
                .get(k)
                .filter(|v| v.as_array().is_some_and(|a| !a.is_empty()))
            {
                e.insert(k.into(), v.clone());
            }
        }
        resources.push(Value::Object(e));
    }
    for r in listed {
        let name = str_of(r, "name");
        let Some((parent, sub)) = name.split_once('/') else {
            continue;
        };
        let Some(entry) = resources
            .iter_mut()
            .find(|e| e.get("resource").and_then(Value::as_str) == Some(parent))
        else {
            continue;
        };
        let s = json!({"subresource": sub, "responseKind": kind_of(r),
            "verbs": r.get("verbs").cloned().unwrap_or(json!([]))});
        match entry.get_mut("subresources").and_then(Value::as_array_mut) {
            Some(subs) => subs.push(s),
            None => entry["subresources"] = json!([s]),
        }
    }
    json!({"version": remote.version, "resources": resources, "freshness": "Current"})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_legacy_list_converts_to_v2() {
        let remote = Remote {
            name: "v1alpha1.wardle.example.com".into(),
            group: "wardle.example.com",
            version: "v1alpha1",
            group_priority: 1000,
            version_priority: 15,
            target: None,
            resources: std::sync::Arc::new(vec![
                json!({"name": "flunders", "singularName": "flunder", "namespaced": true,
                    "kind": "Flunder", "verbs": ["get", "list"], "shortNames": ["fl"]}),
                json!({"name": "flunders/status", "namespaced": true, "kind": "Flunder",
                    "verbs": ["get"]}),
            ]),
            discovery: None,
            openapi: None,
        };
        let v = aggregated_version(&remote);
        let r = &v["resources"][0];
        assert_eq!(r["resource"], "flunders");
        assert_eq!(r["scope"], "Namespaced");
        assert_eq!(r["responseKind"]["group"], "wardle.example.com");
        assert_eq!(r["shortNames"], json!(["fl"]));
        assert_eq!(r["subresources"][0]["subresource"], "status");
    }
}
