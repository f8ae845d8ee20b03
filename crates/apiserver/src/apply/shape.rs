//! How the fields of an object merge under server-side apply: a built-in kind's lists by
//! their strategic-merge tags (upstream's OpenAPI `x-kubernetes-list-type` and
//! `-list-map-keys` for the same fields), a custom kind's by its CRD schema.

use apiextensions::schema::{ListKind, MergeNode, Structural};
use serde_json::Value;

use crate::patch::merge_key;
use crate::resources::ResourceInfo;

#[derive(Clone, Copy)]
pub enum Shape<'a> {
    /// A built-in kind, or the ObjectMeta of any object.
    Builtin,
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
        f.write_str(match self {
            Shape::Builtin => "Builtin",
            Shape::Schema { .. } => "Schema",
        })
    }
}

impl Shape<'static> {
    /// The shape of the objects of a served kind.
    pub fn of_kind(info: &ResourceInfo) -> Self {
        Shape::of(crate::kinds::of(info).typed().and_then(|t| t.structural()))
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
            Shape::Builtin => Shape::Builtin,
            Shape::Schema { resource: true, .. } if name == "metadata" => Shape::Builtin,
            Shape::Schema { node, .. } => Shape::schema(node.and_then(|n| n.field(name))),
        }
    }

    /// The shape of a list's items.
    pub fn items(self) -> Shape<'a> {
        match self {
            Shape::Builtin => Shape::Builtin,
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
            Shape::Builtin => builtin_list(name, items),
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
            Shape::Builtin => false,
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
