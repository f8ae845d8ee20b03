//! Runtime cost of loops: every comprehension charges, per iteration, the number of
//! expression nodes one iteration evaluates (cel-go charges about one unit per node). The
//! charge is a call `@k8s_cost(k, x)` wrapped around a part of the loop evaluated once per
//! iteration: the condition, or, for `map` and `filter` (whose literal condition the
//! interpreter skips, appending in place), the filter's predicate or the appended element.
//! It returns `x`, or fails once the limit is spent, which ends the loop: loops over
//! literal or computed lists stop too, not only the data-backed ones the values meter.

use cel_rust::common::ast::{
    CallExpr, ComprehensionExpr, EntryExpr, Expr, IdedExpr, LiteralValue, operators,
};
use cel_rust::common::types::{CelInt, DYN_TYPE, INT_TYPE};
use cel_rust::common::value::CowVal;
use cel_rust::{DeclarationError, Env, ExecutionError};

use crate::cost;

const CHARGE: &str = "@k8s_cost";

/// Registers the charging function on `env`.
pub(crate) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_overload(CHARGE, "k8s_cost_int_dyn", vec![INT_TYPE, DYN_TYPE], charge)
}

fn charge<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let mut args = args.into_iter();
    let n = args
        .next()
        .and_then(|a| a.downcast_ref::<CelInt>().map(|i| *i.inner()))
        .unwrap_or(1);
    if !cost::charge(n.max(0) as u64) {
        return Err(ExecutionError::function_error(
            "cost",
            "operation cancelled: actual cost limit exceeded",
        ));
    }
    args.next()
        .ok_or_else(ExecutionError::missing_argument_or_target)
}

/// Nodes one evaluation of `e` visits, a nested comprehension's iterations excluded (its
/// own condition charges them). A string literal also counts a tenth of its length, as
/// data strings do (`value.rs`), so that building strings in a loop is charged by size.
fn nodes(e: &IdedExpr) -> i64 {
    1 + match &e.expr {
        Expr::Literal(LiteralValue::String(s)) => s.inner().len() as i64 / 10,
        Expr::Unspecified | Expr::Literal(_) | Expr::Ident(_) => 0,
        Expr::Select(s) => nodes(&s.operand),
        Expr::Call(c) => {
            c.target.as_deref().map_or(0, nodes) + c.args.iter().map(nodes).sum::<i64>()
        }
        Expr::List(l) => l.elements.iter().map(nodes).sum(),
        Expr::Map(m) => entries(&m.entries),
        Expr::Struct(s) => entries(&s.entries),
        Expr::Comprehension(c) => nodes(&c.iter_range) + nodes(&c.accu_init) + nodes(&c.result),
    }
}

fn entries(entries: &[cel_rust::common::ast::IdedEntryExpr]) -> i64 {
    entries
        .iter()
        .map(|e| match &e.expr {
            EntryExpr::StructField(f) => nodes(&f.value),
            EntryExpr::MapEntry(m) => nodes(&m.key) + nodes(&m.value),
        })
        .sum()
}

/// `e` with every comprehension charging per iteration.
pub(crate) fn instrument(e: &IdedExpr) -> IdedExpr {
    let mut out = e.clone();
    rewrite(&mut out);
    out
}

fn rewrite(e: &mut IdedExpr) {
    match &mut e.expr {
        Expr::Unspecified | Expr::Literal(_) | Expr::Ident(_) => {}
        Expr::Select(s) => rewrite(&mut s.operand),
        Expr::Call(c) => {
            if let Some(t) = c.target.as_deref_mut() {
                rewrite(t);
            }
            c.args.iter_mut().for_each(rewrite);
        }
        Expr::List(l) => l.elements.iter_mut().for_each(rewrite),
        Expr::Map(m) => m.entries.iter_mut().for_each(rewrite_entry),
        Expr::Struct(s) => s.entries.iter_mut().for_each(rewrite_entry),
        Expr::Comprehension(c) => {
            let k = 1 + nodes(&c.loop_cond) + nodes(&c.loop_step);
            for part in [
                &mut c.iter_range,
                &mut c.accu_init,
                &mut c.loop_cond,
                &mut c.loop_step,
                &mut c.result,
            ] {
                rewrite(part);
            }
            let target = match append_step(c) {
                Some(part) => part,
                None => &mut c.loop_cond,
            };
            wrap(target, k);
        }
    }
}

/// `e` as `@k8s_cost(k, e)`.
fn wrap(e: &mut IdedExpr, k: i64) {
    let id = e.id;
    let inner = std::mem::take(e);
    *e = IdedExpr {
        id,
        expr: Expr::Call(CallExpr {
            func_name: CHARGE.to_owned(),
            target: None,
            args: vec![
                IdedExpr {
                    id,
                    expr: Expr::Literal(LiteralValue::Int(CelInt::from(k))),
                },
                inner,
            ],
        }),
    };
}

/// For a `map` or `filter` (the shape the interpreter appends in place: result the
/// accumulator, a literal condition, step `@result + [e]` or `g ? @result + [e] :
/// @result`), the part evaluated once per iteration that can carry the charge while
/// keeping that shape: `g`, else `e`.
fn append_step(c: &mut ComprehensionExpr) -> Option<&mut IdedExpr> {
    let accu = c.accu_var.clone();
    let is_accu = |e: &IdedExpr| matches!(&e.expr, Expr::Ident(n) if *n == accu);
    if !is_accu(&c.result) || !matches!(c.loop_cond.expr, Expr::Literal(_)) {
        return None;
    }
    let guarded = matches!(&c.loop_step.expr, Expr::Call(call)
        if call.func_name == operators::CONDITIONAL
            && call.target.is_none()
            && call.args.len() == 3
            && is_accu(&call.args[2]));
    if guarded {
        let Expr::Call(call) = &mut c.loop_step.expr else {
            return None;
        };
        return call.args.first_mut();
    }
    appended(&mut c.loop_step, &accu)
}

/// The `e` of a step `accu + [e]`.
fn appended<'e>(step: &'e mut IdedExpr, accu: &str) -> Option<&'e mut IdedExpr> {
    let Expr::Call(call) = &mut step.expr else {
        return None;
    };
    if call.func_name != operators::ADD || call.target.is_some() {
        return None;
    }
    match call.args.as_mut_slice() {
        [lhs, rhs] if matches!(&lhs.expr, Expr::Ident(n) if n == accu) => match &mut rhs.expr {
            Expr::List(list) if list.elements.len() == 1 => list.elements.first_mut(),
            _ => None,
        },
        _ => None,
    }
}

fn rewrite_entry(e: &mut cel_rust::common::ast::IdedEntryExpr) {
    match &mut e.expr {
        EntryExpr::StructField(f) => rewrite(&mut f.value),
        EntryExpr::MapEntry(m) => {
            rewrite(&mut m.key);
            rewrite(&mut m.value);
        }
    }
}

/// Evaluates an instrumented expression.
pub(crate) fn eval<'e, 'v>(
    e: &'e IdedExpr,
    ctx: &'e cel_rust::Context<'_, 'v>,
) -> Result<CowVal<'e, 'v>, ExecutionError> {
    // The expression's nodes outside loops, charged once.
    cost::charge(1);
    cel_rust::Value::resolve_val(e, ctx)
}
