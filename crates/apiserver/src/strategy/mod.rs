//! Per-kind behaviour the generic registry calls: defaults, validation, what a write may
//! change, and which fields can be selected on. Kinds without special rules use
//! [`Generic`]; each special kind has its own module. Each kind's registration
//! ([`crate::kinds`]) says which strategy it has.

pub(crate) mod admission_policy;
pub(crate) mod admissionregistration;
pub(crate) mod apiextensions;
pub(crate) mod apiservice;
pub(crate) mod autoscaling;
pub(crate) mod certificates;
pub(crate) mod claim;
pub(crate) mod job;
pub(crate) mod namespace;
pub(crate) mod pod;
pub(crate) mod rbac;
pub(crate) mod secret;
pub(crate) mod service;
pub(crate) mod settings;
pub(crate) mod volume;
pub(crate) mod workload;

use serde_json::Value;

use crate::error::Cause;
use crate::meta;
use crate::user::UserInfo;

pub trait Strategy: Send + Sync {
    /// Kubernetes' defaulting, applied to every object written (create and update), as
    /// Kubernetes defaults every object it decodes.
    fn defaults(&self, _obj: &mut Value) {}

    /// Resets what clients may not set on create (e.g. status), after defaults. `user` is
    /// the requester (none for the server's own writes), as upstream's request context.
    fn prepare_for_create(&self, _obj: &mut Value, _user: Option<&UserInfo>) {}

    /// Keeps what an update of the main resource may not change (before defaults).
    fn prepare_for_update(&self, _new: &mut Value, _old: &Value) {}

    /// Kind-specific validation of a whole object, after defaults.
    fn validate(&self, _obj: &Value) -> Vec<Cause> {
        Vec::new()
    }

    /// Kind-specific checks of an update against the stored object (immutable fields).
    fn validate_update(&self, _new: &Value, _old: &Value) -> Vec<Cause> {
        Vec::new()
    }

    /// Rules that judge a write as a whole, the object (`old`: the stored one, on update)
    /// once per write: a CRD's `x-kubernetes-validations`, whose transition rules need
    /// both.
    fn validate_rules(&self, _obj: &Value, _old: Option<&Value>) -> Vec<Cause> {
        Vec::new()
    }

    /// Whether object names are DNS labels rather than subdomains.
    fn name_is_label(&self) -> bool {
        false
    }

    /// A kind's own name rule, replacing the DNS one (RBAC names are path segments).
    fn validate_name(&self, _name: &str) -> Option<Cause> {
        None
    }

    /// Whether the kind has its own name rule ([`Strategy::validate_name`]).
    fn own_name_rule(&self) -> bool {
        false
    }

    /// Whether `metadata.generation` counts spec changes for this kind.
    fn tracks_generation(&self) -> bool {
        false
    }

    /// Fields a field selector may use besides `metadata.name` and `metadata.namespace`.
    fn field_selectors(&self) -> &'static [&'static str] {
        &[]
    }

    /// An update through one of the kind's own subresources (`approval`, `finalize`,
    /// `ephemeralcontainers`; upstream gives each its own strategy): the stored object `old`
    /// with what that subresource may change taken from `new`. `None`: not such a
    /// subresource of this kind (the update is of the object).
    fn update_subresource(&self, _subresource: &str, _new: &Value, _old: &Value) -> SubUpdate {
        None
    }
}

/// The rules every kind follows, with the few a kind may switch on without a strategy of its
/// own.
#[derive(Default)]
pub struct Generic {
    generation: bool,
    fields: &'static [&'static str],
}

impl Generic {
    /// Counts spec changes in `metadata.generation`.
    pub fn tracking_generation() -> Self {
        Generic {
            generation: true,
            ..Generic::default()
        }
    }

    /// Selectable by `fields` besides name and namespace.
    pub fn with_field_selectors(fields: &'static [&'static str]) -> Self {
        Generic {
            fields,
            ..Generic::default()
        }
    }
}

impl Strategy for Generic {
    fn tracks_generation(&self) -> bool {
        self.generation
    }
    fn field_selectors(&self) -> &'static [&'static str] {
        self.fields
    }
}

pub(crate) use settings::with_defaults as limit_range_defaults;

/// What [`Strategy::update_subresource`] answers: the object to store, or why not; `None`
/// for a subresource the kind does not have.
pub type SubUpdate = Option<Result<Value, Vec<Cause>>>;

/// `old` with `new`'s value at `/{parent}/{field}` (null if it has none), `parent` made an
/// object if it was not: what a subresource owning one field writes.
pub(crate) fn with_field_of(new: &Value, old: &Value, parent: &str, field: &str) -> Value {
    let value = new
        .get(parent)
        .and_then(|p| p.get(field))
        .cloned()
        .unwrap_or(Value::Null);
    let mut updated = old.clone();
    if !updated.get(parent).is_some_and(Value::is_object) {
        updated[parent] = Value::Object(Default::default());
    }
    updated[parent][field] = value;
    updated
}

/// Sets `key` in a JSON object if it is absent or null.
pub(crate) fn set_default(obj: &mut Value, key: &str, value: Value) {
    if let Some(m) = obj.as_object_mut()
        && m.get(key).is_none_or(Value::is_null)
    {
        m.insert(key.to_string(), value);
    }
}

/// Checks the name of a new object by the kind's rule.
pub fn validate_name(strategy: &dyn Strategy, name: &str) -> Option<Cause> {
    if name.is_empty() {
        return Some(Cause::required("metadata.name"));
    }
    if strategy.own_name_rule() {
        strategy.validate_name(name)
    } else if strategy.name_is_label() {
        meta::check_label("metadata.name", name)
    } else {
        meta::check_subdomain("metadata.name", name)
    }
}
