//! `x-kubernetes-list-type` set and map invariants on values (upstream's
//! `listtype/validation.go`): duplicates are `Duplicate value` errors at the later index.

use serde_json::{Map, Value};

use super::node::{ListType, Node, walk};
use super::path::{Path, Seg};
use super::validation::json_equal;
use crate::field::FieldError;
use common::gofmt;

pub(crate) fn validate<'a>(
    x: &'a Value,
    s: &'a Node,
    path: &mut Path<'a>,
    errs: &mut Vec<FieldError>,
) {
    walk(x, s, path, |s| s.has_list_checks, &mut |x, s, path| {
        let Value::Array(a) = x else {
            return;
        };
        match s.list_type {
            Some(ListType::Set) => {
                for i in non_unique(a.iter()) {
                    errs.push(duplicate_at(path, i, &a[i]));
                }
            }
            Some(ListType::Map) => validate_map(a, s, path, errs),
            _ => {}
        }
    });
}

/// A `Duplicate value` error for item `i` of the list at `path`.
fn duplicate_at(path: &mut Path, i: usize, value: &Value) -> FieldError {
    path.push(Seg::Index(i));
    let e = FieldError::duplicate(path.field(""), value.clone());
    path.pop();
    e
}

/// Indices of second occurrences (each repeated value reported once), like upstream.
fn non_unique<'v>(items: impl Iterator<Item = &'v Value> + Clone) -> Vec<usize> {
    let all: Vec<&Value> = items.collect();
    let mut out = Vec::new();
    if all.len() <= 1 {
        return out;
    }
    // Scalars compare as Go map keys (int64 and float64 differ); compounds by their JSON.
    let key = |v: &Value| match v {
        Value::Object(_) | Value::Array(_) => Some(gofmt::json(v)),
        _ => None,
    };
    for i in 0..all.len() {
        let earlier = (0..i).filter(|&j| same(all[i], all[j], &key)).count();
        if earlier == 1 {
            out.push(i);
        }
    }
    out
}

fn same(a: &Value, b: &Value, key: &impl Fn(&Value) -> Option<String>) -> bool {
    match (key(a), key(b)) {
        (Some(x), Some(y)) => x == y,
        (None, None) => json_equal(a, b),
        _ => false,
    }
}

fn validate_map<'a>(a: &'a [Value], s: &Node, path: &mut Path<'a>, errs: &mut Vec<FieldError>) {
    for (i, x) in a.iter().enumerate() {
        if !x.is_null() && !x.is_object() {
            path.push(Seg::Index(i));
            errs.push(FieldError::invalid(
                path.field(""),
                x.clone(),
                "must be an object for an array of list-type map",
            ));
            path.pop();
            return;
        }
    }
    if a.len() <= 1 {
        return;
    }
    // The key of each item: the map of its key fields that are set (missing keys omitted).
    let keys: Vec<Value> = a
        .iter()
        .map(|x| {
            let mut key = Map::new();
            if let Value::Object(m) = x {
                for k in &s.list_map_keys {
                    if let Some(v) = m.get(k) {
                        key.insert(k.clone(), v.clone());
                    }
                }
            }
            Value::Object(key)
        })
        .collect();
    let duplicates = if s.list_map_keys.len() == 1 {
        // Single keys compare as scalars (upstream compares the key values themselves).
        let k = &s.list_map_keys[0];
        let vals: Vec<Value> = keys
            .iter()
            .map(|m| match m.get(k) {
                Some(v) => Value::Array(vec![v.clone()]),
                None => Value::Null,
            })
            .collect();
        non_unique(vals.iter())
    } else {
        non_unique(keys.iter())
    };
    for i in duplicates {
        errs.push(duplicate_at(path, i, &keys[i]));
    }
}
