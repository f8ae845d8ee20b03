//! The kinds the API serves: one table entry per resource, with what discovery, routing and
//! storage need. Names come from `k8s-openapi`'s types so they cannot be misspelt.

use std::collections::HashMap;

use k8s_openapi::api::{
    admissionregistration::v1 as admissionregistration, apps::v1 as apps,
    authentication::v1 as authentication, authorization::v1 as authorization,
    autoscaling::v1 as autoscaling1, autoscaling::v2 as autoscaling2, batch::v1 as batch,
    certificates::v1 as certificates, coordination::v1 as coordination, core::v1 as core,
    discovery::v1 as discovery, events::v1 as events, networking::v1 as networking,
    policy::v1 as policy, rbac::v1 as rbac, scheduling::v1 as scheduling, storage::v1 as storage,
};
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
    fn of<T>() -> Self
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
    fn create_only(mut self) -> Self {
        self.create_only = true;
        self
    }
    fn short(mut self, names: &'static [&'static str]) -> Self {
        self.short_names = names;
        self
    }
    fn all(mut self) -> Self {
        self.categories = &["all"];
        self
    }
    fn sub(mut self, subresources: &'static [&'static str]) -> Self {
        self.subresources = subresources;
        self
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

/// Every resource served, in discovery order.
pub fn all() -> Vec<ResourceInfo> {
    vec![
        // core/v1
        ResourceInfo::of::<core::Pod>().short(&["po"]).all().sub(&[
            "status",
            "binding",
            "log",
            "exec",
            "attach",
            "portforward",
            "ephemeralcontainers",
            "proxy",
            "eviction",
        ]),
        ResourceInfo::of::<core::ReplicationController>()
            .short(&["rc"])
            .all()
            .sub(&["status", "scale"]),
        service_info(),
        ResourceInfo::of::<core::Endpoints>().short(&["ep"]),
        ResourceInfo::of::<core::Node>()
            .short(&["no"])
            .sub(&["status", "proxy"]),
        namespace_info(),
        ResourceInfo::of::<core::Secret>(),
        ResourceInfo::of::<core::ConfigMap>().short(&["cm"]),
        ResourceInfo::of::<core::ServiceAccount>()
            .short(&["sa"])
            .sub(&["token"]),
        ResourceInfo::of::<core::PersistentVolume>()
            .short(&["pv"])
            .sub(&["status"]),
        ResourceInfo::of::<core::PersistentVolumeClaim>()
            .short(&["pvc"])
            .sub(&["status"]),
        ResourceInfo::of::<core::LimitRange>().short(&["limits"]),
        ResourceInfo::of::<core::ResourceQuota>()
            .short(&["quota"])
            .sub(&["status"]),
        ResourceInfo::of::<core::Event>().short(&["ev"]),
        ResourceInfo::of::<core::PodTemplate>(),
        // apps/v1
        ResourceInfo::of::<apps::Deployment>()
            .short(&["deploy"])
            .all()
            .sub(&["status", "scale"]),
        ResourceInfo::of::<apps::ReplicaSet>()
            .short(&["rs"])
            .all()
            .sub(&["status", "scale"]),
        ResourceInfo::of::<apps::DaemonSet>()
            .short(&["ds"])
            .all()
            .sub(&["status"]),
        ResourceInfo::of::<apps::StatefulSet>()
            .short(&["sts"])
            .all()
            .sub(&["status", "scale"]),
        ResourceInfo::of::<apps::ControllerRevision>(),
        // batch/v1
        ResourceInfo::of::<batch::Job>().all().sub(&["status"]),
        ResourceInfo::of::<batch::CronJob>()
            .short(&["cj"])
            .all()
            .sub(&["status"]),
        // autoscaling
        ResourceInfo::of::<autoscaling2::HorizontalPodAutoscaler>()
            .short(&["hpa"])
            .all()
            .sub(&["status"]),
        // autoscaling/v1: the same objects, converted (see conversion.rs)
        ResourceInfo::of::<autoscaling1::HorizontalPodAutoscaler>()
            .short(&["hpa"])
            .all()
            .sub(&["status"]),
        // networking.k8s.io/v1
        ResourceInfo::of::<networking::Ingress>()
            .short(&["ing"])
            .sub(&["status"]),
        ResourceInfo::of::<networking::IngressClass>(),
        ResourceInfo::of::<networking::NetworkPolicy>().short(&["netpol"]),
        // rbac.authorization.k8s.io/v1
        ResourceInfo::of::<rbac::Role>(),
        ResourceInfo::of::<rbac::ClusterRole>(),
        ResourceInfo::of::<rbac::RoleBinding>(),
        ResourceInfo::of::<rbac::ClusterRoleBinding>(),
        // authentication.k8s.io/v1 and authorization.k8s.io/v1: reviews, never stored
        ResourceInfo::of::<authentication::TokenReview>().create_only(),
        ResourceInfo::of::<authentication::SelfSubjectReview>().create_only(),
        ResourceInfo::of::<authorization::SubjectAccessReview>().create_only(),
        ResourceInfo::of::<authorization::SelfSubjectAccessReview>().create_only(),
        ResourceInfo::of::<authorization::LocalSubjectAccessReview>().create_only(),
        ResourceInfo::of::<authorization::SelfSubjectRulesReview>().create_only(),
        // certificates.k8s.io/v1
        ResourceInfo::of::<certificates::CertificateSigningRequest>()
            .short(&["csr"])
            .sub(&["status", "approval"]),
        // storage.k8s.io/v1
        ResourceInfo::of::<storage::StorageClass>().short(&["sc"]),
        // coordination.k8s.io/v1
        ResourceInfo::of::<coordination::Lease>(),
        // discovery.k8s.io/v1
        ResourceInfo::of::<discovery::EndpointSlice>(),
        // events.k8s.io/v1
        ResourceInfo::of::<events::Event>().short(&["ev"]),
        // policy/v1
        ResourceInfo::of::<policy::PodDisruptionBudget>()
            .short(&["pdb"])
            .sub(&["status"]),
        // scheduling.k8s.io/v1
        priority_class_info(),
        // admissionregistration.k8s.io/v1: the admission webhooks (see admission/webhook.rs)
        ResourceInfo::of::<admissionregistration::MutatingWebhookConfiguration>(),
        ResourceInfo::of::<admissionregistration::ValidatingWebhookConfiguration>(),
        // settings.k8s.io/v1alpha1: our own type (Kubernetes served it until 1.20)
        ResourceInfo::of::<crate::settings::PodPreset>(),
    ]
}

/// The served resource of a group and kind (admission plugins read other kinds by it).
pub fn by_kind(group: &str, kind: &str) -> crate::error::ApiResult<&'static ResourceInfo> {
    type Index = HashMap<&'static str, HashMap<&'static str, ResourceInfo>>;
    // Indexed: admission looks kinds up several times per write.
    static ALL: std::sync::OnceLock<Index> = std::sync::OnceLock::new();
    ALL.get_or_init(|| {
        let mut index = Index::new();
        for r in all().into_iter().rev() {
            // The first listed of a kind wins, as a scan would find it.
            index.entry(r.group).or_default().insert(r.kind, r);
        }
        index
    })
    .get(group)
    .and_then(|kinds| kinds.get(kind))
    .ok_or_else(|| {
        crate::error::ApiError::internal(format!(
            "no served resource of kind {kind} in group {group:?}"
        ))
    })
}

/// The Namespace resource (the registry checks namespaces exist).
pub fn namespace_info() -> ResourceInfo {
    ResourceInfo::of::<core::Namespace>()
        .short(&["ns"])
        .sub(&["status", "finalize"])
}

/// The PriorityClass resource (priority admission reads it).
pub fn priority_class_info() -> ResourceInfo {
    ResourceInfo::of::<scheduling::PriorityClass>().short(&["pc"])
}

/// The Service resource (its allocator reports errors against it).
pub fn service_info() -> ResourceInfo {
    ResourceInfo::of::<core::Service>()
        .short(&["svc"])
        .all()
        .sub(&["status", "proxy"])
}

/// A group and its versions, newest (preferred) first.
pub struct GroupInfo {
    pub name: &'static str,
    pub versions: Vec<&'static str>,
}

/// The named groups (not core), in discovery order, each with its versions, preferred first.
pub fn groups(resources: &[ResourceInfo]) -> Vec<GroupInfo> {
    let mut out: Vec<GroupInfo> = Vec::new();
    for r in resources.iter().filter(|r| !r.group.is_empty()) {
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

/// Looks resources up by the URL's group, version and plural name.
pub struct Catalog {
    pub resources: Vec<ResourceInfo>,
    /// Group-versions a local API service answers below (their resources are in
    /// `resources` for discovery; requests go to the service).
    pub local: Vec<(&'static str, &'static str)>,
}

impl Catalog {
    pub fn new() -> Self {
        Catalog {
            resources: all(),
            local: Vec::new(),
        }
    }

    /// Adds the group-versions and resources of a local API service.
    pub fn add_local(&mut self, service: &dyn crate::aggregator::LocalApiService) {
        for v in service.versions() {
            self.local.push((service.group(), v));
        }
        self.resources.extend(service.resources());
    }

    /// Whether a local API service answers below `group/version`.
    pub fn is_local(&self, group: &str, version: &str) -> bool {
        self.local.iter().any(|(g, v)| *g == group && *v == version)
    }

    /// The named groups, with those of local services that list no resources.
    pub fn groups(&self) -> Vec<GroupInfo> {
        let mut out = groups(&self.resources);
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
        self.resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
    }

    pub fn by_kind(&self, group: &str, kind: &str) -> Option<&ResourceInfo> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.kind == kind)
    }

    pub fn has_version(&self, group: &str, version: &str) -> bool {
        self.is_local(group, version)
            || self
                .resources
                .iter()
                .any(|r| r.group == group && r.version == version)
    }
}

impl Default for Catalog {
    fn default() -> Self {
        Self::new()
    }
}
