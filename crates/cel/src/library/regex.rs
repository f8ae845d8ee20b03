//! The regex library: `find` and `findAll` on strings.

use cel_rust::common::types::{CelInt, CelList, CelString, INT_TYPE, STRING_TYPE};
use cel_rust::common::value::{CowVal, Val};
use cel_rust::{DeclarationError, Env, ExecutionError};

use super::{charge_str, nth, str_arg};

pub(super) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_member_overload(
        "find",
        "string_find_string",
        STRING_TYPE,
        vec![STRING_TYPE],
        find,
    )?;
    env.add_member_overload(
        "findAll",
        "string_find_all_string",
        STRING_TYPE,
        vec![STRING_TYPE],
        find_all,
    )?;
    env.add_member_overload(
        "findAll",
        "string_find_all_string_int",
        STRING_TYPE,
        vec![STRING_TYPE, INT_TYPE],
        find_all_n,
    )?;
    Ok(())
}

fn compile(function: &str, re: &str) -> Result<regex::Regex, ExecutionError> {
    regex::Regex::new(re).map_err(|e| ExecutionError::function_error(function, e))
}

fn find<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let s = str_arg("find", nth(&args, 0)?.as_ref())?;
    let re = compile("find", str_arg("find", nth(&args, 1)?.as_ref())?)?;
    charge_str(s);
    let found = re
        .find(s)
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    Ok(CowVal::owned(CelString::from(found)))
}

fn find_all_limited<'b, 'v>(
    args: &[CowVal<'b, 'v>],
    limit: Option<i64>,
) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let s = str_arg("findAll", nth(args, 0)?.as_ref())?;
    let re = compile("findAll", str_arg("findAll", nth(args, 1)?.as_ref())?)?;
    charge_str(s);
    // Go's FindAllString: a negative limit means all matches.
    let take = match limit {
        Some(n) if n >= 0 => n as usize,
        _ => usize::MAX,
    };
    let found: Vec<Box<dyn Val + 'v>> = re
        .find_iter(s)
        .take(take)
        .map(|m| Box::new(CelString::from(m.as_str().to_owned())) as Box<dyn Val + 'v>)
        .collect();
    Ok(CowVal::owned(CelList::from(found)))
}

fn find_all<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    find_all_limited(&args, None)
}

fn find_all_n<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let n = nth(&args, 2)?
        .downcast_ref::<CelInt>()
        .map(|i| *i.inner())
        .ok_or_else(|| ExecutionError::function_error("findAll", "expected an int limit"))?;
    find_all_limited(&args, Some(n))
}
