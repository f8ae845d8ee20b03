//! JSON values as CEL values, typed by their schema node, converted lazily: an object is
//! a view that converts a field when the expression reads it, so a rule touching
//! `self.spec.replicas` converts one integer rather than the object. A list converts its
//! own elements when read (objects among them stay views) and keeps its
//! `x-kubernetes-list-type` semantics for `==` and `+`.

use std::sync::{LazyLock, OnceLock};

use base64::Engine;
use cel_rust::ExecutionError;
use cel_rust::common::traits::{self, Adder, Container, Indexer, Iterable, Sizer};
use cel_rust::common::types::{
    self as celtypes, CelBool, CelBytes, CelDouble, CelDuration, CelInt, CelList, CelNull,
    CelString, CelTimestamp, CelUInt, Kind, Type,
};
use cel_rust::common::value::{Builtin, BuiltinRef, CowVal, Val};
use serde_json::Value;

use crate::cost;
use crate::schema::{self, Format, ListType, Node};

static ANY: LazyLock<Node> = LazyLock::new(Node::any);
static ATOMIC: ListType = ListType::Atomic;

/// `json` as a CEL value typed by `node`.
pub(crate) fn to_val<'a>(
    json: &'a Value,
    node: &'a Node,
) -> Result<Box<dyn Val + 'a>, ExecutionError> {
    Ok(match json {
        Value::Null => Box::new(CelNull),
        Value::Bool(b) => Box::new(CelBool::from(*b)),
        Value::Number(n) => match (node.ty, n.as_i64(), n.as_u64()) {
            (schema::Type::Number, _, _) => Box::new(CelDouble::from(n.as_f64().unwrap_or(0.0))),
            (_, Some(i), _) => Box::new(CelInt::from(i)),
            (_, None, Some(u)) => Box::new(CelUInt::from(u)),
            _ => Box::new(CelDouble::from(n.as_f64().unwrap_or(0.0))),
        },
        Value::String(s) => string(s, node.format)?,
        Value::Array(items) => {
            let elem = node.items.as_deref().unwrap_or(&ANY);
            let list_type = if node.ty == schema::Type::Any {
                &ATOMIC
            } else {
                &node.list_type
            };
            Box::new(List::from_json(items, elem, list_type)?)
        }
        Value::Object(map) => Box::new(Object::new(map, node)),
    })
}

/// A typed value for untyped JSON (admission policies' variables).
pub(crate) fn to_val_untyped(json: &Value) -> Result<Box<dyn Val + '_>, ExecutionError> {
    to_val(json, &ANY)
}

fn format_error(what: &str, s: &str) -> ExecutionError {
    ExecutionError::function_error("format", format!("invalid {what}: {s:?}"))
}

fn string<'a>(s: &'a str, format: Format) -> Result<Box<dyn Val + 'a>, ExecutionError> {
    cost::charge(1);
    Ok(match format {
        Format::None => Box::new(CelString::from(s)),
        Format::DateTime => {
            let t = chrono::DateTime::parse_from_rfc3339(s)
                .map_err(|_| format_error("date-time", s))?;
            Box::new(CelTimestamp::from(t))
        }
        Format::Date => {
            let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map_err(|_| format_error("date", s))?;
            let t = d.and_time(chrono::NaiveTime::MIN).and_utc().fixed_offset();
            Box::new(CelTimestamp::from(t))
        }
        Format::Duration => {
            let d = crate::duration::parse(s).ok_or_else(|| format_error("duration", s))?;
            Box::new(CelDuration::from(d))
        }
        Format::Byte => {
            let b = base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|_| format_error("byte", s))?;
            Box::new(CelBytes::from(b))
        }
    })
}

/// A JSON object: an object with declared fields (escaped names), or a map.
#[derive(Debug)]
pub(crate) struct Object<'a> {
    json: &'a serde_json::Map<String, Value>,
    node: &'a Node,
    /// The keys as CEL strings, made on the first iteration.
    keys: OnceLock<Vec<CelString<'a>>>,
}

impl<'a> Object<'a> {
    fn new(json: &'a serde_json::Map<String, Value>, node: &'a Node) -> Self {
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

/// Iterates a slice, charging each element to the cost meter and stopping once the
/// budget is spent (the evaluation's result is then discarded).
struct Metered<'b, T> {
    items: &'b [T],
    pos: usize,
}

impl<'b, 'v, T: Val + 'v> traits::Iterator<'b, 'v> for Metered<'b, T> {
    fn next(&mut self) -> Option<&'b (dyn Val + 'v)> {
        if !cost::charge(1) {
            return None;
        }
        let item = self.items.get(self.pos)?;
        self.pos += 1;
        Some(item)
    }
}

struct MeteredBoxes<'b, 'a> {
    items: &'b [Box<dyn Val + 'a>],
    pos: usize,
}

impl<'b, 'a: 'v, 'v> traits::Iterator<'b, 'v> for MeteredBoxes<'b, 'a> {
    fn next(&mut self) -> Option<&'b (dyn Val + 'v)> {
        if !cost::charge(1) {
            return None;
        }
        let item = self.items.get(self.pos)?;
        self.pos += 1;
        Some(item.as_ref())
    }
}

/// A list with its `x-kubernetes-list-type`: sets and maps compare regardless of order,
/// and `+` on them merges rather than appends.
#[derive(Debug)]
pub(crate) struct List<'a> {
    items: CelList<'a>,
    list_type: &'a ListType,
}

impl<'a> List<'a> {
    fn from_json(
        json: &'a [Value],
        elem: &'a Node,
        list_type: &'a ListType,
    ) -> Result<Self, ExecutionError> {
        cost::charge(json.len() as u64);
        let items = json
            .iter()
            .map(|v| to_val(v, elem))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(List {
            items: CelList::from(items),
            list_type,
        })
    }

    fn elements(&self) -> &[Box<dyn Val + 'a>] {
        self.items.inner()
    }
}

/// The elements of any list value.
fn elements_of<'b, 'v>(val: &'b (dyn Val + 'v)) -> Option<Vec<&'b (dyn Val + 'v)>> {
    if val.get_type().kind() != Kind::List {
        return None;
    }
    let mut iter = val.as_iterable()?.iter();
    let mut out = Vec::new();
    while let Some(v) = iter.next() {
        out.push(v);
    }
    Some(out)
}

/// Whether two elements of a map-type list have the same key fields.
fn same_keys(keys: &[String], a: &dyn Val, b: &dyn Val) -> bool {
    let (Some(ia), Some(ib)) = (a.as_indexer(), b.as_indexer()) else {
        return false;
    };
    keys.iter().all(|k| {
        let k = CelString::from(k.as_str());
        match (ia.get(&k), ib.get(&k)) {
            (Ok(x), Ok(y)) => x.equals(y.as_ref()),
            (Err(_), Err(_)) => true,
            _ => false,
        }
    })
}

impl<'a> Val for List<'a> {
    fn get_type(&self) -> &Type {
        &celtypes::LIST_TYPE
    }

    fn cel_type() -> &'static Type {
        &celtypes::LIST_TYPE
    }

    fn as_adder<'b, 'v>(&'b self) -> Option<&'b (dyn Adder + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }

    fn as_container(&self) -> Option<&dyn Container> {
        Some(self)
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

    fn equals(&self, other: &dyn Val) -> bool {
        let mine = self.elements();
        cost::charge(mine.len() as u64 + 1);
        let Some(theirs) = elements_of(other) else {
            return false;
        };
        if theirs.len() != mine.len() {
            return false;
        }
        match self.list_type {
            ListType::Atomic => mine.iter().zip(&theirs).all(|(a, b)| a.equals(*b)),
            ListType::Set => mine.iter().all(|a| {
                cost::charge(theirs.len() as u64);
                theirs.iter().any(|b| a.equals(*b))
            }),
            ListType::Map(keys) => mine.iter().all(|a| {
                cost::charge(theirs.len() as u64);
                theirs
                    .iter()
                    .find(|b| same_keys(keys, a.as_ref(), **b))
                    .is_some_and(|b| a.equals(*b))
            }),
        }
    }

    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v>
    where
        Self: 'v,
    {
        Box::new(List {
            items: self.items.clone(),
            list_type: self.list_type,
        })
    }

    // A list literal on the left of `==` (and functions taking lists) see the elements.
    fn as_builtin<'b, 'v>(&'b self) -> BuiltinRef<'b, 'v>
    where
        Self: 'v,
    {
        BuiltinRef::List(&self.items)
    }

    fn into_builtin<'v>(self: Box<Self>) -> Option<Builtin<'v>>
    where
        Self: 'v,
    {
        Some(Builtin::List(self.items))
    }
}

impl<'a> Adder for List<'a> {
    fn add<'b, 'v>(&'b self, rhs: &(dyn Val + 'v)) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        Self: 'v,
    {
        let theirs = elements_of(rhs).ok_or_else(|| ExecutionError::UnexpectedType {
            got: rhs.get_type().name().to_owned(),
            want: "list".to_owned(),
        })?;
        cost::charge((self.elements().len() + theirs.len()) as u64);
        let mut out: Vec<Box<dyn Val + 'v>> =
            self.elements().iter().map(|v| v.clone_as_boxed()).collect();
        for t in theirs {
            match self.list_type {
                ListType::Atomic => out.push(t.clone_as_boxed()),
                ListType::Set => {
                    if !out.iter().any(|o| o.equals(t)) {
                        out.push(t.clone_as_boxed());
                    }
                }
                ListType::Map(keys) => {
                    match out.iter().position(|o| same_keys(keys, o.as_ref(), t)) {
                        Some(i) => out[i] = t.clone_as_boxed(),
                        None => out.push(t.clone_as_boxed()),
                    }
                }
            }
        }
        Ok(CowVal::owned(List {
            items: CelList::from(out),
            list_type: self.list_type,
        }))
    }
}

impl Container for List<'_> {
    fn contains(&self, value: &dyn Val) -> Result<bool, ExecutionError> {
        cost::charge(self.elements().len() as u64);
        Ok(self.elements().iter().any(|e| e.equals(value)))
    }
}

impl<'a> Indexer for List<'a> {
    fn get<'b, 'v>(&'b self, idx: &dyn Val) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        Self: 'v,
    {
        self.items.get(idx)
    }

    fn steal<'v>(self: Box<Self>, idx: &dyn Val) -> Result<Box<dyn Val + 'v>, ExecutionError>
    where
        Self: 'v,
    {
        Box::new(self.items).steal(idx)
    }
}

impl<'a> Iterable for List<'a> {
    fn iter<'b, 'v>(&'b self) -> Box<dyn traits::Iterator<'b, 'v> + 'b>
    where
        Self: 'v,
    {
        Box::new(MeteredBoxes {
            items: self.elements(),
            pos: 0,
        })
    }
}

impl Sizer for List<'_> {
    fn size(&self) -> CelInt {
        CelInt::from(self.elements().len() as i64)
    }
}

/// A CEL value as JSON: the result of an admission policy's expression.
pub(crate) fn to_json(val: &dyn Val) -> Result<Value, String> {
    use chrono::SecondsFormat;
    let unsupported = || {
        format!(
            "cannot convert a value of type {} to JSON",
            val.get_type().name()
        )
    };
    Ok(match val.get_type().kind() {
        Kind::NullType => Value::Null,
        Kind::Boolean => Value::Bool(
            *val.downcast_ref::<CelBool>()
                .ok_or_else(unsupported)?
                .inner(),
        ),
        Kind::Int => Value::from(
            *val.downcast_ref::<CelInt>()
                .ok_or_else(unsupported)?
                .inner(),
        ),
        Kind::UInt => Value::from(
            *val.downcast_ref::<CelUInt>()
                .ok_or_else(unsupported)?
                .inner(),
        ),
        Kind::Double => Value::from(
            *val.downcast_ref::<CelDouble>()
                .ok_or_else(unsupported)?
                .inner(),
        ),
        Kind::String => Value::String(
            val.downcast_ref::<CelString>()
                .ok_or_else(unsupported)?
                .inner()
                .to_owned(),
        ),
        Kind::Bytes => Value::String(
            base64::engine::general_purpose::STANDARD.encode(
                val.downcast_ref::<CelBytes>()
                    .ok_or_else(unsupported)?
                    .inner(),
            ),
        ),
        Kind::Timestamp => Value::String(
            val.downcast_ref::<CelTimestamp>()
                .ok_or_else(unsupported)?
                .inner()
                .to_rfc3339_opts(SecondsFormat::AutoSi, true),
        ),
        Kind::Duration => Value::String(crate::duration::format(
            val.downcast_ref::<CelDuration>()
                .ok_or_else(unsupported)?
                .inner(),
        )),
        Kind::List => {
            let items = elements_of(val).ok_or_else(unsupported)?;
            Value::Array(items.into_iter().map(to_json).collect::<Result<_, _>>()?)
        }
        Kind::Map => {
            let keys = val.as_iterable().ok_or_else(unsupported)?;
            let indexer = val.as_indexer().ok_or_else(unsupported)?;
            let mut out = serde_json::Map::new();
            let mut iter = keys.iter();
            while let Some(k) = iter.next() {
                let name = match to_json(k)? {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                let v = indexer.get(k).map_err(|e| e.to_string())?;
                out.insert(name, to_json(v.as_ref())?);
            }
            Value::Object(out)
        }
        _ => match val.downcast_ref::<crate::library::quantity::Quantity>() {
            Some(q) => Value::String(q.canonical()),
            None => return Err(unsupported()),
        },
    })
}
