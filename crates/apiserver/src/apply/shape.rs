//! How the fields of an object merge under server-side apply: a built-in kind's lists as
//! its Go types' `+listType`/`+listMapKey` markers say (else their patch strategy, as
//! upstream's schema conversion reads `x-kubernetes-patch-merge-key`), a custom kind's by its
//! CRD schema; where no type is known, by field names.

use apiextensions::schema::{ListKind, MergeNode, Structural};
use serde_json::Value;

use crate::go_types::{self, Field, Holds, PatchMerge};
use crate::patch::merge_key;
use crate::resources::ResourceInfo;

#[derive(Clone, Copy)]
pub enum Shape<'a> {
    /// No type known (a kind of rkube's own): lists keyed by field names.
    Builtin,
    /// A struct of this Go type (`core/v1.PodSpec`).
    Typed(&'static str),
    /// A list field of a Go type.
    TypedList(&'static Field),
    /// A Go map whose values are this struct (or scalars).
    TypedMap(Option<&'static str>),
    /// A custom kind: the schema node here (`None`: undeclared, kept by
    /// `x-kubernetes-preserve-unknown-fields`, which merges as upstream's deduced schema:
    /// maps granular, lists atomic). `resource`: the object's top or an embedded resource,
    /// whose `metadata` is ObjectMeta.
    Schema {
        node: Option<MergeNode<'a>>,
        resource: bool,
    },
}

impl std::fmt::Debug for Shape<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Shape::Builtin => f.write_str("Builtin"),
            Shape::Typed(m) => write!(f, "Typed({m})"),
            Shape::TypedList(field) => write!(f, "TypedList({})", field.name),
            Shape::TypedMap(m) => write!(f, "TypedMap({m:?})"),
            Shape::Schema { .. } => f.write_str("Schema"),
        }
    }
}

impl Shape<'static> {
    /// The shape of the objects of a served kind.
    pub fn of_kind(info: &ResourceInfo) -> Self {
        let kind = crate::kinds::of(info);
        match kind.typed().and_then(|t| t.structural()) {
            Some(schema) => Shape::of(Some(schema)),
            None => kind.go_type().map_or(Shape::Builtin, Shape::Typed),
        }
    }
}

/// The shape of a field of a Go type.
fn typed_field(f: &'static Field) -> Shape<'static> {
    if f.repeated {
        return Shape::TypedList(f);
    }
    match f.holds() {
        Holds::Struct(m) => Shape::Typed(m),
        Holds::MapOf(m) => Shape::TypedMap(m),
        Holds::Scalar => Shape::Builtin,
    }
}

/// How a Go list field merges: its `+listType` (and `+listMapKey`s), else its patch strategy
/// (a merge key makes it a map, a merge without key a set), else atomic.
fn typed_list(f: &Field) -> ListKind {
    let keys = |ks: &[&str]| ListKind::Map(ks.iter().map(|k| k.to_string()).collect());
    match f.list_type {
        "map" => keys(f.list_map_keys),
        "set" => ListKind::Set,
        "atomic" => ListKind::Atomic,
        _ => match f.patch_merge() {
            PatchMerge::Keyed(key) => keys(&[key]),
            PatchMerge::Set => ListKind::Set,
            PatchMerge::Replace => ListKind::Atomic,
        },
    }
}

impl<'a> Shape<'a> {
    /// The shape of a whole object of a kind (`schema`: its CRD version's, if custom).
    pub fn of(schema: Option<&'a Structural>) -> Self {
        match schema {
            None => Shape::Builtin,
            Some(s) => Shape::Schema {
                node: Some(s.merge_root()),
                resource: true,
            },
        }
    }

    /// The shape of field `name` of an object.
    pub fn field(self, name: &str) -> Shape<'a> {
        match self {
            Shape::Builtin | Shape::TypedList(_) => Shape::Builtin,
            Shape::Typed(m) => go_types::field(m, name).map_or(Shape::Builtin, typed_field),
            Shape::TypedMap(m) => m.map_or(Shape::Builtin, Shape::Typed),
            Shape::Schema { resource: true, .. } if name == "metadata" => {
                Shape::Typed("meta/v1.ObjectMeta")
            }
            Shape::Schema { node, .. } => Shape::schema(node.and_then(|n| n.field(name))),
        }
    }

    /// The shape of a list's items.
    pub fn items(self) -> Shape<'a> {
        match self {
            Shape::Builtin | Shape::Typed(_) | Shape::TypedMap(_) => Shape::Builtin,
            Shape::TypedList(f) => match f.holds() {
                Holds::Struct(m) => Shape::Typed(m),
                Holds::MapOf(_) | Holds::Scalar => Shape::Builtin,
            },
            Shape::Schema { node, .. } => Shape::schema(node.and_then(|n| n.items())),
        }
    }

    fn schema(node: Option<MergeNode<'a>>) -> Shape<'a> {
        Shape::Schema {
            node,
            resource: node.is_some_and(|n| n.is_embedded()),
        }
    }

    /// How list `name` (this shape's) with `items` merges. A map list whose items do not
    /// each have their own keys is treated as atomic, as no item could be told apart.
    pub fn list(self, name: &str, items: &[Value]) -> ListKind {
        let kind = match self {
            Shape::Builtin | Shape::Typed(_) | Shape::TypedMap(_) => builtin_list(name, items),
            Shape::TypedList(f) => typed_list(f),
            Shape::Schema { node, .. } => node.map_or(ListKind::Atomic, |n| n.list_kind()),
        };
        match kind {
            ListKind::Map(keys) if !keys_unique(items, &keys) => ListKind::Atomic,
            k => k,
        }
    }

    /// Whether an object here is replaced whole (`x-kubernetes-map-type: atomic`).
    pub fn atomic_map(self) -> bool {
        match self {
            Shape::Builtin | Shape::TypedList(_) | Shape::TypedMap(_) => false,
            Shape::Typed(m) => go_types::ATOMIC.contains(&m),
            Shape::Schema { node, .. } => node.is_some_and(|n| n.is_atomic_map()),
        }
    }
}

/// A built-in list's kind: finalizers are a set; ports are keyed by number and protocol,
/// spread constraints by topology key and action, the other lists with a strategic merge
/// key by it; the rest are atomic.
fn builtin_list(name: &str, items: &[Value]) -> ListKind {
    if name == "finalizers" {
        return ListKind::Set;
    }
    let elems: Vec<&Value> = items.iter().collect();
    let Some(key) = merge_key(name, &elems) else {
        return ListKind::Atomic;
    };
    let second = match name {
        "ports" => Some("protocol"),
        "topologySpreadConstraints" => Some("whenUnsatisfiable"),
        _ => None,
    };
    ListKind::Map(
        std::iter::once(key)
            .chain(second)
            .map(String::from)
            .collect(),
    )
}

/// Whether every item has the first key and a key of its own.
fn keys_unique(items: &[Value], keys: &[String]) -> bool {
    let mut seen = std::collections::HashSet::new();
    items.iter().all(|i| {
        keys.first().is_some_and(|k| i.get(k).is_some()) && seen.insert(super::item_key(i, keys))
    })
}
