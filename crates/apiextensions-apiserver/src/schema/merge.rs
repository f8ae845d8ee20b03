//! What server-side apply needs from a schema: how each list merges (`x-kubernetes-list-type`
//! and `x-kubernetes-list-map-keys`) and which objects are atomic (`x-kubernetes-map-type`),
//! as upstream's structured-merge-diff reads them from a CRD's schema.

use super::node::{Additional, ListType, Node};

/// How the items of a list merge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListKind {
    /// Replaced whole, owned as one field (a CRD list's default).
    Atomic,
    /// Scalars merged as a set, each value owned on its own.
    Set,
    /// Objects merged by these keys, each item owned on its own.
    Map(Vec<String>),
}

/// A schema node as apply walks the object: fields, items, and how lists and maps merge.
#[derive(Clone, Copy)]
pub struct MergeNode<'a> {
    node: &'a Node,
}

impl<'a> MergeNode<'a> {
    pub(super) fn new(node: &'a Node) -> Self {
        MergeNode { node }
    }

    /// The schema of field `name` of an object: its property, else `additionalProperties`.
    /// `None`: undeclared (kept by `x-kubernetes-preserve-unknown-fields`), which merges as
    /// upstream's deduced schema does (maps granular, lists atomic).
    pub fn field(&self, name: &str) -> Option<MergeNode<'a>> {
        if let Some(n) = self.node.properties.get(name) {
            return Some(MergeNode::new(n));
        }
        match &self.node.additional {
            Some(Additional::Schema(n)) => Some(MergeNode::new(n)),
            _ => None,
        }
    }

    /// The schema of a list's items.
    pub fn items(&self) -> Option<MergeNode<'a>> {
        self.node.items.as_deref().map(MergeNode::new)
    }

    /// How the list this node describes merges (`atomic` unless the schema says otherwise).
    pub fn list_kind(&self) -> ListKind {
        match self.node.list_type {
            Some(ListType::Set) => ListKind::Set,
            Some(ListType::Map) => ListKind::Map(self.node.list_map_keys.clone()),
            Some(ListType::Atomic) | None => ListKind::Atomic,
        }
    }

    /// Whether the object this node describes is replaced whole by an apply.
    pub fn is_atomic_map(&self) -> bool {
        self.node.map_atomic
    }

    /// Whether this node is an embedded resource (its `metadata` is ObjectMeta).
    pub fn is_embedded(&self) -> bool {
        self.node.embedded
    }
}
