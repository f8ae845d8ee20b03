//! What discovery, routing and storage need of a served resource ([`ResourceInfo`]), and the
//! [`Catalog`] of them: the registered kinds ([`crate::kinds`], where each kind's entry is)
//! and the resources local API services serve. Names come from `k8s-openapi`'s types so they
//! cannot be misspelt.

use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope, Resource};

/// One served resource (a group/version/kind at a plural name).
#[derive(Clone, Debug)]
pub struct ResourceInfo {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    /// Subresources served besides the object itself (`status`, `scale`, `binding`).
    pub subresources: &'static [&'static str],
    /// A review (SubjectAccessReview, TokenReview, ...): answered on create, never stored.
    pub create_only: bool,
    /// Served read-only by a local API service (`get` and `list`: the metrics APIs).
    pub read_only: bool,
}

/// Whether a k8s-openapi resource is namespaced.
pub trait Scope {
    const NAMESPACED: bool;
}
impl Scope for NamespaceResourceScope {
    const NAMESPACED: bool = true;
}
impl Scope for ClusterResourceScope {
    const NAMESPACED: bool = false;
}

impl ResourceInfo {
    /// The resource of a `k8s-openapi` type: no short names, categories or subresources.
    pub fn of<T>() -> Self
    where
        T: Resource,
        T::Scope: Scope,
    {
        ResourceInfo {
            group: T::GROUP,
            version: T::VERSION,
            kind: T::KIND,
            plural: T::URL_PATH_SEGMENT,
            singular: T::KIND.to_ascii_lowercase(),
            namespaced: <T::Scope as Scope>::NAMESPACED,
            short_names: &[],
            categories: &[],
            subresources: &[],
            create_only: false,
            read_only: false,
        }
    }

    /// A resource a [`crate::aggregator::LocalApiService`] serves (read-only).
    pub fn local(
        group: &'static str,
        version: &'static str,
        kind: &'static str,
        plural: &'static str,
        namespaced: bool,
    ) -> Self {
        ResourceInfo {
            group,
            version,
            kind,
            plural,
            singular: String::new(),
            namespaced,
            short_names: &[],
            categories: &[],
            subresources: &[],
            create_only: false,
            read_only: true,
        }
    }
    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps`, or `pods`: how Kubernetes names a resource in messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The storage prefix of this resource, ending in `/`: `/registry/<group>/<plural>/`
    /// (`core` for the core group). Every served version of a kind shares it.
    pub fn storage_prefix(&self) -> String {
        let group = if self.group.is_empty() {
            "core"
        } else {
            self.group
        };
        format!("/registry/{group}/{}/", self.plural)
    }

    /// The verbs discovery lists.
    pub fn verbs(&self) -> &'static [&'static str] {
        if self.create_only {
            &["create"]
        } else if self.read_only {
            &["get", "list"]
        } else {
            &[
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch",
            ]
        }
    }

    pub fn has_subresource(&self, sub: &str) -> bool {
        self.subresources.contains(&sub)
    }
}

/// Every registered resource, in discovery order.
pub fn all() -> Vec<ResourceInfo> {
    crate::kinds::all()
        .into_iter()
        .map(|k| k.info.clone())
        .collect()
}

/// The served resource of a group and kind (admission plugins read other kinds by it).
pub fn by_kind(group: &str, kind: &str) -> crate::error::ApiResult<&'static ResourceInfo> {
    crate::kinds::by_kind(group, kind)
        .map(|k| &k.info)
        .ok_or_else(|| {
            crate::error::ApiError::internal(format!(
                "no served resource of kind {kind} in group {group:?}"
            ))
        })
}

/// A built-in resource, which is always registered.
fn builtin(group: &'static str, kind: &'static str) -> ResourceInfo {
    match by_kind(group, kind) {
        Ok(info) => info.clone(),
        // Unreachable with the built-in kinds; a resource of that name still routes.
        Err(_) => ResourceInfo::local(group, "v1", kind, "", false),
    }
}

/// The Namespace resource (the registry checks namespaces exist).
pub fn namespace_info() -> ResourceInfo {
    builtin("", "Namespace")
}

/// The PriorityClass resource (priority admission reads it).
pub fn priority_class_info() -> ResourceInfo {
    builtin("scheduling.k8s.io", "PriorityClass")
}

/// The Service resource (its allocator reports errors against it).
pub fn service_info() -> ResourceInfo {
    builtin("", "Service")
}

/// A group and its versions, newest (preferred) first.
pub struct GroupInfo {
    pub name: &'static str,
    pub versions: Vec<&'static str>,
}

/// The named groups (not core), in discovery order, each with its versions, preferred first.
pub fn groups<'a>(resources: impl IntoIterator<Item = &'a ResourceInfo>) -> Vec<GroupInfo> {
    let mut out: Vec<GroupInfo> = Vec::new();
    for r in resources.into_iter().filter(|r| !r.group.is_empty()) {
        match out.iter_mut().find(|g| g.name == r.group) {
            Some(g) if !g.versions.contains(&r.version) => g.versions.push(r.version),
            Some(_) => {}
            None => out.push(GroupInfo {
                name: r.group,
                versions: vec![r.version],
            }),
        }
    }
    out
}

/// Looks resources up by the URL's group, version and plural name: the registered kinds
/// (as registered now: a kind added at run time is served at once), then the resources of
/// local API services.
#[derive(Default)]
pub struct Catalog {
    /// What local API services serve (for discovery; requests go to the service).
    local_resources: Vec<ResourceInfo>,
    /// The schemas of those resources' kinds that their service gives, for OpenAPI.
    local_schemas: Vec<(&'static str, &'static str, &'static str, serde_json::Value)>,
    /// Group-versions a local API service answers below.
    pub local: Vec<(&'static str, &'static str)>,
    /// Group-versions proxied to extension API servers (remote APIServices).
    pub remote: crate::aggregator::remote::Remotes,
}

impl Catalog {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every resource served, in discovery order.
    pub fn resources(&self) -> Vec<&ResourceInfo> {
        crate::kinds::all()
            .into_iter()
            .map(|k| &k.info)
            .chain(&self.local_resources)
            .collect()
    }

    /// Adds the group-versions and resources of a local API service.
    pub fn add_local(&mut self, service: &dyn crate::aggregator::LocalApiService) {
        for v in service.versions() {
            self.local.push((service.group(), v));
        }
        for r in service.resources() {
            if let Some(schema) = service.schema(r.version, r.kind) {
                self.local_schemas
                    .push((r.group, r.version, r.kind, schema));
            }
            self.local_resources.push(r);
        }
    }

    /// The schema a local API service gives for a resource's kind.
    pub fn local_schema(&self, r: &ResourceInfo) -> Option<serde_json::Value> {
        self.local_schemas
            .iter()
            .find(|(g, v, k, _)| *g == r.group && *v == r.version && *k == r.kind)
            .map(|(.., s)| s.clone())
    }

    /// Whether a local API service answers below `group/version`.
    pub fn is_local(&self, group: &str, version: &str) -> bool {
        self.local.iter().any(|(g, v)| *g == group && *v == version)
    }

    /// The named groups, with those of local services that list no resources.
    pub fn groups(&self) -> Vec<GroupInfo> {
        let mut out = groups(self.resources());
        for (g, v) in &self.local {
            match out.iter_mut().find(|x| x.name == *g) {
                Some(x) if !x.versions.contains(v) => x.versions.push(v),
                Some(_) => {}
                None => out.push(GroupInfo {
                    name: g,
                    versions: vec![v],
                }),
            }
        }
        out
    }

    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceInfo> {
        crate::kinds::by_plural(group, version, plural)
            .map(|k| &k.info)
            .or_else(|| {
                self.local_resources
                    .iter()
                    .find(|r| r.group == group && r.version == version && r.plural == plural)
            })
    }

    pub fn by_kind(&self, group: &str, kind: &str) -> Option<&ResourceInfo> {
        crate::kinds::by_kind(group, kind)
            .map(|k| &k.info)
            .or_else(|| {
                self.local_resources
                    .iter()
                    .find(|r| r.group == group && r.kind == kind)
            })
    }

    pub fn has_version(&self, group: &str, version: &str) -> bool {
        self.is_local(group, version)
            || self
                .resources()
                .iter()
                .any(|r| r.group == group && r.version == version)
    }
}
