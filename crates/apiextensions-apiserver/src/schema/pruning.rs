//! Pruning of unknown fields (upstream's `pruning/algorithm.go`), optionally together with
//! upstream's `PruneNonNullableNullsWithoutDefaults` (done in the same walk, as the decoder
//! runs both back to back).

use std::fmt::Write;

use serde_json::{Map, Value};

use super::node::{Additional, Node};

const META_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

fn is_meta(k: &str) -> bool {
    META_FIELDS.contains(&k)
}

/// What pruning descends into for a field: its property schema, or additionalProperties
/// (whose schema may be absent: `additionalProperties: true/false` prunes everything below).
enum Sub<'a> {
    Schema(&'a Node),
    Nothing,
    Unknown,
}

fn sub_for<'a>(s: &'a Node, k: &str) -> Sub<'a> {
    if let Some(p) = s.properties.get(k) {
        return Sub::Schema(p);
    }
    match &s.additional {
        Some(Additional::Schema(a)) => Sub::Schema(a),
        Some(Additional::Bool(_)) => Sub::Nothing,
        None => Sub::Unknown,
    }
}

struct Pruner<'u> {
    /// Unknown fields' paths, when wanted.
    unknown: Option<&'u mut Vec<String>>,
    /// Also drop nulls of fields that are neither nullable nor defaulted.
    drop_nulls: bool,
    /// The path of the value being visited (upstream's `ParentPath`), reused.
    path: String,
}

/// Prunes `x` against `s`; `root` treats `s` as an embedded resource (apiVersion, kind and
/// metadata kept). Unknown fields' paths are appended to `unknown` (sorted) when given.
pub(crate) fn prune(
    x: &mut Value,
    s: &Node,
    root: bool,
    drop_nulls: bool,
    unknown: Option<&mut Vec<String>>,
) {
    let mut p = Pruner {
        unknown,
        drop_nulls,
        path: String::new(),
    };
    p.value(x, Some(s), root || s.embedded);
    if let Some(u) = p.unknown {
        u.sort();
    }
}

impl Pruner<'_> {
    fn record(&mut self, k: &str) {
        if let Some(u) = &mut self.unknown {
            let mut f = String::with_capacity(self.path.len() + k.len() + 1);
            f.push_str(&self.path);
            if !f.is_empty() {
                f.push('.');
            }
            f.push_str(k);
            u.push(f);
        }
    }

    /// Visits `v` at key `k` (upstream's `AppendKey`), restoring the path afterwards.
    fn key(&mut self, k: &str, v: &mut Value, s: Option<&Node>, preserve_walk: bool) {
        let len = self.path.len();
        if self.unknown.is_some() {
            if len > 0 {
                self.path.push('.');
            }
            self.path.push_str(k);
        }
        let embedded = s.is_some_and(|n| n.embedded);
        match s {
            Some(n) if preserve_walk => self.skip(v, n, embedded),
            _ => self.value(v, s, embedded),
        }
        self.path.truncate(len);
    }

    fn index(&mut self, i: usize, v: &mut Value, s: Option<&Node>, preserve_walk: bool) {
        let len = self.path.len();
        if self.unknown.is_some() {
            let _ = write!(self.path, "[{i}]");
        }
        let embedded = s.is_some_and(|n| n.embedded);
        match s {
            Some(n) if preserve_walk => self.skip(v, n, embedded),
            _ => self.value(v, s, embedded),
        }
        self.path.truncate(len);
    }

    /// Whether a null at field `k` of `s` goes (upstream's `isNonNullableNonDefaultableNull`).
    fn null_goes(&self, s: &Node, k: &str, v: &Value) -> bool {
        self.drop_nulls
            && v.is_null()
            && s.field(k)
                .is_some_and(|n| !n.nullable && n.default.is_none())
    }

    fn value(&mut self, x: &mut Value, s: Option<&Node>, embedded: bool) {
        if let Some(s) = s
            && s.preserve_unknown
        {
            self.skip(x, s, embedded);
            return;
        }
        match x {
            Value::Object(m) => {
                let Some(s) = s else {
                    for k in m.keys() {
                        self.record(k);
                    }
                    m.clear();
                    return;
                };
                let at_root = self.path.is_empty();
                let mut drop = false;
                for (k, v) in m.iter_mut() {
                    if embedded && is_meta(k) {
                        drop |= self.null_goes(s, k, v);
                        continue;
                    }
                    match sub_for(s, k) {
                        Sub::Unknown => {
                            if !is_meta(k) || !at_root {
                                self.record(k);
                            }
                            drop = true;
                        }
                        Sub::Schema(_) if self.null_goes(s, k, v) => drop = true,
                        Sub::Schema(n) => self.key(k, v, Some(n), false),
                        Sub::Nothing => self.key(k, v, None, false),
                    }
                }
                if drop {
                    self.retain(m, s, embedded, false);
                }
            }
            Value::Array(a) => {
                let items = s.and_then(|s| s.items.as_deref());
                for (i, v) in a.iter_mut().enumerate() {
                    self.index(i, v, items, false);
                }
            }
            _ => {}
        }
    }

    /// Removes the fields `value`/`skip` decided to drop (only called when there are some).
    fn retain(&self, m: &mut Map<String, Value>, s: &Node, embedded: bool, preserve: bool) {
        m.retain(|k, v| {
            if self.null_goes(s, k, v) {
                return false;
            }
            embedded && is_meta(k) || preserve || !matches!(sub_for(s, k), Sub::Unknown)
        });
    }

    /// Upstream's `skipPrune`: under x-kubernetes-preserve-unknown-fields, unknown fields stay
    /// but declared ones are still pruned inside.
    fn skip(&mut self, x: &mut Value, s: &Node, embedded: bool) {
        match x {
            Value::Object(m) => {
                let mut drop = false;
                for (k, v) in m.iter_mut() {
                    if embedded && is_meta(k) {
                        drop |= self.null_goes(s, k, v);
                        continue;
                    }
                    if self.null_goes(s, k, v) {
                        drop = true;
                        continue;
                    }
                    match sub_for(s, k) {
                        Sub::Schema(n) => self.key(k, v, Some(n), false),
                        Sub::Nothing => self.key(k, v, None, false),
                        Sub::Unknown => {}
                    }
                }
                if drop {
                    self.retain(m, s, embedded, true);
                }
            }
            Value::Array(a) => {
                if let Some(items) = s.items.as_deref() {
                    for (i, v) in a.iter_mut().enumerate() {
                        self.index(i, v, Some(items), true);
                    }
                }
            }
            _ => {}
        }
    }
}
