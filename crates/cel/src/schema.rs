//! The parts of a structural OpenAPI schema CEL needs, prepared once per CRD version: each
//! node's CEL type, its fields under their CEL (escaped) names, list semantics and size bounds.

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};

/// The CEL type a schema node gives its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Type {
    Object,
    Array,
    String,
    Integer,
    Number,
    Boolean,
    /// `x-kubernetes-int-or-string`: an int or a string, decided per value.
    IntOrString,
    /// No schema (admission policies' `object`, preserved unknown fields): typed by the JSON.
    Any,
}

/// String formats CEL gives types of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    None,
    DateTime,
    Date,
    Duration,
    Byte,
}

/// `x-kubernetes-list-type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ListType {
    Atomic,
    Set,
    Map(Vec<String>),
}

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub ty: Type,
    /// The schema's `type` as upstream reports it as a violation's bad value.
    pub type_name: String,
    pub format: Format,
    /// Declared properties by JSON name.
    pub props: BTreeMap<String, Node>,
    /// CEL field name (escaped) → JSON property name.
    pub cel_fields: BTreeMap<String, String>,
    pub additional: Option<Box<Node>>,
    pub items: Option<Box<Node>>,
    pub list_type: ListType,
    /// `x-kubernetes-map-type: atomic`: the map's entries don't correlate with the old object's.
    pub map_atomic: bool,
    pub max_items: Option<i64>,
    pub max_length: Option<i64>,
    pub max_properties: Option<i64>,
}

impl Node {
    /// A node without a schema: values are typed by their JSON.
    pub fn any() -> Node {
        Node {
            ty: Type::Any,
            type_name: String::new(),
            format: Format::None,
            props: BTreeMap::new(),
            cel_fields: BTreeMap::new(),
            additional: None,
            items: None,
            list_type: ListType::Atomic,
            map_atomic: false,
            max_items: None,
            max_length: None,
            max_properties: None,
        }
    }

    fn scalar(ty: Type, name: &str) -> Node {
        Node {
            ty,
            type_name: name.into(),
            ..Node::any()
        }
    }

    /// The node of `schema`; `resource_root` adds `apiVersion`, `kind` and the
    /// `metadata.name`/`generateName` CEL sees at a resource's root (upstream's
    /// `WithTypeAndObjectMeta`).
    pub fn new(schema: &JSONSchemaProps, resource_root: bool) -> Node {
        let int_or_string = schema.x_kubernetes_int_or_string == Some(true);
        let type_name = schema.type_.clone().unwrap_or_default();
        let ty = match type_name.as_str() {
            _ if int_or_string => Type::IntOrString,
            "object" => Type::Object,
            "array" => Type::Array,
            "string" => Type::String,
            "integer" => Type::Integer,
            "number" => Type::Number,
            "boolean" => Type::Boolean,
            _ => Type::Any,
        };
        let format = match (ty, schema.format.as_deref()) {
            (Type::String, Some("date-time")) => Format::DateTime,
            (Type::String, Some("date")) => Format::Date,
            (Type::String, Some("duration")) => Format::Duration,
            (Type::String, Some("byte")) => Format::Byte,
            _ => Format::None,
        };
        let embedded = schema.x_kubernetes_embedded_resource == Some(true);
        let mut props: BTreeMap<String, Node> = schema
            .properties
            .iter()
            .flatten()
            .map(|(k, v)| {
                let child = Node::new(v, v.x_kubernetes_embedded_resource == Some(true));
                (k.clone(), child)
            })
            .collect();
        if resource_root || embedded {
            for key in ["apiVersion", "kind"] {
                props
                    .entry(key.into())
                    .or_insert_with(|| Node::scalar(Type::String, "string"));
            }
            let mut meta = Node::scalar(Type::Object, "object");
            for key in ["name", "generateName"] {
                meta.props
                    .insert(key.into(), Node::scalar(Type::String, "string"));
            }
            meta.index_fields();
            props.insert("metadata".into(), meta);
        }
        let additional = match &schema.additional_properties {
            Some(JSONSchemaPropsOrBool::Schema(s)) => Some(Box::new(Node::new(
                s,
                s.x_kubernetes_embedded_resource == Some(true),
            ))),
            Some(JSONSchemaPropsOrBool::Bool(true)) => Some(Box::new(Node::any())),
            _ => None,
        };
        let items = match &schema.items {
            Some(JSONSchemaPropsOrArray::Schema(s)) => Some(Box::new(Node::new(
                s,
                s.x_kubernetes_embedded_resource == Some(true),
            ))),
            Some(JSONSchemaPropsOrArray::Schemas(v)) => v
                .first()
                .map(|s| Box::new(Node::new(s, s.x_kubernetes_embedded_resource == Some(true)))),
            None => None,
        };
        let list_type = match schema.x_kubernetes_list_type.as_deref() {
            Some("set") => ListType::Set,
            Some("map") => ListType::Map(
                schema
                    .x_kubernetes_list_map_keys
                    .clone()
                    .unwrap_or_default(),
            ),
            _ => ListType::Atomic,
        };
        let mut node = Node {
            ty,
            type_name,
            format,
            props,
            cel_fields: BTreeMap::new(),
            additional,
            items,
            list_type,
            map_atomic: schema.x_kubernetes_map_type.as_deref() == Some("atomic"),
            max_items: schema.max_items,
            max_length: schema.max_length,
            max_properties: schema.max_properties,
        };
        node.index_fields();
        node
    }

    fn index_fields(&mut self) {
        self.cel_fields = self
            .props
            .keys()
            .filter_map(|k| escape(k).map(|e| (e, k.clone())))
            .collect();
    }

    /// Whether values are objects with declared fields (CEL objects) rather than maps.
    pub fn has_fields(&self) -> bool {
        !self.props.is_empty()
    }

    /// The JSON name and node of the field CEL calls `cel_name`; `None` for a field
    /// the schema doesn't declare (absent or not a valid CEL name).
    pub fn field(&self, cel_name: &str) -> Option<(&str, &Node)> {
        let json = self.cel_fields.get(cel_name)?;
        self.props.get(json).map(|n| (json.as_str(), n))
    }
}

const RESERVED: [&str; 21] = [
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// A property name as CEL names the field (upstream's `cel.Escape`); `None` when the
/// name cannot be a CEL identifier.
pub(crate) fn escape(name: &str) -> Option<String> {
    if RESERVED.contains(&name) {
        return Some(format!("__{name}__"));
    }
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || "_.-/".contains(c));
    if !first_ok
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c))
    {
        return None;
    }
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("__") {
            out.push_str("__underscores__");
            rest = &rest[2..];
            continue;
        }
        match c {
            '.' => out.push_str("__dot__"),
            '-' => out.push_str("__dash__"),
            '/' => out.push_str("__slash__"),
            c => out.push(c),
        }
        rest = &rest[c.len_utf8()..];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(escape("foo").as_deref(), Some("foo"));
        assert_eq!(escape("foo-bar").as_deref(), Some("foo__dash__bar"));
        assert_eq!(escape("a.b/c").as_deref(), Some("a__dot__b__slash__c"));
        assert_eq!(escape("a__b").as_deref(), Some("a__underscores__b"));
        assert_eq!(escape("namespace").as_deref(), Some("__namespace__"));
        assert_eq!(escape("1x"), None);
        assert_eq!(escape("a b"), None);
    }
}
