//! The sets extension (cel-go's `ext.Sets`, in Kubernetes' base environment):
//! `sets.contains`, `sets.equivalent` and `sets.intersects` on lists.

use cel_rust::common::types::{CelBool, LIST_TYPE};
use cel_rust::common::value::{CowVal, Val};
use cel_rust::{DeclarationError, Env, ExecutionError};

use super::nth;
use crate::cost;

pub(super) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_overload(
        "sets.contains",
        "list_sets_contains_list",
        vec![LIST_TYPE, LIST_TYPE],
        contains,
    )?;
    env.add_overload(
        "sets.equivalent",
        "list_sets_equivalent_list",
        vec![LIST_TYPE, LIST_TYPE],
        equivalent,
    )?;
    env.add_overload(
        "sets.intersects",
        "list_sets_intersects_list",
        vec![LIST_TYPE, LIST_TYPE],
        intersects,
    )?;
    Ok(())
}

fn elements<'b, 'v>(v: &'b (dyn Val + 'v)) -> Result<Vec<&'b (dyn Val + 'v)>, ExecutionError> {
    let mut iter = v
        .as_iterable()
        .ok_or_else(|| ExecutionError::function_error("sets", "expected a list"))?
        .iter();
    let mut out = Vec::new();
    while let Some(e) = iter.next() {
        out.push(e);
    }
    Ok(out)
}

/// Whether every element of `b` is in `a`.
fn all_in(a: &[&dyn Val], b: &[&dyn Val]) -> bool {
    cost::charge((a.len() * b.len()) as u64 / 10 + 1);
    b.iter().all(|x| a.iter().any(|y| y.equals(*x)))
}

/// Borrowed elements of a list.
type Elements<'b, 'v> = Vec<&'b (dyn Val + 'v)>;

fn pair<'b, 'v>(
    args: &'b [CowVal<'b, 'v>],
) -> Result<(Elements<'b, 'v>, Elements<'b, 'v>), ExecutionError> {
    Ok((
        elements(nth(args, 0)?.as_ref())?,
        elements(nth(args, 1)?.as_ref())?,
    ))
}

fn contains<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let result = {
        let (a, b) = pair(&args)?;
        all_in(&a, &b)
    };
    Ok(CowVal::owned(CelBool::from(result)))
}

fn equivalent<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let result = {
        let (a, b) = pair(&args)?;
        all_in(&a, &b) && all_in(&b, &a)
    };
    Ok(CowVal::owned(CelBool::from(result)))
}

fn intersects<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let result = {
        let (a, b) = pair(&args)?;
        cost::charge((a.len() * b.len()) as u64 / 10 + 1);
        b.iter().any(|x| a.iter().any(|y| y.equals(*x)))
    };
    Ok(CowVal::owned(CelBool::from(result)))
}
