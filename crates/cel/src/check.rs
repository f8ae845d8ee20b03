//! What compiling checks beyond the parser (the cel crate has no type checker): undeclared
//! variables, fields a schema doesn't declare, and the static cost estimate, upstream's
//! guard against rules too expensive to ever run. The estimate follows upstream's model
//! loosely: one unit per variable, field or call, string functions a tenth of a unit per
//! byte of their receiver's maximum length, `==` a tenth per byte of the smaller operand's
//! maximum size, and a comprehension its body's cost times its range's maximum size, sizes
//! coming from `maxItems`/`maxProperties`/`maxLength` or, where unbounded, from the 3 MiB
//! request limit as upstream derives them.

use cel_rust::common::ast::{CallExpr, EntryExpr, Expr, IdedExpr, LiteralValue};

use crate::schema::{Format, Node, Type};

/// Upstream's maximum request size, which bounds unbounded lists, maps and strings.
const MAX_REQUEST_BYTES: f64 = 3.0 * 1024.0 * 1024.0;

/// Names an expression may use without declaring them: type names.
const TYPE_NAMES: [&str; 12] = [
    "bool",
    "bytes",
    "double",
    "duration",
    "dyn",
    "int",
    "list",
    "map",
    "null_type",
    "string",
    "timestamp",
    "uint",
];

/// What is statically known about an expression's value.
#[derive(Clone, Debug)]
pub(crate) enum Shape<'n> {
    /// A value typed by a schema node.
    Node(&'n Node),
    List {
        size: f64,
        elem: Box<Shape<'n>>,
    },
    Str(f64),
    Other,
}

/// An error at an expression, in the parser's format.
#[derive(Debug)]
pub(crate) struct CheckError {
    pub id: u64,
    pub message: String,
}

pub(crate) struct Checker<'n, 'r> {
    roots: &'r [(&'r str, Shape<'n>)],
    /// Comprehension variables in scope, innermost last.
    bound: Vec<(String, Shape<'n>)>,
    pub errors: Vec<CheckError>,
    /// Variables the expression reads.
    pub used: Vec<String>,
}

impl<'n, 'r> Checker<'n, 'r> {
    pub fn new(roots: &'r [(&'r str, Shape<'n>)]) -> Self {
        Checker {
            roots,
            bound: Vec::new(),
            errors: Vec::new(),
            used: Vec::new(),
        }
    }

    /// The estimated cost of `expr`, recording errors as it goes.
    pub fn cost(&mut self, expr: &IdedExpr) -> f64 {
        self.visit(expr).0.min(1e18)
    }

    fn visit(&mut self, e: &IdedExpr) -> (f64, Shape<'n>) {
        match &e.expr {
            Expr::Unspecified => (0.0, Shape::Other),
            Expr::Literal(LiteralValue::String(s)) => (0.0, Shape::Str(s.inner().len() as f64)),
            Expr::Literal(_) => (0.0, Shape::Other),
            Expr::Ident(name) => (1.0, self.ident(e.id, name)),
            Expr::Select(sel) => {
                let (cost, operand) = self.visit(&sel.operand);
                let shape = if sel.test {
                    Shape::Other
                } else {
                    self.field(e.id, &operand, &sel.field)
                };
                if sel.test {
                    // has() on a declared field is still checked.
                    self.field(e.id, &operand, &sel.field);
                }
                (cost + 1.0, shape)
            }
            Expr::List(list) => {
                let mut cost = 1.0;
                let mut elem = Shape::Other;
                for (i, item) in list.elements.iter().enumerate() {
                    let (c, s) = self.visit(item);
                    cost += c;
                    if i == 0 {
                        elem = s;
                    }
                }
                (
                    cost,
                    Shape::List {
                        size: list.elements.len() as f64,
                        elem: Box::new(elem),
                    },
                )
            }
            Expr::Map(map) => (1.0 + self.entries(&map.entries), Shape::Other),
            Expr::Struct(st) => (1.0 + self.entries(&st.entries), Shape::Other),
            Expr::Call(call) => self.call(call),
            Expr::Comprehension(c) => {
                let (range_cost, range) = self.visit(&c.iter_range);
                let (init_cost, init) = self.visit(&c.accu_init);
                let (n, elem) = range_elems(&range);
                self.bound.push((c.iter_var.clone(), elem));
                if let Some(v2) = &c.iter_var2 {
                    self.bound.push((v2.clone(), Shape::Other));
                }
                // map()/filter() accumulate a list as long as the range.
                let accu = match init {
                    Shape::List { .. } => Shape::List {
                        size: n,
                        elem: Box::new(Shape::Other),
                    },
                    other => other,
                };
                self.bound.push((c.accu_var.clone(), accu.clone()));
                let (cond, _) = self.visit(&c.loop_cond);
                let (step, _) = self.visit(&c.loop_step);
                self.bound.pop();
                if c.iter_var2.is_some() {
                    self.bound.pop();
                }
                self.bound.pop();
                self.bound.push((c.accu_var.clone(), accu));
                let (result_cost, result) = self.visit(&c.result);
                self.bound.pop();
                (
                    range_cost + init_cost + n * (cond + step + 1.0) + result_cost,
                    result,
                )
            }
        }
    }

    fn entries(&mut self, entries: &[cel_rust::common::ast::IdedEntryExpr]) -> f64 {
        let mut cost = 0.0;
        for entry in entries {
            match &entry.expr {
                EntryExpr::StructField(f) => cost += self.visit(&f.value).0,
                EntryExpr::MapEntry(m) => cost += self.visit(&m.key).0 + self.visit(&m.value).0,
            }
        }
        cost
    }

    fn ident(&mut self, id: u64, name: &str) -> Shape<'n> {
        if let Some((_, s)) = self.bound.iter().rev().find(|(n, _)| n == name) {
            return s.clone();
        }
        if let Some((_, s)) = self.roots.iter().find(|(n, _)| *n == name) {
            if !self.used.iter().any(|u| u == name) {
                self.used.push(name.to_owned());
            }
            return s.clone();
        }
        if !TYPE_NAMES.contains(&name) {
            self.errors.push(CheckError {
                id,
                message: format!("undeclared reference to '{name}' (in container '')"),
            });
        }
        Shape::Other
    }

    /// The shape of field `name` of `operand`. Upstream types only what the schema
    /// declares: `x-kubernetes-preserve-unknown-fields` data and properties without a type
    /// are not fields, so reading them is a compile error.
    fn field(&mut self, id: u64, operand: &Shape<'n>, name: &str) -> Shape<'n> {
        let Shape::Node(node) = operand else {
            return Shape::Other;
        };
        if node.ty != Type::Object {
            return Shape::Other;
        }
        let found = if node.has_fields() {
            node.field(name).map(|(_, child)| child)
        } else {
            node.additional.as_deref()
        };
        match found {
            Some(child) if child.ty != Type::Any => Shape::Node(child),
            _ => {
                self.errors.push(CheckError {
                    id,
                    message: format!("undefined field '{name}'"),
                });
                Shape::Other
            }
        }
    }

    fn call(&mut self, call: &CallExpr) -> (f64, Shape<'n>) {
        let mut cost = 1.0;
        // `optional.none()` and the like: a namespace, not a variable.
        let target = match call.target.as_deref() {
            Some(IdedExpr {
                expr: Expr::Ident(ns),
                ..
            }) if !self.roots.iter().any(|(n, _)| n == ns)
                && !self.bound.iter().any(|(n, _)| n == ns) =>
            {
                None
            }
            Some(t) => {
                let (c, s) = self.visit(t);
                cost += c;
                Some(s)
            }
            None => None,
        };
        let mut args = Vec::with_capacity(call.args.len());
        for a in &call.args {
            let (c, s) = self.visit(a);
            cost += c;
            args.push(s);
        }
        let first = target.as_ref().or(args.first());
        let len = first.map_or(1.0, max_len);
        let (extra, shape) = match call.func_name.as_str() {
            "_==_" | "_!=_" => {
                let a = args.first().map_or(1.0, bytes);
                let b = args.get(1).map_or(1.0, bytes);
                (0.1 * a.min(b), Shape::Other)
            }
            "@in" => (args.get(1).map_or(1.0, |s| range_elems(s).0), Shape::Other),
            "_+_" => match (args.first(), args.get(1)) {
                (Some(a), Some(b)) if is_list(a) || is_list(b) => {
                    let (na, ea) = range_elems(a);
                    let (nb, _) = range_elems(b);
                    (
                        na + nb,
                        Shape::List {
                            size: na + nb,
                            elem: Box::new(ea),
                        },
                    )
                }
                (Some(a), Some(b)) => {
                    let (la, lb) = (max_len(a), max_len(b));
                    (0.1 * (la + lb), Shape::Str(la + lb))
                }
                _ => (0.0, Shape::Other),
            },
            "_[_]" => (0.0, args.first().map_or(Shape::Other, index)),
            "split" | "findAll" => (
                0.1 * len,
                Shape::List {
                    size: len,
                    elem: Box::new(Shape::Str(len)),
                },
            ),
            "lowerAscii" | "upperAscii" | "trim" | "replace" | "substring" | "charAt" | "find"
            | "format" | "reverse" | "string" => (0.1 * len, Shape::Str(len)),
            "contains" | "startsWith" | "endsWith" | "matches" | "indexOf" | "lastIndexOf"
            | "url" | "isURL" | "quantity" | "isQuantity" | "join" | "size" => {
                let n = first.map_or(1.0, |s| {
                    if is_list(s) {
                        range_elems(s).0
                    } else {
                        0.1 * max_len(s)
                    }
                });
                (if call.func_name == "size" { 0.0 } else { n }, Shape::Other)
            }
            "isSorted" | "sum" | "min" | "max" | "distinct" | "sort" | "flatten" => {
                let (n, elem) = first.map_or((1.0, Shape::Other), range_elems);
                (
                    n,
                    if call.func_name.starts_with('m') {
                        elem
                    } else {
                        Shape::Other
                    },
                )
            }
            _ => (0.0, Shape::Other),
        };
        (cost + extra, shape)
    }
}

fn is_list(s: &Shape<'_>) -> bool {
    matches!(s, Shape::List { .. }) || matches!(s, Shape::Node(n) if n.ty == Type::Array)
}

/// The element shape of `s[i]`.
fn index<'n>(s: &Shape<'n>) -> Shape<'n> {
    match s {
        Shape::List { elem, .. } => (**elem).clone(),
        Shape::Node(n) if n.ty == Type::Array => {
            n.items.as_deref().map_or(Shape::Other, Shape::Node)
        }
        Shape::Node(n) if n.ty == Type::Object && !n.has_fields() => {
            n.additional.as_deref().map_or(Shape::Other, Shape::Node)
        }
        _ => Shape::Other,
    }
}

/// The most elements a comprehension over `s` visits, and their shape.
fn range_elems<'n>(s: &Shape<'n>) -> (f64, Shape<'n>) {
    match s {
        Shape::List { size, elem } => (*size, (**elem).clone()),
        Shape::Node(n) if n.ty == Type::Array => {
            let items = n.items.as_deref();
            let max = match n.max_items {
                Some(m) => m as f64,
                None => ((MAX_REQUEST_BYTES - 2.0) / (items.map_or(1.0, min_size) + 1.0)).floor(),
            };
            (max, items.map_or(Shape::Other, Shape::Node))
        }
        Shape::Node(n) if n.ty == Type::Object || n.ty == Type::Any => {
            let max = match n.max_properties {
                Some(m) => m as f64,
                None if n.has_fields() => n.props.len() as f64,
                // A key (at least `""`), a colon, a value and a comma.
                None => ((MAX_REQUEST_BYTES - 2.0)
                    / (n.additional.as_deref().map_or(1.0, min_size) + 4.0))
                    .floor(),
            };
            (max, Shape::Str(max_len(&Shape::Other)))
        }
        _ => (1.0, Shape::Other),
    }
}

/// The smallest a value of `n` serializes to.
fn min_size(n: &Node) -> f64 {
    match n.ty {
        Type::String => 2.0,
        Type::Boolean => 4.0,
        Type::Object | Type::Array => 2.0,
        _ => 1.0,
    }
}

/// The longest a string value may be.
fn max_len(s: &Shape<'_>) -> f64 {
    match s {
        Shape::Str(l) => *l,
        Shape::Node(n) if n.ty == Type::String => match (n.max_length, n.format) {
            (Some(m), _) => m as f64,
            (None, Format::DateTime | Format::Date | Format::Duration) => 64.0,
            (None, _) => MAX_REQUEST_BYTES - 2.0,
        },
        Shape::Node(_) | Shape::List { .. } => bytes(s),
        Shape::Other => 1.0,
    }
}

/// The most bytes a value may serialize to.
fn bytes(s: &Shape<'_>) -> f64 {
    let b = match s {
        Shape::Str(l) => *l,
        Shape::List { size, elem } => size * (bytes(elem) + 1.0),
        Shape::Node(n) => match n.ty {
            Type::String => max_len(s) + 2.0,
            Type::Integer | Type::Number | Type::IntOrString => 32.0,
            Type::Boolean => 5.0,
            Type::Array => {
                let (count, elem) = range_elems(s);
                count * (bytes(&elem) + 1.0)
            }
            Type::Object if n.has_fields() => n
                .props
                .iter()
                .map(|(k, v)| k.len() as f64 + 4.0 + bytes(&Shape::Node(v)))
                .sum(),
            Type::Object | Type::Any => MAX_REQUEST_BYTES,
        },
        Shape::Other => 1.0,
    };
    b.min(MAX_REQUEST_BYTES)
}

/// How many times a rule on a node under `parent` may run per object: the parent's own
/// multiplicity times its maximum number of children.
pub(crate) fn child_cardinality(parent: &Node, parent_card: f64, via_items: bool) -> f64 {
    let shape = Shape::Node(parent);
    let n = if via_items || !parent.has_fields() {
        range_elems(&shape).0
    } else {
        1.0
    };
    (parent_card * n).min(1e18)
}
