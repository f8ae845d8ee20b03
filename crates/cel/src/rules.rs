//! CRD validation rules (`x-kubernetes-validations`), as upstream's
//! `apiextensions-apiserver/pkg/apiserver/schema/cel/validation.go` evaluates them:
//! compiled once per CRD version, evaluated on every write.

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool, ValidationRule,
};
use serde_json::Value;

use crate::check;
use crate::compile::{CompiledRule, compile_rule};
use crate::eval::{Outcome, evaluate_node};
use crate::fieldpath;
use crate::schema::{ListType, Node};

/// The type of a field error, as upstream's `field.ErrorType` (and a rule's `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reason {
    #[default]
    FieldValueInvalid,
    FieldValueForbidden,
    FieldValueRequired,
    FieldValueDuplicate,
    FieldValueNotSupported,
}

impl Reason {
    /// The rule `reason` value, if it is one upstream supports.
    pub(crate) fn from_rule(reason: &str) -> Option<Reason> {
        match reason {
            "FieldValueInvalid" => Some(Reason::FieldValueInvalid),
            "FieldValueForbidden" => Some(Reason::FieldValueForbidden),
            "FieldValueRequired" => Some(Reason::FieldValueRequired),
            "FieldValueDuplicate" => Some(Reason::FieldValueDuplicate),
            _ => None,
        }
    }
}

/// A failed rule, as upstream's `field.Error`: `Invalid value: "object": <message>` is
/// `reason` FieldValueInvalid, `value` `"object"` (the schema's type), `message`.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// The field path (`spec.replicas`, `spec.ports[0]`); `<nil>` for the object's root,
    /// as upstream prints a rule failing there.
    pub field: String,
    pub reason: Reason,
    pub message: String,
    /// The bad value upstream reports: the schema node's type (`"object"`), for Invalid and
    /// Duplicate.
    pub value: Option<Value>,
}

/// A rule that doesn't compile, or is too expensive, as upstream's CRD validation reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct CompileError {
    /// `<path>.properties[spec].x-kubernetes-validations[0].rule`.
    pub field: String,
    pub reason: Reason,
    /// The bad value, for Invalid and NotSupported errors.
    pub value: Option<Value>,
    pub message: String,
}

/// The compiled rules of a schema node and the nodes below it that have any.
#[derive(Debug, Default)]
pub(crate) struct Validator {
    pub rules: Vec<CompiledRule>,
    pub props: BTreeMap<String, Validator>,
    pub items: Option<Box<Validator>>,
    pub additional: Option<Box<Validator>>,
}

impl Validator {
    fn is_empty(&self) -> bool {
        self.rules.is_empty()
            && self.props.is_empty()
            && self.items.is_none()
            && self.additional.is_none()
    }
}

/// A CRD version's validation rules, compiled.
#[derive(Debug)]
pub struct Rules {
    node: Node,
    validator: Validator,
}

/// Compile-time state of the walk over the schema.
struct Walk {
    errors: Vec<CompileError>,
    /// Estimated cost of every rule times the times it may run.
    total_cost: f64,
}

impl Rules {
    /// Compiles the rules of `schema` (a CRD version's `openAPIV3Schema`, whose field path
    /// is `path`, e.g. `spec.validation.openAPIV3Schema`).
    pub fn new(schema: &JSONSchemaProps, path: &str) -> Result<Rules, Vec<CompileError>> {
        let node = Node::new(schema, true);
        let mut walk = Walk {
            errors: Vec::new(),
            total_cost: 0.0,
        };
        let validator = build(schema, &node, path, None, 1.0, &mut walk);
        let limit = crate::cost::STATIC_ESTIMATED_CRD_COST_LIMIT;
        if walk.total_cost > limit as f64 {
            walk.errors.push(CompileError {
                field: path.to_owned(),
                reason: Reason::FieldValueForbidden,
                value: None,
                message: crate::cost::cost_error_message(
                    "x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema",
                    walk.total_cost as u64,
                    limit,
                ),
            });
        }
        if walk.errors.is_empty() {
            Ok(Rules { node, validator })
        } else {
            Err(walk.errors)
        }
    }

    /// Whether there are no rules at all (validation is then a no-op).
    pub fn is_empty(&self) -> bool {
        self.validator.is_empty()
    }

    /// Validates `obj` (`old`: the stored object, on update) against every rule, within
    /// upstream's runtime cost budget.
    pub fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<Violation> {
        let mut out = Vec::new();
        if self.is_empty() {
            return out;
        }
        let mut budget = crate::cost::RUNTIME_BUDGET as i64;
        let unchanged = old.is_some_and(|o| o == obj);
        walk_value(
            &self.validator,
            &self.node,
            obj,
            old,
            "",
            unchanged,
            &mut budget,
            &mut out,
        );
        for v in &mut out {
            if v.field.is_empty() {
                v.field = "<nil>".into();
            }
        }
        out
    }
}

/// Builds the validator of `schema` (typed as `node`); `uncorrelatable` is the path of the
/// first enclosing list whose items can't be matched with the old object's.
fn build(
    schema: &JSONSchemaProps,
    node: &Node,
    path: &str,
    uncorrelatable: Option<&str>,
    cardinality: f64,
    walk: &mut Walk,
) -> Validator {
    let mut v = Validator::default();
    let mut sources: Vec<(String, &ValidationRule)> = Vec::new();
    for (i, rule) in schema.x_kubernetes_validations.iter().flatten().enumerate() {
        sources.push((format!("{path}.x-kubernetes-validations[{i}]"), rule));
    }
    for (j, all_of) in schema.all_of.iter().flatten().enumerate() {
        for (i, rule) in all_of.x_kubernetes_validations.iter().flatten().enumerate() {
            sources.push((
                format!("{path}.allOf[{j}].x-kubernetes-validations[{i}]"),
                rule,
            ));
        }
    }
    for (rule_path, rule) in sources {
        match compile_rule(rule, node, &rule_path) {
            Ok((compiled, cost)) => {
                if compiled.uses_old_self
                    && let Some(within) = uncorrelatable
                {
                    walk.errors.push(CompileError {
                        field: format!("{rule_path}.rule"),
                        reason: Reason::FieldValueInvalid,
                        value: Some(Value::String(rule.rule.clone())),
                        message: format!(
                            "oldSelf cannot be used on the uncorrelatable portion of the schema within {within}"
                        ),
                    });
                }
                walk.total_cost += cost * cardinality;
                v.rules.push(compiled);
            }
            Err(mut errs) => walk.errors.append(&mut errs),
        }
    }
    for (name, prop) in schema.properties.iter().flatten() {
        let Some(child) = node.props.get(name) else {
            continue;
        };
        let card = check::child_cardinality(node, cardinality, false);
        let sub = build(
            prop,
            child,
            &format!("{path}.properties[{name}]"),
            uncorrelatable,
            card,
            walk,
        );
        if !sub.is_empty() {
            v.props.insert(name.clone(), sub);
        }
    }
    if let (Some(JSONSchemaPropsOrArray::Schema(items)), Some(child)) =
        (&schema.items, node.items.as_deref())
    {
        let items_path = format!("{path}.items");
        let within = match (&node.list_type, uncorrelatable) {
            (_, Some(p)) => Some(p.to_owned()),
            (ListType::Map(_), None) => None,
            (_, None) => Some(items_path.clone()),
        };
        let card = check::child_cardinality(node, cardinality, true);
        let sub = build(items, child, &items_path, within.as_deref(), card, walk);
        if !sub.is_empty() {
            v.items = Some(Box::new(sub));
        }
    }
    if let (Some(JSONSchemaPropsOrBool::Schema(add)), Some(child)) =
        (&schema.additional_properties, node.additional.as_deref())
    {
        let card = check::child_cardinality(node, cardinality, true);
        let sub = build(
            add,
            child,
            &format!("{path}.additionalProperties"),
            uncorrelatable,
            card,
            walk,
        );
        if !sub.is_empty() {
            v.additional = Some(Box::new(sub));
        }
    }
    v
}

/// The element of the old list a map-type list's element correlates with.
fn old_item<'a>(node: &Node, item: &Value, old: Option<&'a Value>) -> Option<&'a Value> {
    let ListType::Map(keys) = &node.list_type else {
        return None;
    };
    let old = old?.as_array()?;
    old.iter()
        .find(|o| keys.iter().all(|k| o.get(k) == item.get(k)))
}

/// Validates `obj` at `path` and below; stops once the budget is spent. `unchanged`
/// says whether the nearest correlatable node equals its old value (upstream ratchets
/// errors of rules not using oldSelf there: an unchanged invalid value stays allowed).
#[allow(clippy::too_many_arguments)]
fn walk_value(
    v: &Validator,
    node: &Node,
    obj: &Value,
    old: Option<&Value>,
    path: &str,
    unchanged: bool,
    budget: &mut i64,
    out: &mut Vec<Violation>,
) {
    if obj.is_null() {
        return;
    }
    if !v.rules.is_empty()
        && evaluate_node(&v.rules, node, obj, old, path, unchanged, budget, out) == Outcome::Stop
    {
        return;
    }
    match obj {
        Value::Array(items) => {
            let (Some(sub), Some(child)) = (v.items.as_deref(), node.items.as_deref()) else {
                return;
            };
            for (i, item) in items.iter().enumerate() {
                let old_item = old_item(node, item, old);
                let same = old_item.map_or(unchanged, |o| o == item);
                walk_value(
                    sub,
                    child,
                    item,
                    old_item,
                    &fieldpath::key(path, &i.to_string()),
                    same,
                    budget,
                    out,
                );
                if *budget < 0 {
                    return;
                }
            }
        }
        Value::Object(map) => {
            let old_map = if node.map_atomic {
                None
            } else {
                old.and_then(Value::as_object)
            };
            for (k, val) in map {
                let (sub, child, p) = match (v.props.get(k), node.props.get(k)) {
                    (Some(sub), Some(child)) => (sub, child, fieldpath::child(path, k)),
                    _ => match (v.additional.as_deref(), node.additional.as_deref()) {
                        (Some(sub), Some(child)) if !node.has_fields() => {
                            (sub, child, fieldpath::key(path, k))
                        }
                        _ => continue,
                    },
                };
                let old_val = old_map.and_then(|m| m.get(k));
                let same = old_val.map_or(unchanged, |o| o == val);
                walk_value(sub, child, val, old_val, &p, same, budget, out);
                if *budget < 0 {
                    return;
                }
            }
        }
        _ => {}
    }
}
