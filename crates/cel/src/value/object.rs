//! A JSON object as a CEL value: fields converted when read.

use std::sync::OnceLock;

use cel_rust::ExecutionError;
use cel_rust::common::traits::{self, Container, Indexer, Iterable, Sizer};
use cel_rust::common::types::{self as celtypes, CelInt, CelString, Kind, Type};
use cel_rust::common::value::{CowVal, Val};

use super::{ANY, Metered, to_val};
use crate::cost;
use crate::schema::Node;
use serde_json::Value;

/// A JSON object: an object with declared fields (escaped names), or a map.
#[derive(Debug)]
pub(crate) struct Object<'a> {
    json: &'a serde_json::Map<String, Value>,
    node: &'a Node,
    /// The keys as CEL strings, made on the first iteration.
    keys: OnceLock<Vec<CelString<'a>>>,
}

impl<'a> Object<'a> {
    pub(super) fn new(json: &'a serde_json::Map<String, Value>, node: &'a Node) -> Self {
        Object {
            json,
            node,
            keys: OnceLock::new(),
        }
    }

    /// The JSON name, value and node of the entry CEL calls `name`.
    fn entry(&self, name: &str) -> Option<(&'a str, &'a Value, &'a Node)> {
        let node: &'a Node = self.node;
        let json: &'a serde_json::Map<String, Value> = self.json;
        if node.has_fields() {
            let (json_name, child) = node.field(name)?;
            let (k, v) = json.get_key_value(json_name)?;
            return Some((k.as_str(), v, child));
        }
        let (k, v) = json.get_key_value(name)?;
        Some((k.as_str(), v, node.additional.as_deref().unwrap_or(&ANY)))
    }

    /// CEL's name of a JSON key.
    fn cel_key(&self, key: &'a str) -> Option<CelString<'a>> {
        if self.node.has_fields() {
            let (cel, _) = self
                .node
                .cel_fields
                .iter()
                .find(|(_, j)| j.as_str() == key)?;
            Some(CelString::from(cel.clone()))
        } else {
            Some(CelString::from(key))
        }
    }

    fn keys(&self) -> &[CelString<'a>] {
        self.keys.get_or_init(|| {
            self.json
                .keys()
                .filter_map(|k| self.cel_key(k.as_str()))
                .collect()
        })
    }

    fn field(&self, name: &str) -> Result<Box<dyn Val + 'a>, ExecutionError> {
        cost::charge(1);
        match self.entry(name) {
            Some((_, v, node)) => to_val(v, node),
            None => Err(ExecutionError::no_such_key(name)),
        }
    }
}

fn key_name(idx: &dyn Val) -> Result<&str, ExecutionError> {
    idx.downcast_ref::<CelString>()
        .map(|s| s.inner())
        .ok_or_else(|| ExecutionError::UnexpectedType {
            got: idx.get_type().name().to_owned(),
            want: "string".to_owned(),
        })
}

impl<'a> Val for Object<'a> {
    fn get_type(&self) -> &Type {
        &celtypes::MAP_TYPE
    }

    fn cel_type() -> &'static Type {
        &celtypes::MAP_TYPE
    }

    fn as_indexer<'b, 'v>(&'b self) -> Option<&'b (dyn Indexer + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }

    fn as_iterable<'b, 'v>(&'b self) -> Option<&'b (dyn Iterable + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }

    fn as_sizer(&self) -> Option<&dyn Sizer> {
        Some(self)
    }

    fn as_container(&self) -> Option<&dyn Container> {
        Some(self)
    }

    fn equals(&self, other: &dyn Val) -> bool {
        cost::charge(self.json.len() as u64 + 1);
        if other.get_type().kind() != Kind::Map {
            return false;
        }
        let (Some(indexer), Some(sizer)) = (other.as_indexer(), other.as_sizer()) else {
            return false;
        };
        if *sizer.size().inner() != self.keys().len() as i64 {
            return false;
        }
        self.keys()
            .iter()
            .all(|k| match (self.field(k.inner()), indexer.get(k)) {
                (Ok(mine), Ok(theirs)) => mine.equals(theirs.as_ref()),
                _ => false,
            })
    }

    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v>
    where
        Self: 'v,
    {
        Box::new(Object::new(self.json, self.node))
    }
}

impl<'a> Indexer for Object<'a> {
    fn get<'b, 'v>(&'b self, idx: &dyn Val) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        Self: 'v,
    {
        let name = key_name(idx)?;
        Ok(CowVal::Owned(self.field(name)?))
    }

    fn steal<'v>(self: Box<Self>, idx: &dyn Val) -> Result<Box<dyn Val + 'v>, ExecutionError>
    where
        Self: 'v,
    {
        let name = key_name(idx)?;
        self.field(name)
    }
}

impl<'a> Iterable for Object<'a> {
    fn iter<'b, 'v>(&'b self) -> Box<dyn traits::Iterator<'b, 'v> + 'b>
    where
        Self: 'v,
    {
        Box::new(Metered {
            items: self.keys(),
            pos: 0,
        })
    }
}

impl Sizer for Object<'_> {
    fn size(&self) -> CelInt {
        CelInt::from(self.keys().len() as i64)
    }
}

impl Container for Object<'_> {
    fn contains(&self, value: &dyn Val) -> Result<bool, ExecutionError> {
        Ok(self.entry(key_name(value)?).is_some())
    }
}
