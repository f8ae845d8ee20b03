//! Compiling one `x-kubernetes-validations` entry: its rule, messageExpression, reason and
//! fieldPath, with the errors upstream's CRD validation reports for each.

use cel_rust::common::ast::IdedExpr;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::ValidationRule;
use serde_json::Value;

use crate::check::{Checker, Shape};
use crate::cost::{STATIC_ESTIMATED_COST_LIMIT, cost_error_message};
use crate::instrument::instrument;
use crate::rules::{CompileError, Reason};
use crate::schema::Node;
use crate::{env, fieldpath};

/// A rule ready to evaluate.
#[derive(Debug)]
pub(crate) struct CompiledRule {
    /// The rule, instrumented for runtime cost.
    pub expr: IdedExpr,
    /// The rule's source, trimmed.
    pub rule: String,
    /// The static message, trimmed; `None` when unset or blank.
    pub message: Option<String>,
    /// The messageExpression, instrumented, and its source.
    pub message_expression: Option<(IdedExpr, String)>,
    pub reason: Reason,
    /// The normalized `fieldPath`, relative to the rule's node.
    pub field_path: Option<String>,
    pub uses_old_self: bool,
    pub optional_old_self: bool,
}

impl CompiledRule {
    /// Upstream's `ruleErrorString`: the message if set, else the rule.
    pub fn error_string(&self) -> &str {
        self.message.as_deref().unwrap_or(&self.rule)
    }

    /// Upstream's `ruleMessageOrDefault`.
    pub fn message_or_default(&self) -> String {
        match &self.message {
            Some(m) => m.clone(),
            None => format!("failed rule: {}", self.rule),
        }
    }
}

/// Compiles `rule`, a rule on `node` at field path `path` (`...x-kubernetes-validations[i]`);
/// returns it with its estimated cost (rule plus messageExpression).
pub(crate) fn compile_rule(
    rule: &ValidationRule,
    node: &Node,
    path: &str,
) -> Result<(CompiledRule, f64), Vec<CompileError>> {
    let mut errors = Vec::new();
    let err = |field: &str, reason: Reason, value: Option<Value>, message: String| CompileError {
        field: format!("{path}.{field}"),
        reason,
        value,
        message,
    };
    let rule_value = serde_json::to_value(rule).ok();

    let reason = match rule.reason.as_deref() {
        None => Reason::FieldValueInvalid,
        Some(r) => Reason::from_rule(r).unwrap_or_else(|| {
            errors.push(err(
                "reason",
                Reason::FieldValueNotSupported,
                Some(Value::String(r.to_owned())),
                r#"supported values: "FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired""#.to_owned(),
            ));
            Reason::FieldValueInvalid
        }),
    };

    let field_path = match rule.field_path.as_deref() {
        None | Some("") => None,
        Some(fp) if fp.contains(['\n', '\r']) => {
            errors.push(err(
                "fieldPath",
                Reason::FieldValueInvalid,
                Some(Value::String(fp.into())),
                "fieldPath must not contain line breaks".into(),
            ));
            None
        }
        Some(fp) => match fieldpath::normalize(fp, node) {
            Ok(p) => Some(p),
            Err(e) => {
                errors.push(err(
                    "fieldPath",
                    Reason::FieldValueInvalid,
                    Some(Value::String(fp.into())),
                    format!("fieldPath must be a valid path: {e}"),
                ));
                None
            }
        },
    };

    let message = rule
        .message
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty());
    if let Some(m) = &rule.message {
        if m.trim().is_empty() {
            errors.push(err(
                "message",
                Reason::FieldValueInvalid,
                Some(Value::String(m.clone())),
                "message must be non-empty if specified".into(),
            ));
        } else if m.contains(['\n', '\r']) {
            errors.push(err(
                "message",
                Reason::FieldValueInvalid,
                Some(Value::String(m.clone())),
                "message must not contain line breaks".into(),
            ));
        }
    }

    let source = rule.rule.trim();
    if source.is_empty() {
        errors.push(err(
            "rule",
            Reason::FieldValueRequired,
            None,
            "rule is not specified".into(),
        ));
        return Err(errors);
    }
    let mut total_cost = 0.0;
    let program = match env::parse(source) {
        Ok(p) => p,
        Err(e) => {
            errors.push(err(
                "rule",
                Reason::FieldValueInvalid,
                rule_value,
                format!("compilation failed: {e}"),
            ));
            return Err(errors);
        }
    };
    let (check_errors, cost, uses_old_self) = check_expression(&program, node);
    if !check_errors.is_empty() {
        errors.push(err(
            "rule",
            Reason::FieldValueInvalid,
            rule_value.clone(),
            format!("compilation failed: {}", check_errors.join("\n")),
        ));
    } else if cost > STATIC_ESTIMATED_COST_LIMIT as f64 {
        errors.push(err(
            "rule",
            Reason::FieldValueForbidden,
            None,
            cost_error_message(
                "estimated rule cost",
                cost as u64,
                STATIC_ESTIMATED_COST_LIMIT,
            ),
        ));
    }
    total_cost += cost;

    let optional_old_self = rule.optional_old_self == Some(true);
    if rule.optional_old_self.is_some() && !uses_old_self {
        errors.push(err(
            "optionalOldSelf",
            Reason::FieldValueInvalid,
            rule.optional_old_self.map(Value::Bool),
            "may not be set if oldSelf is not used in rule".into(),
        ));
    }

    let mut message_expression = None;
    if let Some(expr) = rule.message_expression.as_deref() {
        let mut fail = |msg: String| {
            errors.push(err(
                "messageExpression",
                Reason::FieldValueInvalid,
                rule_value.clone(),
                msg,
            ))
        };
        if expr.trim().is_empty() {
            fail("must be non-empty if specified".into());
        } else {
            match env::parse(expr) {
                Err(e) => fail(format!("messageExpression compilation failed: {e}")),
                Ok(p) => {
                    let (check_errors, cost, _) = check_expression(&p, node);
                    if !check_errors.is_empty() {
                        fail(format!(
                            "messageExpression compilation failed: {}",
                            check_errors.join("\n")
                        ));
                    } else if cost > STATIC_ESTIMATED_COST_LIMIT as f64 {
                        errors.push(err(
                            "messageExpression",
                            Reason::FieldValueForbidden,
                            None,
                            cost_error_message(
                                "estimated messageExpression cost",
                                cost as u64,
                                STATIC_ESTIMATED_COST_LIMIT,
                            ),
                        ));
                    }
                    total_cost += cost;
                    message_expression = Some((instrument(p.expression()), expr.to_owned()));
                }
            }
        }
    }

    if !errors.is_empty() {
        return Err(errors);
    }
    Ok((
        CompiledRule {
            expr: instrument(program.expression()),
            rule: source.to_owned(),
            message: message.map(str::to_owned),
            message_expression,
            reason,
            field_path,
            uses_old_self,
            optional_old_self,
        },
        total_cost,
    ))
}

/// Checks a parsed expression for a rule on `node`: its errors, estimated cost, and
/// whether it reads `oldSelf`.
fn check_expression(program: &cel_rust::Program, node: &Node) -> (Vec<String>, f64, bool) {
    let roots = [("self", Shape::Node(node)), ("oldSelf", Shape::Node(node))];
    let mut checker = Checker::new(&roots);
    let cost = checker.cost(program.expression());
    let errors = checker
        .errors
        .iter()
        .map(|e| {
            format!(
                "ERROR: <input>:{}: {}",
                crate::env::position(program, e.id),
                e.message
            )
        })
        .collect();
    (errors, cost, checker.used.iter().any(|u| u == "oldSelf"))
}
