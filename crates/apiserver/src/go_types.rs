//! Upstream's Go API types as tables generated at build time (`build.rs`, from the vendored
//! `protobuf-schema/`): each type's fields with their protobuf number, JSON name, Go
//! semantics and patch strategy. The protobuf decoder and strategic merge patch read them.

/// What a field holds, from its Go type.
#[derive(Clone, Copy, Debug)]
pub enum Ty {
    Str,
    Int,
    Bool,
    /// `[]byte`: base64 in JSON.
    Bytes,
    Msg(&'static str),
    /// An embedded Go struct: its fields appear in the parent's JSON.
    Inline(&'static str),
    Time,
    MicroTime,
    Quantity,
    IntOrString,
    /// `runtime.RawExtension`: JSON bytes, inlined.
    RawExtension,
    /// `metav1.FieldsV1`: JSON bytes, inlined.
    FieldsV1,
    /// A named `[]string` as a map value (`ExtraValue`): a message of repeated field 1.
    StrList,
    /// A map with string keys (entries: key 1, value 2).
    Map(&'static Ty),
}

pub struct Field {
    pub no: u64,
    pub name: &'static str,
    pub ty: Ty,
    pub repeated: bool,
    /// Whether a zero value is kept: a Go pointer's (present means set), or a value field
    /// Go's JSON writes even when zero (no omitempty).
    pub keep_zero: bool,
    /// The `patchStrategy` tag (`merge`, `retainKeys`, `merge,retainKeys`; empty: none).
    pub patch_strategy: &'static str,
    /// The `patchMergeKey` tag.
    pub merge_key: &'static str,
    /// The `+listType` marker (`atomic`, `set`, `map`; empty: none).
    pub list_type: &'static str,
    /// The `+listMapKey` markers.
    pub list_map_keys: &'static [&'static str],
}

use Ty::*;

/// What a field's value is, for the walks over an object (strategic merge, apply).
#[derive(Clone, Copy, Debug)]
pub enum Holds {
    /// A struct of this type (also an embedded one).
    Struct(&'static str),
    /// A map; its values are this struct, or scalars.
    MapOf(Option<&'static str>),
    /// A scalar or a wrapper type (nothing to walk into).
    Scalar,
}

/// How a list field's `patchStrategy`/`patchMergeKey` tags merge it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchMerge {
    /// No merge strategy: replaced.
    Replace,
    /// `merge` without a key: primitives merged as a set (`finalizers`).
    Set,
    /// `merge` by this key.
    Keyed(&'static str),
}

impl Field {
    /// What the field's value (or each item of a list) is.
    pub fn holds(&self) -> Holds {
        match self.ty {
            Ty::Msg(m) | Ty::Inline(m) => Holds::Struct(m),
            Ty::Map(Ty::Msg(m)) => Holds::MapOf(Some(m)),
            Ty::Map(_) => Holds::MapOf(None),
            _ => Holds::Scalar,
        }
    }

    /// How its patch strategy merges the list.
    pub fn patch_merge(&self) -> PatchMerge {
        if !self.patch_strategy.split(',').any(|s| s == "merge") {
            PatchMerge::Replace
        } else if self.merge_key.is_empty() {
            PatchMerge::Set
        } else {
            PatchMerge::Keyed(self.merge_key)
        }
    }
}

// `schema(message)`: the fields of `"<group>/<version>.<Type>"` (`core/v1.PodSpec`,
// `meta/v1.ObjectMeta`).
include!(concat!(env!("OUT_DIR"), "/go_types.rs"));

/// The message of a kind's objects: `apps/v1.Deployment`, `core/v1.Pod`.
pub(crate) fn message_of(group: &str, version: &str, kind: &str) -> String {
    let package = match group.split('.').next() {
        None | Some("") => "core",
        Some(p) => p,
    };
    format!("{package}/{version}.{kind}")
}

/// The message of an OpenAPI definition name (`io.k8s.api.core.v1.PodSpec` →
/// `core/v1.PodSpec`), if the tables have it.
pub(crate) fn of_definition(definition: &str) -> Option<&'static str> {
    let name = if let Some(rest) = definition.strip_prefix("io.k8s.apimachinery.pkg.apis.meta.v1.")
    {
        format!("meta/v1.{rest}")
    } else {
        let rest = definition.strip_prefix("io.k8s.api.")?;
        let (pkg, ty) = rest.rsplit_once('.')?;
        format!("{}.{ty}", pkg.replace('.', "/"))
    };
    MESSAGES.iter().copied().find(|m| *m == name)
}

/// The type a built-in kind's objects have, if the tables know it.
pub(crate) fn of_kind(info: &crate::resources::ResourceInfo) -> Option<&'static str> {
    let name = message_of(info.group, info.version, info.kind);
    MESSAGES.iter().copied().find(|m| *m == name)
}

/// Field `json` of type `message`, looking into embedded structs too.
pub(crate) fn field(message: &str, json: &str) -> Option<&'static Field> {
    let fields = schema(message)?;
    fields.iter().find(|f| f.name == json).or_else(|| {
        fields.iter().find_map(|f| match f.ty {
            Ty::Inline(inner) => field(inner, json),
            _ => None,
        })
    })
}
