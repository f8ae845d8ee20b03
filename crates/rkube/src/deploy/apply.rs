//! Applying one manifest file: its YAML documents become objects of whatever kind the API
//! serves (found through discovery), applied with server-side apply; and deleting objects a
//! file no longer holds.

use std::fmt;

use anyhow::{Context, bail};
use kube::api::{DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::discovery::{ApiResource, Discovery, Scope};
use kube::{Api, Client};
use serde_json::Value;

/// The field manager of every object a manifest applies (k3s' deploy controller's role).
pub const FIELD_MANAGER: &str = "rkube-deploy";
/// The label each applied object carries: the manifest (file name without extension) it came
/// from, so `kubectl get all -A -l rkube.io/addon=NAME` shows what a manifest made.
pub const ADDON_LABEL: &str = "rkube.io/addon";

/// One object of a manifest, as recorded to find it again (to prune or delete it).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl fmt::Display for ObjectRef {
    /// `v1 Service kube-system/kube-dns`; a line of the manifest's record.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {} {ns}/{}", self.api_version, self.kind, self.name),
            None => write!(f, "{} {} {}", self.api_version, self.kind, self.name),
        }
    }
}

impl ObjectRef {
    /// Parses a line written by `Display`.
    pub fn parse(line: &str) -> Option<ObjectRef> {
        let mut parts = line.split_whitespace();
        let (api_version, kind, name) = (parts.next()?, parts.next()?, parts.next()?);
        let (namespace, name) = match name.split_once('/') {
            Some((ns, n)) => (Some(ns.to_string()), n.to_string()),
            None => (None, name.to_string()),
        };
        Some(ObjectRef {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            namespace,
            name,
        })
    }

    fn gvk(&self) -> GroupVersionKind {
        let (group, version) = match self.api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", self.api_version.as_str()),
        };
        GroupVersionKind::gvk(group, version, &self.kind)
    }
}

/// The objects of a file's YAML (or JSON) documents: empty documents are skipped and `List`s
/// are flattened, as `kubectl apply -f` does.
pub fn documents(text: &str) -> anyhow::Result<Vec<Value>> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).context("not valid YAML")?;
    let mut objects = Vec::new();
    for doc in docs {
        match doc {
            Value::Null => {}
            Value::Object(ref o) if is_list(o) => {
                if let Some(Value::Array(items)) = o.get("items") {
                    objects.extend(items.iter().filter(|i| !i.is_null()).cloned());
                }
            }
            Value::Object(_) => objects.push(doc),
            other => bail!("a document is not an object: {other}"),
        }
    }
    Ok(objects)
}

fn is_list(o: &serde_json::Map<String, Value>) -> bool {
    o.get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k.ends_with("List"))
        && o.contains_key("items")
}

/// The API a manifest's objects are applied through: discovery, refreshed when a kind is not
/// found (a CRD applied by an earlier file may have added it).
pub struct Applier {
    client: Client,
    discovery: Option<Discovery>,
}

impl Applier {
    pub fn new(client: Client) -> Self {
        Applier {
            client,
            discovery: None,
        }
    }

    async fn resolve(&mut self, gvk: &GroupVersionKind) -> anyhow::Result<(ApiResource, Scope)> {
        for refresh in [false, true] {
            if refresh || self.discovery.is_none() {
                let d = Discovery::new(self.client.clone())
                    .run()
                    .await
                    .context("API discovery")?;
                self.discovery = Some(d);
            }
            if let Some((ar, caps)) = self.discovery.as_ref().and_then(|d| d.resolve_gvk(gvk)) {
                return Ok((ar, caps.scope));
            }
        }
        bail!(
            "the server does not serve kind {} in {}",
            gvk.kind,
            gvk.api_version()
        )
    }

    fn api(&self, ar: &ApiResource, scope: &Scope, ns: Option<&str>) -> Api<DynamicObject> {
        match (scope, ns) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, ar),
            (Scope::Namespaced, None) => Api::default_namespaced_with(self.client.clone(), ar),
            (Scope::Cluster, _) => Api::all_with(self.client.clone(), ar),
        }
    }

    /// Applies one object (labelled as `addon`'s), returning how to find it again.
    pub async fn apply(&mut self, addon: &str, mut obj: Value) -> anyhow::Result<ObjectRef> {
        let api_version = str_field(&obj, &["apiVersion"])?;
        let kind = str_field(&obj, &["kind"])?;
        let name = str_field(&obj, &["metadata", "name"])
            .with_context(|| format!("a {kind} without metadata.name"))?;
        let mut r = ObjectRef {
            api_version,
            kind,
            namespace: None,
            name,
        };
        let (ar, scope) = self.resolve(&r.gvk()).await?;
        let meta = obj
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
            .context("metadata is not an object")?;
        if scope == Scope::Namespaced {
            let ns = meta
                .get("namespace")
                .and_then(Value::as_str)
                .unwrap_or("default")
                .to_string();
            meta.insert("namespace".into(), Value::String(ns.clone()));
            r.namespace = Some(ns);
        } else {
            meta.remove("namespace");
        }
        let labels = meta
            .entry("labels")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(labels) = labels.as_object_mut() {
            labels.insert(ADDON_LABEL.into(), Value::String(addon.to_string()));
        }
        self.api(&ar, &scope, r.namespace.as_deref())
            .patch(
                &r.name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&obj),
            )
            .await
            .with_context(|| format!("applying {r}"))?;
        Ok(r)
    }

    /// Deletes an object a manifest made (gone already, or its kind no longer served: done).
    pub async fn delete(&mut self, r: &ObjectRef) -> anyhow::Result<()> {
        let Ok((ar, scope)) = self.resolve(&r.gvk()).await else {
            return Ok(());
        };
        match self
            .api(&ar, &scope, r.namespace.as_deref())
            .delete(&r.name, &DeleteParams::background())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e).with_context(|| format!("deleting {r}")),
        }
    }
}

fn str_field(obj: &Value, path: &[&str]) -> anyhow::Result<String> {
    let mut v = obj;
    for p in path {
        v = v.get(p).with_context(|| format!("no {}", path.join(".")))?;
    }
    v.as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .with_context(|| format!("{} is not a string", path.join(".")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_skip_empty_ones_and_flatten_lists() {
        let yaml = "---\n# a comment only\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Secret, metadata: {name: b}}\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: c}}\n";
        let docs = documents(yaml).unwrap();
        let names: Vec<_> = docs.iter().map(|d| d["metadata"]["name"].clone()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert!(documents("- 1\n- 2\n").is_err());
        assert!(documents("a: [").is_err());
    }

    #[test]
    fn object_refs_round_trip_through_their_record_line() {
        for r in [
            ObjectRef {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                namespace: Some("web".into()),
                name: "front".into(),
            },
            ObjectRef {
                api_version: "v1".into(),
                kind: "Namespace".into(),
                namespace: None,
                name: "web".into(),
            },
        ] {
            assert_eq!(ObjectRef::parse(&r.to_string()), Some(r.clone()));
        }
        assert_eq!(ObjectRef::parse("v1 Service"), None);
    }
}
