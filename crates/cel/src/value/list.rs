//! A JSON array as a CEL list, with its `x-kubernetes-list-type` semantics.

use cel_rust::ExecutionError;
use cel_rust::common::traits::{self, Adder, Container, Indexer, Iterable, Sizer};
use cel_rust::common::types::{self as celtypes, CelInt, CelList, CelString, Type};
use cel_rust::common::value::{Builtin, BuiltinRef, CowVal, Val};

use super::{MeteredBoxes, elements_of, to_val};
use crate::cost;
use crate::schema::{ListType, Node};
use serde_json::Value;

/// A list with its `x-kubernetes-list-type`: sets and maps compare regardless of order,
/// and `+` on them merges rather than appends.
#[derive(Debug)]
pub(crate) struct List<'a> {
    items: CelList<'a>,
    list_type: &'a ListType,
}

impl<'a> List<'a> {
    pub(super) fn from_json(
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

    // The interpreter indexes an owned list (e.g. a field just read from an object) by
    // moving the element out; without this, `self.items[0]` is a 'no such overload'.
    fn into_indexer<'v>(self: Box<Self>) -> Option<Box<dyn Indexer + 'v>>
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
