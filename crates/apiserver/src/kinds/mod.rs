//! One registration per kind: everything the generic registry, handler, table printing and
//! discovery know of a kind — its [`ResourceInfo`], [`Strategy`], typed decoding, table
//! printer and store hooks — in one [`KindRegistration`], as upstream installs each group's
//! kinds into its scheme and builds one `genericregistry.Store` per resource
//! (`pkg/registry/<group>/<kind>/storage`). The built-in kinds are listed per group (the
//! modules here, in discovery order); [`register`] adds a kind at run time (what CRDs will
//! use). Generic code looks kinds up here and has no `if kind == ...` of its own.
//!
//! The table is an immutable snapshot replaced whole on [`register`]: a lookup is a read
//! lock and a hash lookup. Registrations live as long as the process (upstream's scheme
//! too), so lookups hand out `&'static` references and never count references.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use crate::conversion::Convert;
use crate::registry::hooks::{NoHooks, StoreHooks};
use crate::resources::{ResourceInfo, Scope};
use crate::scale::ScalePaths;
use crate::strategy::{Generic, Strategy};
use crate::table::{self, TablePrinter};
use crate::typed::Typed;

mod admissionregistration;
mod apiextensions;
mod apiregistration;
mod apps;
mod auth;
mod autoscaling;
mod batch;
mod certificates;
mod coordination;
pub(crate) mod core;
mod discovery;
mod events;
mod networking;
mod policy;
mod rbac;
mod scheduling;
mod settings;
mod storage;

/// How a review kind (create-only, never stored) is answered.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Review {
    /// TokenReview: who a token authenticates as.
    Token,
    /// The access reviews and SelfSubjectReview, answered by the authorizer.
    Access,
}

/// A kind as the API server serves it at one group/version.
pub struct KindRegistration {
    pub info: ResourceInfo,
    strategy: Box<dyn Strategy>,
    /// Decoding through the kind's type; `None`: objects pass as sent.
    typed: Option<Typed>,
    printer: Box<dyn TablePrinter>,
    hooks: Box<dyn StoreHooks>,
    review: Option<Review>,
    /// How this version is converted from and to the stored one; `None`: it is the one
    /// stored.
    converter: Option<Box<dyn Convert>>,
    /// Where the `scale` subresource reads and writes replicas.
    scale: ScalePaths,
    /// The warning every request to this version gets (a deprecated CRD version).
    deprecation: Option<&'static str>,
    /// Its objects' upstream Go type, if the generated tables have it.
    go_type: Option<&'static str>,
}

impl KindRegistration {
    /// A kind served with its `k8s-openapi` (or own) type `T`: names, scope and typed
    /// decoding from the type; the generic strategy, default table and no store hooks until
    /// set.
    pub fn of<T>() -> Self
    where
        T: k8s_openapi::Resource
            + serde::Serialize
            + serde::de::DeserializeOwned
            + crate::schemas::Source,
        T::Scope: Scope,
    {
        let mut kind = Self::untyped(ResourceInfo::of::<T>());
        kind.typed = Some(Typed::of::<T>());
        // Looked up once here, not on every write that merges or patches.
        kind.go_type = crate::go_types::of_kind(&kind.info);
        kind
    }

    /// A kind without a type here: objects are stored as sent.
    pub fn untyped(info: ResourceInfo) -> Self {
        KindRegistration {
            info,
            strategy: Box::new(Generic::default()),
            typed: None,
            printer: Box::new(table::DEFAULT),
            hooks: Box::new(NoHooks),
            review: None,
            converter: None,
            scale: ScalePaths::default(),
            deprecation: None,
            go_type: None,
        }
    }

    /// Decoded by `typed` (a custom kind's schema).
    pub fn with_typed(mut self, typed: Typed) -> Self {
        self.typed = Some(typed);
        self
    }
    pub fn with_strategy(mut self, strategy: impl Strategy + 'static) -> Self {
        self.strategy = Box::new(strategy);
        self
    }
    pub fn with_printer(mut self, printer: impl TablePrinter + 'static) -> Self {
        self.printer = Box::new(printer);
        self
    }
    pub fn with_hooks(mut self, hooks: impl StoreHooks + 'static) -> Self {
        self.hooks = Box::new(hooks);
        self
    }
    /// kubectl's short names (`po`).
    pub fn short(mut self, names: &'static [&'static str]) -> Self {
        self.info.short_names = names;
        self
    }
    /// In the `all` category (`kubectl get all`).
    pub fn all(mut self) -> Self {
        self.info.categories = &["all"];
        self
    }
    /// Subresources served besides the object.
    pub fn subresources(mut self, subresources: &'static [&'static str]) -> Self {
        self.info.subresources = subresources;
        self
    }
    /// Served converted from another stored version.
    pub fn with_conversion(mut self, converter: impl Convert + 'static) -> Self {
        self.converter = Some(Box::new(converter));
        self
    }
    /// Where the `scale` subresource finds replicas (a CRD's `subresources.scale`).
    pub fn with_scale(mut self, scale: ScalePaths) -> Self {
        self.scale = scale;
        self
    }
    /// Deprecated: every request to it is answered with this warning.
    pub fn with_deprecation(mut self, warning: &'static str) -> Self {
        self.deprecation = Some(warning);
        self
    }
    /// A review: answered on create, never stored.
    pub fn with_review(mut self, review: Review) -> Self {
        self.info.create_only = true;
        self.review = Some(review);
        self
    }

    pub fn strategy(&self) -> &dyn Strategy {
        self.strategy.as_ref()
    }
    pub fn typed(&self) -> Option<&Typed> {
        self.typed.as_ref()
    }
    pub fn printer(&self) -> &dyn TablePrinter {
        self.printer.as_ref()
    }
    pub fn hooks(&self) -> &dyn StoreHooks {
        self.hooks.as_ref()
    }
    /// Its objects' upstream Go type (`apps/v1.Deployment`), when a built-in kind has one.
    pub fn go_type(&self) -> Option<&'static str> {
        self.go_type
    }
    pub fn converter(&self) -> Option<&dyn Convert> {
        self.converter.as_deref()
    }
    pub fn scale(&self) -> &ScalePaths {
        &self.scale
    }
    /// The deprecation warning of this version, if it is deprecated.
    pub fn deprecation(&self) -> Option<&'static str> {
        self.deprecation
    }
    /// How a review kind is answered; `None` for stored kinds.
    pub fn review(&self) -> Option<Review> {
        self.review
    }
}

type Gvk = (&'static str, &'static str, &'static str);

/// One snapshot of the registered kinds.
#[derive(Default)]
struct Snapshot {
    /// In registration (discovery) order.
    ordered: Vec<&'static KindRegistration>,
    by_gvk: HashMap<Gvk, &'static KindRegistration>,
    /// The first registered version of each group and kind.
    by_gk: HashMap<(&'static str, &'static str), &'static KindRegistration>,
    /// By group, version and plural name: how URLs name resources.
    by_plural: HashMap<Gvk, &'static KindRegistration>,
}

impl Snapshot {
    fn with(&self, kind: &'static KindRegistration) -> Snapshot {
        let i = &kind.info;
        let mut next = Snapshot {
            ordered: self.ordered.clone(),
            by_gvk: self.by_gvk.clone(),
            by_gk: self.by_gk.clone(),
            by_plural: self.by_plural.clone(),
        };
        // A kind registered again at the same version replaces the old registration.
        next.ordered.retain(|k| {
            (k.info.group, k.info.version, k.info.kind) != (i.group, i.version, i.kind)
        });
        next.ordered.push(kind);
        next.by_gvk.insert((i.group, i.version, i.kind), kind);
        // By group and kind the first version registered answers, unless this replaces it.
        match next.by_gk.get(&(i.group, i.kind)) {
            Some(first) if first.info.version != i.version => {}
            _ => {
                next.by_gk.insert((i.group, i.kind), kind);
            }
        }
        next.by_plural.insert((i.group, i.version, i.plural), kind);
        next
    }
}

impl Snapshot {
    /// Without the kind served at `group/version/plural`.
    fn without(&self, group: &str, version: &str, plural: &str) -> Snapshot {
        let mut next = Snapshot::default();
        for k in &self.ordered {
            let i = &k.info;
            if (i.group, i.version, i.plural) != (group, version, plural) {
                next = next.with(k);
            }
        }
        next
    }
}

/// A table of kinds; the server's is [`registered`] (one per process, as upstream's scheme).
pub struct Kinds {
    snapshot: RwLock<Arc<Snapshot>>,
    /// Counts changes, so that what is derived from the table (OpenAPI documents,
    /// discovery) is rebuilt when it changes.
    generation: AtomicU64,
}

impl Kinds {
    /// The built-in kinds.
    fn builtin() -> Self {
        let mut snapshot = Snapshot::default();
        for kind in builtin() {
            snapshot = snapshot.with(Box::leak(Box::new(kind)));
        }
        Kinds {
            snapshot: RwLock::new(Arc::new(snapshot)),
            generation: AtomicU64::new(0),
        }
    }

    fn read<R>(&self, f: impl FnOnce(&Snapshot) -> R) -> R {
        let guard = self.snapshot.read().unwrap_or_else(|e| e.into_inner());
        f(&guard)
    }

    /// Adds (or replaces) a kind while the server runs; lookups see it at once.
    pub fn register(&self, kind: KindRegistration) -> &'static KindRegistration {
        let kind: &'static KindRegistration = Box::leak(Box::new(kind));
        let mut guard = self.snapshot.write().unwrap_or_else(|e| e.into_inner());
        let next = guard.with(kind);
        *guard = Arc::new(next);
        self.generation.fetch_add(1, Ordering::Release);
        kind
    }

    /// Stops serving `group/version/plural` (a CRD version removed). The registration
    /// itself stays allocated: requests in flight may still hold it.
    pub fn unregister(&self, group: &str, version: &str, plural: &str) -> bool {
        let mut guard = self.snapshot.write().unwrap_or_else(|e| e.into_inner());
        if !guard.by_plural.contains_key(&(group, version, plural)) {
            return false;
        }
        let next = guard.without(group, version, plural);
        *guard = Arc::new(next);
        self.generation.fetch_add(1, Ordering::Release);
        true
    }

    /// Changes so far: what was derived from the table at another count is stale.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The registration of a served resource. Resources no registration names (those
    /// local API services serve) get the generic one: default strategy and table, no hooks,
    /// no type.
    pub fn of(&self, info: &ResourceInfo) -> &'static KindRegistration {
        self.read(|s| {
            s.by_gvk
                .get(&(info.group, info.version, info.kind))
                .copied()
        })
        .unwrap_or_else(generic)
    }

    /// The kind registered at a group and version.
    pub fn by_gvk(
        &self,
        group: &str,
        version: &str,
        kind: &str,
    ) -> Option<&'static KindRegistration> {
        self.read(|s| s.by_gvk.get(&(group, version, kind)).copied())
    }

    /// The first registered version of a group's kind.
    pub fn by_kind(&self, group: &str, kind: &str) -> Option<&'static KindRegistration> {
        self.read(|s| s.by_gk.get(&(group, kind)).copied())
    }

    /// The kind served at `group/version/plural`.
    pub fn by_plural(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<&'static KindRegistration> {
        self.read(|s| s.by_plural.get(&(group, version, plural)).copied())
    }

    /// Every registered kind, in discovery order.
    pub fn all(&self) -> Vec<&'static KindRegistration> {
        self.read(|s| s.ordered.clone())
    }
}

/// The kinds this process serves.
pub fn registered() -> &'static Kinds {
    static KINDS: OnceLock<Kinds> = OnceLock::new();
    KINDS.get_or_init(Kinds::builtin)
}

/// What unregistered resources are served with (its `info` is a placeholder).
fn generic() -> &'static KindRegistration {
    static GENERIC: OnceLock<KindRegistration> = OnceLock::new();
    GENERIC.get_or_init(|| KindRegistration::untyped(ResourceInfo::local("", "", "", "", false)))
}

/// [`Kinds::register`] on the served kinds.
pub fn register(kind: KindRegistration) -> &'static KindRegistration {
    registered().register(kind)
}

/// [`Kinds::unregister`] on the served kinds.
pub fn unregister(group: &str, version: &str, plural: &str) -> bool {
    registered().unregister(group, version, plural)
}

/// [`Kinds::generation`] of the served kinds.
pub fn generation() -> u64 {
    registered().generation()
}

/// [`Kinds::of`] on the served kinds.
pub fn of(info: &ResourceInfo) -> &'static KindRegistration {
    registered().of(info)
}

/// [`Kinds::by_gvk`] on the served kinds.
pub fn by_gvk(group: &str, version: &str, kind: &str) -> Option<&'static KindRegistration> {
    registered().by_gvk(group, version, kind)
}

/// [`Kinds::by_kind`] on the served kinds.
pub fn by_kind(group: &str, kind: &str) -> Option<&'static KindRegistration> {
    registered().by_kind(group, kind)
}

/// [`Kinds::by_plural`] on the served kinds.
pub fn by_plural(group: &str, version: &str, plural: &str) -> Option<&'static KindRegistration> {
    registered().by_plural(group, version, plural)
}

/// [`Kinds::all`] on the served kinds.
pub fn all() -> Vec<&'static KindRegistration> {
    registered().all()
}

/// Every built-in kind, in discovery order.
fn builtin() -> Vec<KindRegistration> {
    let mut kinds = core::kinds();
    kinds.extend(apps::kinds());
    kinds.extend(batch::kinds());
    kinds.extend(autoscaling::kinds());
    kinds.extend(networking::kinds());
    kinds.extend(rbac::kinds());
    kinds.extend(auth::kinds());
    kinds.extend(certificates::kinds());
    kinds.extend(storage::kinds());
    kinds.extend(coordination::kinds());
    kinds.extend(discovery::kinds());
    kinds.extend(events::kinds());
    kinds.extend(policy::kinds());
    kinds.extend(scheduling::kinds());
    kinds.extend(admissionregistration::kinds());
    kinds.extend(apiextensions::kinds());
    kinds.extend(apiregistration::kinds());
    kinds.extend(settings::kinds());
    kinds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_kind_is_found_by_its_names() {
        for k in all() {
            let i = &k.info;
            assert!(std::ptr::eq(of(i), k), "{}", i.kind);
            assert!(std::ptr::eq(
                by_plural(i.group, i.version, i.plural).unwrap(),
                k
            ));
        }
        // Two versions of one kind: the first registered answers by group and kind.
        assert_eq!(
            by_kind("autoscaling", "HorizontalPodAutoscaler")
                .unwrap()
                .info
                .version,
            "v2"
        );
    }

    #[test]
    fn a_kind_registered_at_run_time_is_served() {
        // A table of its own: the process' table is the other tests' too.
        let kinds = Kinds::builtin();
        let info = ResourceInfo::local("example.com", "v1", "Widget", "widgets", true);
        assert!(kinds.by_plural("example.com", "v1", "widgets").is_none());
        assert_eq!(kinds.of(&info).info.kind, "", "the generic registration");
        let before = kinds.all().len();
        kinds.register(KindRegistration::untyped(info.clone()).short(&["wd"]));
        let k = kinds.by_plural("example.com", "v1", "widgets").unwrap();
        assert_eq!(k.info.short_names, &["wd"]);
        assert!(std::ptr::eq(kinds.of(&info), k));
        assert!(std::ptr::eq(
            kinds.by_kind("example.com", "Widget").unwrap(),
            k
        ));
        assert_eq!(kinds.all().len(), before + 1);
        // Registered again: replaced, not listed twice.
        kinds.register(KindRegistration::untyped(info.clone()));
        assert_eq!(kinds.all().len(), before + 1);
        assert!(kinds.of(&info).info.short_names.is_empty());
    }
}
