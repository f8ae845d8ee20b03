//! The compiled schema tree: one [`Node`] per schema, with everything the per-object passes
//! need resolved up front (types as enums, regexes compiled, unsupported formats dropped).

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use regex::Regex;
use serde_json::Value;

use super::formats::Format;
use super::path::{Path, Seg};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum Type {
    #[default]
    Any,
    Object,
    Array,
    String,
    Integer,
    Number,
    Boolean,
    /// `x-kubernetes-int-or-string` (kube-openapi's `["integer","string"]`).
    IntOrString,
}

impl Type {
    /// The type list as kube-openapi joins it in messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Type::Any => "",
            Type::Object => "object",
            Type::Array => "array",
            Type::String => "string",
            Type::Integer => "integer",
            Type::Number => "number",
            Type::Boolean => "boolean",
            Type::IntOrString => "integer,string",
        }
    }

    pub(crate) fn contains(self, t: &str) -> bool {
        match self {
            Type::IntOrString => t == "integer" || t == "string",
            Type::Any => false,
            _ => self.name() == t,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ListType {
    Atomic,
    Set,
    Map,
}

pub(crate) enum Additional {
    Bool(bool),
    Schema(Box<Node>),
}

/// One compiled schema (structural or inside a logical junctor).
#[derive(Default)]
pub(crate) struct Node {
    pub ty: Type,
    pub nullable: bool,
    /// The format kube-openapi keeps for this type (unsupported ones dropped).
    pub format: Option<(String, Format)>,
    pub default: Option<Value>,
    pub properties: BTreeMap<String, Node>,
    pub additional: Option<Additional>,
    pub items: Option<Box<Node>>,
    pub preserve_unknown: bool,
    pub embedded: bool,
    pub list_type: Option<ListType>,
    pub list_map_keys: Vec<String>,
    /// `x-kubernetes-map-type: atomic`: server-side apply replaces the object whole.
    pub map_atomic: bool,
    pub enum_: Vec<Value>,
    pub pattern: Option<(String, Option<Regex>)>,
    pub min_length: Option<i64>,
    pub max_length: Option<i64>,
    pub min_items: Option<i64>,
    pub max_items: Option<i64>,
    pub min_properties: Option<i64>,
    pub max_properties: Option<i64>,
    pub minimum: Option<f64>,
    pub maximum: Option<f64>,
    pub exclusive_minimum: bool,
    pub exclusive_maximum: bool,
    pub multiple_of: Option<f64>,
    pub unique_items: bool,
    pub required: Vec<String>,
    pub all_of: Vec<Node>,
    pub any_of: Vec<Node>,
    pub one_of: Vec<Node>,
    pub not: Option<Box<Node>>,
    /// Whether anything but `type`/`format`-free structure must be checked on values:
    /// lets validation skip whole subtrees quickly.
    pub has_value_checks: bool,
    /// Whether the subtree has set or map lists (else the list-type walk skips it).
    pub has_list_checks: bool,
    /// Whether the subtree has embedded resources (else the embedded walk skips it).
    pub has_embedded: bool,
    /// Whether anything below has a default (else defaulting skips the subtree).
    pub has_defaults: bool,
}

impl Node {
    /// Compiles `s` (assumed already checked; bad patterns compile to `None`).
    pub(crate) fn compile(s: &JSONSchemaProps) -> Node {
        let ty = if s.x_kubernetes_int_or_string == Some(true) {
            Type::IntOrString
        } else {
            match s.type_.as_deref() {
                Some("object") => Type::Object,
                Some("array") => Type::Array,
                Some("string") => Type::String,
                Some("integer") => Type::Integer,
                Some("number") => Type::Number,
                Some("boolean") => Type::Boolean,
                _ => Type::Any,
            }
        };
        let format = s
            .format
            .as_deref()
            .and_then(|f| Format::for_type(f, s.type_.as_deref(), ty));
        let list_type = match s.x_kubernetes_list_type.as_deref() {
            Some("set") => Some(ListType::Set),
            Some("map") => Some(ListType::Map),
            Some("atomic") => Some(ListType::Atomic),
            _ => None,
        };
        let additional = s.additional_properties.as_ref().map(|a| match a {
            JSONSchemaPropsOrBool::Schema(x) => Additional::Schema(Box::new(Node::compile(x))),
            JSONSchemaPropsOrBool::Bool(b) => Additional::Bool(*b),
        });
        let items = match &s.items {
            Some(JSONSchemaPropsOrArray::Schema(x)) => Some(Box::new(Node::compile(x))),
            Some(JSONSchemaPropsOrArray::Schemas(xs)) => {
                xs.first().map(|x| Box::new(Node::compile(x)))
            }
            None => None,
        };
        let compile_all = |v: &Option<Vec<JSONSchemaProps>>| -> Vec<Node> {
            v.as_deref()
                .unwrap_or_default()
                .iter()
                .map(Node::compile)
                .collect()
        };
        let mut n = Node {
            ty,
            nullable: s.nullable == Some(true),
            format,
            default: s
                .default
                .as_ref()
                .map(|d| d.0.clone())
                .filter(|d| !d.is_null()),
            properties: s
                .properties
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), Node::compile(v)))
                .collect(),
            additional,
            items,
            preserve_unknown: s.x_kubernetes_preserve_unknown_fields == Some(true),
            embedded: s.x_kubernetes_embedded_resource == Some(true),
            list_type,
            list_map_keys: s.x_kubernetes_list_map_keys.clone().unwrap_or_default(),
            map_atomic: s.x_kubernetes_map_type.as_deref() == Some("atomic"),
            enum_: s.enum_.iter().flatten().map(|j| j.0.clone()).collect(),
            pattern: s
                .pattern
                .as_ref()
                .map(|p| (p.clone(), super::pattern::compile(p).ok())),
            min_length: s.min_length,
            max_length: s.max_length,
            min_items: s.min_items,
            max_items: s.max_items,
            min_properties: s.min_properties,
            max_properties: s.max_properties,
            minimum: s.minimum,
            maximum: s.maximum,
            exclusive_minimum: s.exclusive_minimum == Some(true),
            exclusive_maximum: s.exclusive_maximum == Some(true),
            multiple_of: s.multiple_of,
            unique_items: s.unique_items == Some(true),
            required: s.required.clone().unwrap_or_default(),
            all_of: compile_all(&s.all_of),
            any_of: compile_all(&s.any_of),
            one_of: compile_all(&s.one_of),
            not: s.not.as_deref().map(|x| Box::new(Node::compile(x))),
            has_value_checks: false,
            has_list_checks: false,
            has_embedded: false,
            has_defaults: false,
        };
        n.has_value_checks = n.compute_has_value_checks();
        n.has_list_checks = matches!(n.list_type, Some(ListType::Set | ListType::Map))
            || n.any_child(|c| c.has_list_checks);
        n.has_embedded = n.embedded || n.any_child(|c| c.has_embedded);
        n.has_defaults = n.any_child(|c| c.default.is_some() || c.has_defaults);
        n
    }

    fn compute_has_value_checks(&self) -> bool {
        self.ty != Type::Any
            || self.format.is_some()
            || !self.enum_.is_empty()
            || self.pattern.is_some()
            || self.min_length.is_some()
            || self.max_length.is_some()
            || self.min_items.is_some()
            || self.max_items.is_some()
            || self.min_properties.is_some()
            || self.max_properties.is_some()
            || self.minimum.is_some()
            || self.maximum.is_some()
            || self.multiple_of.is_some()
            || self.unique_items
            || !self.required.is_empty()
            || !self.all_of.is_empty()
            || !self.any_of.is_empty()
            || !self.one_of.is_empty()
            || self.not.is_some()
            || self.properties.values().any(|p| p.has_value_checks)
            || matches!(&self.additional, Some(Additional::Bool(false)))
            || matches!(&self.additional, Some(Additional::Schema(a)) if a.has_value_checks)
            || self.items.as_ref().is_some_and(|i| i.has_value_checks)
    }

    /// Whether any structural child (property, additionalProperties, items) satisfies `f`.
    fn any_child(&self, f: impl Fn(&Node) -> bool) -> bool {
        self.properties.values().any(&f)
            || matches!(&self.additional, Some(Additional::Schema(a)) if f(a))
            || self.items.as_deref().is_some_and(&f)
    }

    /// The schema of field `k` (a property, else additionalProperties' schema).
    pub(crate) fn field(&self, k: &str) -> Option<&Node> {
        self.child(k).map(|(_, n)| n)
    }

    /// The schema of field `k` with its path segment: a property (`Seg::Prop`), else
    /// additionalProperties' schema (`Seg::Key`).
    pub(crate) fn child<'k>(&self, k: &'k str) -> Option<(Seg<'k>, &Node)> {
        match self.properties.get(k) {
            Some(p) => Some((Seg::Prop(k), p)),
            None => match &self.additional {
                Some(Additional::Schema(a)) => Some((Seg::Key(k), a)),
                _ => None,
            },
        }
    }
}

/// Walks `x` and the values below it that `s` has schemas for (properties,
/// additionalProperties' schema, items) depth first, calling `visit` on each value before
/// its children; a subtree whose schema fails `wanted` (one of the `has_*` flags) is skipped.
pub(crate) fn walk<'a>(
    x: &'a Value,
    s: &'a Node,
    path: &mut Path<'a>,
    wanted: fn(&Node) -> bool,
    visit: &mut impl FnMut(&'a Value, &'a Node, &mut Path<'a>),
) {
    if !wanted(s) {
        return;
    }
    visit(x, s, path);
    match x {
        Value::Object(m) => {
            for (k, v) in m {
                if let Some((seg, child)) = s.child(k) {
                    path.push(seg);
                    walk(v, child, path, wanted, visit);
                    path.pop();
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = &s.items {
                for (i, v) in a.iter().enumerate() {
                    path.push(Seg::Index(i));
                    walk(v, items, path, wanted, visit);
                    path.pop();
                }
            }
        }
        _ => {}
    }
}
