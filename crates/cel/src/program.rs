//! The general API, for ValidatingAdmissionPolicy and the like: an expression compiled
//! once against declared variables and evaluated on JSON values (untyped: objects are
//! maps, arrays are lists).

use cel_rust::Context;
use serde_json::Value;

use crate::check::{Checker, Shape};
use crate::{cost, env, instrument, value};

/// A compiled expression.
#[derive(Debug)]
pub struct Program {
    /// The expression, instrumented for runtime cost.
    expr: cel_rust::common::ast::IdedExpr,
    source: String,
    used: Vec<String>,
}

/// Compiles `expr`, which may read the variables `vars` (e.g. `object`, `oldObject`,
/// `request`, `params`, `namespaceObject`, `variables`); the error is in cel-go's form
/// (`ERROR: <input>:1:1: undeclared reference to 'x' (in container '')`).
pub fn compile(expr: &str, vars: &[&str]) -> Result<Program, String> {
    let program = env::parse(expr)?;
    let roots: Vec<(&str, Shape<'_>)> = vars.iter().map(|v| (*v, Shape::Other)).collect();
    let mut checker = Checker::new(&roots);
    checker.cost(program.expression());
    if let Some(e) = checker.errors.first() {
        return Err(format!(
            "ERROR: <input>:{}: {}",
            env::position(&program, e.id),
            e.message
        ));
    }
    let used = checker.used;
    Ok(Program {
        expr: instrument::instrument(program.expression()),
        source: expr.to_owned(),
        used,
    })
}

impl Program {
    /// The expression's source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the expression reads variable `name`.
    pub fn uses(&self, name: &str) -> bool {
        self.used.iter().any(|u| u == name)
    }

    /// Evaluates the expression with `vars` bound (variables it doesn't read are never
    /// converted), within upstream's per-call cost limit. Errors are in cel-go's words.
    pub fn eval(&self, vars: &[(&str, &Value)]) -> Result<Value, String> {
        let env = env::env()?;
        let mut ctx = Context::with_env(env.clone());
        for (name, json) in vars {
            if self.uses(name) {
                let val = value::to_val_untyped(json).map_err(|e| e.to_string())?;
                ctx.add_variable_as_val(*name, val);
            }
        }
        let (result, _) = cost::metered(cost::PER_CALL_LIMIT, || {
            let out = instrument::eval(&self.expr, &ctx)
                .map_err(|e| crate::eval::error_text(&e))
                .and_then(|v| value::to_json(v.as_ref()));
            (out, cost::exhausted())
        });
        match result {
            (_, true) => Err("operation cancelled: actual cost limit exceeded".into()),
            (out, false) => out,
        }
    }

    /// Evaluates a condition (a validation's or a match condition's expression).
    pub fn eval_bool(&self, vars: &[(&str, &Value)]) -> Result<bool, String> {
        match self.eval(vars)? {
            Value::Bool(b) => Ok(b),
            other => Err(format!("expected a bool, got {other}")),
        }
    }

    /// Evaluates a string (a `messageExpression` or an audit annotation's value).
    pub fn eval_string(&self, vars: &[(&str, &Value)]) -> Result<String, String> {
        match self.eval(vars)? {
            Value::String(s) => Ok(s),
            other => Err(format!("expected a string, got {other}")),
        }
    }
}
