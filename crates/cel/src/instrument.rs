//! Runtime cost of loops: every comprehension's condition is rewritten to
//! `@k8s_cost(k) && <condition>`, `k` being the number of expression nodes one iteration
//! evaluates (cel-go charges about one unit per node). `@k8s_cost` charges the meter and
//! turns false once the limit is spent, which ends the loop, and with it any loop over
//! literal or computed lists, not only the data-backed ones the values meter themselves.

use cel_rust::common::ast::{CallExpr, EntryExpr, Expr, IdedExpr, LiteralValue, operators};
use cel_rust::common::types::{CelBool, CelInt, INT_TYPE};
use cel_rust::common::value::CowVal;
use cel_rust::{DeclarationError, Env, ExecutionError};

use crate::cost;

const CHARGE: &str = "@k8s_cost";

/// Registers the charging function on `env`.
pub(crate) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_overload(CHARGE, "k8s_cost_int", vec![INT_TYPE], charge)
}

fn charge<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let n = args
        .first()
        .and_then(|a| a.downcast_ref::<CelInt>().map(|i| *i.inner()))
        .unwrap_or(1);
    Ok(CowVal::owned(CelBool::from(cost::charge(n.max(0) as u64))))
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
            let id = c.loop_cond.id;
            let charge = IdedExpr {
                id,
                expr: Expr::Call(CallExpr {
                    func_name: CHARGE.to_owned(),
                    target: None,
                    args: vec![IdedExpr {
                        id,
                        expr: Expr::Literal(LiteralValue::Int(CelInt::from(k))),
                    }],
                }),
            };
            let cond = std::mem::take(&mut c.loop_cond);
            c.loop_cond = IdedExpr {
                id,
                expr: Expr::Call(CallExpr {
                    func_name: operators::LOGICAL_AND.to_owned(),
                    target: None,
                    args: vec![charge, cond],
                }),
            };
        }
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
