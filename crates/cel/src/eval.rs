//! Evaluating the rules of one schema node on one value, with upstream's messages and cost
//! accounting (`validateExpressions` in upstream's validation.go).

use cel_rust::common::types::{CelBool, CelOptional, CelString};
use cel_rust::{Context, ExecutionError};
use serde_json::Value;

use crate::compile::CompiledRule;
use crate::cost::{self, PER_CALL_LIMIT};
use crate::rules::{Reason, Violation};
use crate::schema::Node;
use crate::{env, fieldpath, instrument, value};

/// Upstream's `MaxEvaluatedMessageExpressionSizeBytes`.
const MAX_MESSAGE_BYTES: usize = 5 * 1024;

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Continue,
    /// The budget is spent: no further rules run.
    Stop,
}

const OUT_OF_BUDGET: &str =
    "validation failed due to running out of cost budget, no further validation rules will be run";

/// cel-go's wording of an evaluation error, which upstream's messages embed.
pub(crate) fn error_text(e: &ExecutionError) -> String {
    match e {
        ExecutionError::NoSuchKey(k) => format!("no such key: {k}"),
        ExecutionError::IndexOutOfBounds(i) => match i {
            cel_rust::Value::Int(i) => format!("index out of bounds: {i}"),
            cel_rust::Value::UInt(i) => format!("index out of bounds: {i}"),
            _ => "index out of bounds".into(),
        },
        ExecutionError::DivisionByZero(_) => "division by zero".into(),
        ExecutionError::RemainderByZero(_) => "modulus by zero".into(),
        ExecutionError::Overflow(..) => "integer overflow".into(),
        ExecutionError::FunctionError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// Runs `f` within the per-call limit and what is left of `budget`; `None` when either ran
/// out (`Err` carries which: true for the per-call limit).
fn run<T>(budget: &mut i64, f: impl FnOnce() -> T) -> Result<T, bool> {
    let limit = (*budget).clamp(0, PER_CALL_LIMIT as i64) as u64;
    let ((out, exhausted), used) = cost::metered(limit, || {
        let out = f();
        (out, cost::exhausted())
    });
    if exhausted {
        return Err(limit == PER_CALL_LIMIT);
    }
    *budget -= used as i64;
    Ok(out)
}

/// Evaluates `rules` on `obj` (typed by `node`, at field path `path`), appending violations.
#[allow(clippy::too_many_arguments)]
pub(crate) fn evaluate_node(
    rules: &[CompiledRule],
    node: &Node,
    obj: &Value,
    old: Option<&Value>,
    path: &str,
    unchanged: bool,
    budget: &mut i64,
    out: &mut Vec<Violation>,
) -> Outcome {
    let invalid = |field: &str, message: String| Violation {
        field: field.to_owned(),
        reason: Reason::FieldValueInvalid,
        message,
        value: Some(Value::String(node.type_name.clone())),
    };
    let eval_failed = |e: &ExecutionError, rule: &CompiledRule| {
        let message = format!("{} evaluating rule: {}", error_text(e), rule.error_string());
        invalid(path, message)
    };
    // A null old value is no old value.
    let old = old.filter(|o| !o.is_null());
    if *budget <= 0 {
        out.push(invalid(path, OUT_OF_BUDGET.into()));
        *budget = -1;
        return Outcome::Stop;
    }
    let env = match env::env() {
        Ok(env) => env,
        Err(e) => {
            out.push(invalid(
                path,
                format!("rule compiler initialization error: {e}"),
            ));
            return Outcome::Continue;
        }
    };
    let self_val = match value::to_val(obj, node) {
        Ok(v) => v,
        Err(e) => {
            for rule in rules {
                out.push(eval_failed(&e, rule));
            }
            return Outcome::Continue;
        }
    };
    let old_val = match old.filter(|_| rules.iter().any(|r| r.uses_old_self)) {
        Some(o) => value::to_val(o, node).ok(),
        None => None,
    };

    let mut ctx = Context::with_env(env.clone());
    ctx.add_variable_as_val("self", self_val.clone());
    if let Some(o) = &old_val {
        ctx.add_variable_as_val("oldSelf", o.clone());
    }
    // `optionalOldSelf` rules see oldSelf as an optional, none on create.
    let mut optional_ctx = Context::with_env(env.clone());
    if rules.iter().any(|r| r.optional_old_self) {
        optional_ctx.add_variable_as_val("self", self_val);
        let opt = match old_val {
            Some(o) => CelOptional::of(o),
            None => CelOptional::none(),
        };
        optional_ctx.add_variable_as_val("oldSelf", Box::new(opt));
    }

    for rule in rules {
        if rule.uses_old_self && old.is_none() && !rule.optional_old_self {
            // Transition rules only run when there is an old value.
            continue;
        }
        let rule_ctx = if rule.optional_old_self {
            &optional_ctx
        } else {
            &ctx
        };
        let result = match run(budget, || {
            instrument::eval(&rule.expr, rule_ctx)
                .map(|v| v.downcast_ref::<CelBool>().map(|b| *b.inner()))
        }) {
            Ok(r) => r,
            Err(per_call) => {
                out.push(invalid(
                    path,
                    if per_call {
                        format!(
                            "'operation cancelled: actual cost limit exceeded': no further validation rules will be run due to call cost exceeds limit for rule: {}",
                            rule.error_string()
                        )
                    } else {
                        OUT_OF_BUDGET.into()
                    },
                ));
                *budget = -1;
                return Outcome::Stop;
            }
        };
        match result {
            Ok(Some(true)) => continue,
            Ok(Some(false)) => {}
            Ok(None) => {
                out.push(invalid(
                    path,
                    format!("rule did not evaluate to a bool: {}", rule.error_string()),
                ));
                continue;
            }
            Err(ExecutionError::NoSuchOverload(_)) => {
                out.push(invalid(
                    path,
                    format!(
                        "'no such overload': call arguments did not match a supported operator, function or macro signature for rule: {}",
                        rule.error_string()
                    ),
                ));
                continue;
            }
            Err(e) => {
                out.push(eval_failed(&e, rule));
                continue;
            }
        }

        // Ratcheting: an unchanged value keeps passing rules that don't look at oldSelf
        // (upstream downgrades these errors to warnings, which this
        // crate doesn't report).
        if unchanged && !rule.uses_old_self {
            continue;
        }
        let field = match &rule.field_path {
            Some(fp) => fieldpath::child(path, fp),
            None => path.to_owned(),
        };
        let mut detail = None;
        if let Some((expr, source)) = &rule.message_expression {
            let message = run(budget, || {
                instrument::eval(expr, &ctx)
                    .map(|v| v.downcast_ref::<CelString>().map(|s| s.inner().to_owned()))
            });
            match message {
                Ok(Ok(Some(s))) => {
                    let s = s.trim();
                    if !s.is_empty() && s.len() <= MAX_MESSAGE_BYTES && !s.contains(['\n', '\r']) {
                        detail = Some(s.to_owned());
                    }
                }
                // Upstream logs a failing messageExpression and uses the static message.
                Ok(_) => {}
                Err(per_call) => {
                    let message = if per_call {
                        format!(
                            "no further validation rules will be run due to call cost exceeds limit for messageExpression: {source:?}"
                        )
                    } else {
                        "messageExpression evaluation failed due to running out of cost budget, no further validation rules will be run".to_owned()
                    };
                    out.push(invalid(&field, message));
                    *budget = -1;
                    return Outcome::Stop;
                }
            }
        }
        let detail = detail.unwrap_or_else(|| rule.message_or_default());
        let type_value = Some(Value::String(node.type_name.clone()));
        out.push(match rule.reason {
            Reason::FieldValueForbidden => Violation {
                field,
                reason: rule.reason,
                message: detail,
                value: None,
            },
            Reason::FieldValueRequired => Violation {
                field,
                reason: rule.reason,
                message: detail,
                value: None,
            },
            Reason::FieldValueDuplicate => Violation {
                field,
                reason: rule.reason,
                message: String::new(),
                value: type_value,
            },
            _ => Violation {
                field,
                reason: Reason::FieldValueInvalid,
                message: detail,
                value: type_value,
            },
        });
    }
    Outcome::Continue
}
