//! The quantity library: `quantity()`, `isQuantity`, and `sign`, `isInteger`, `asInteger`,
//! `asApproximateFloat`, `add`, `sub`, `isGreaterThan`, `isLessThan`, `compareTo` on
//! quantities. Parsing is `common::quantity`'s; values are kept in nano-units (exact to a
//! billionth, as far as upstream's canonical forms go) in an i128.

use std::cmp::Ordering;

use cel_rust::common::types::{CelBool, CelDouble, CelInt, INT_TYPE, STRING_TYPE, Type};
use cel_rust::common::value::CowVal;
use cel_rust::{DeclarationError, Env, ExecutionError};

use super::{library_val, nth, str_arg};

static QUANTITY_TYPE: Type = Type::new_unspecified_type("kubernetes.Quantity");
const NANO: i128 = 1_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Quantity {
    nanos: i128,
}

library_val!(Quantity, QUANTITY_TYPE);

impl Quantity {
    /// Kubernetes' canonical form, as far as decimal suffixes go.
    pub(crate) fn canonical(&self) -> String {
        match i64::try_from(self.nanos) {
            Ok(n) => common::quantity::format_decimal(n, -9),
            Err(_) => common::quantity::format_decimal((self.nanos / NANO) as i64, 0),
        }
    }
}

/// `s` as a quantity; `None` when it isn't one.
pub(crate) fn parse(s: &str) -> Option<Quantity> {
    // The shared parser trims and is lenient about a few forms upstream rejects.
    let first_ok = s
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_digit() || b"+-.".contains(&b));
    if !first_ok || s.bytes().any(|b| b.is_ascii_whitespace()) || s.matches('.').count() > 1 {
        return None;
    }
    if let Some(n) = common::quantity::parse_scaled(s, NANO as i64) {
        return Some(Quantity { nanos: n as i128 });
    }
    common::quantity::parse_scaled(s, 1).map(|u| Quantity {
        nanos: u as i128 * NANO,
    })
}

pub(super) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    let q = || QUANTITY_TYPE.to_owned();
    env.add_overload(
        "quantity",
        "string_to_quantity",
        vec![STRING_TYPE],
        to_quantity,
    )?;
    env.add_overload(
        "isQuantity",
        "is_quantity_string",
        vec![STRING_TYPE],
        is_quantity,
    )?;
    // Upstream declares `sign` as a global overload; the member form is what its docs show.
    env.add_overload("sign", "quantity_sign", vec![q()], sign)?;
    env.add_member_overload("sign", "quantity_sign_member", q(), vec![], sign)?;
    env.add_member_overload("isInteger", "quantity_is_integer", q(), vec![], is_integer)?;
    env.add_member_overload("asInteger", "quantity_as_integer", q(), vec![], as_integer)?;
    env.add_member_overload(
        "asApproximateFloat",
        "quantity_as_approximate_float",
        q(),
        vec![],
        as_approximate_float,
    )?;
    env.add_member_overload("add", "quantity_add", q(), vec![q()], add)?;
    env.add_member_overload("add", "quantity_add_int", q(), vec![INT_TYPE], add)?;
    env.add_member_overload("sub", "quantity_sub", q(), vec![q()], sub)?;
    env.add_member_overload("sub", "quantity_sub_int", q(), vec![INT_TYPE], sub)?;
    env.add_member_overload("mul", "quantity_multiply_int", q(), vec![INT_TYPE], mul)?;
    env.add_member_overload(
        "isGreaterThan",
        "quantity_is_greater_than",
        q(),
        vec![q()],
        is_greater_than,
    )?;
    env.add_member_overload(
        "isLessThan",
        "quantity_is_less_than",
        q(),
        vec![q()],
        is_less_than,
    )?;
    env.add_member_overload(
        "compareTo",
        "quantity_compare_to",
        q(),
        vec![q()],
        compare_to,
    )?;
    Ok(())
}

fn receiver(args: &[CowVal<'_, '_>], function: &str) -> Result<Quantity, ExecutionError> {
    nth(args, 0)?
        .downcast_ref::<Quantity>()
        .copied()
        .ok_or_else(|| ExecutionError::function_error(function, "expected a quantity"))
}

/// The second argument: a quantity, or an int for `add`/`sub`.
fn operand(args: &[CowVal<'_, '_>], function: &str) -> Result<Quantity, ExecutionError> {
    let v = nth(args, 1)?;
    if let Some(q) = v.downcast_ref::<Quantity>() {
        return Ok(*q);
    }
    v.downcast_ref::<CelInt>()
        .map(|i| Quantity {
            nanos: *i.inner() as i128 * NANO,
        })
        .ok_or_else(|| ExecutionError::function_error(function, "expected a quantity or an int"))
}

fn to_quantity<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let s = str_arg("quantity", nth(&args, 0)?.as_ref())?;
    let q = parse(s).ok_or_else(|| {
        ExecutionError::function_error(
            "quantity",
            "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
        )
    })?;
    Ok(CowVal::owned(q))
}

fn is_quantity<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let s = str_arg("isQuantity", nth(&args, 0)?.as_ref())?;
    Ok(CowVal::owned(CelBool::from(parse(s).is_some())))
}

fn sign<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let q = receiver(&args, "sign")?;
    Ok(CowVal::owned(CelInt::from(q.nanos.signum() as i64)))
}

/// The value as an int64 when it is a whole number that fits.
fn as_i64(q: Quantity) -> Option<i64> {
    (q.nanos % NANO == 0)
        .then(|| i64::try_from(q.nanos / NANO).ok())
        .flatten()
}

fn is_integer<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let q = receiver(&args, "isInteger")?;
    Ok(CowVal::owned(CelBool::from(as_i64(q).is_some())))
}

fn as_integer<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let q = receiver(&args, "asInteger")?;
    let i = as_i64(q).ok_or_else(|| {
        ExecutionError::function_error("asInteger", "cannot convert value to integer")
    })?;
    Ok(CowVal::owned(CelInt::from(i)))
}

fn as_approximate_float<'b, 'v>(
    args: Vec<CowVal<'b, 'v>>,
) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let q = receiver(&args, "asApproximateFloat")?;
    Ok(CowVal::owned(CelDouble::from(q.nanos as f64 / NANO as f64)))
}

fn arithmetic<'b, 'v>(
    args: Vec<CowVal<'b, 'v>>,
    function: &str,
    op: fn(i128, i128) -> Option<i128>,
) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (a, b) = (receiver(&args, function)?, operand(&args, function)?);
    let nanos = op(a.nanos, b.nanos)
        .ok_or_else(|| ExecutionError::function_error(function, "quantity overflow"))?;
    Ok(CowVal::owned(Quantity { nanos }))
}

fn add<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    arithmetic(args, "add", i128::checked_add)
}

fn sub<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    arithmetic(args, "sub", i128::checked_sub)
}

fn mul<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let q = receiver(&args, "mul")?;
    let factor = nth(&args, 1)?
        .downcast_ref::<CelInt>()
        .map(|i| *i.inner() as i128)
        .ok_or_else(|| ExecutionError::function_error("mul", "expected an int"))?;
    let nanos = q
        .nanos
        .checked_mul(factor)
        .ok_or_else(|| ExecutionError::function_error("mul", "quantity overflow"))?;
    Ok(CowVal::owned(Quantity { nanos }))
}

fn ordering(args: &[CowVal<'_, '_>], function: &str) -> Result<Ordering, ExecutionError> {
    Ok(receiver(args, function)?.cmp(&operand(args, function)?))
}

fn is_greater_than<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let o = ordering(&args, "isGreaterThan")?;
    Ok(CowVal::owned(CelBool::from(o == Ordering::Greater)))
}

fn is_less_than<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let o = ordering(&args, "isLessThan")?;
    Ok(CowVal::owned(CelBool::from(o == Ordering::Less)))
}

fn compare_to<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let o = ordering(&args, "compareTo")?;
    Ok(CowVal::owned(CelInt::from(o as i64)))
}
