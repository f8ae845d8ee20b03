//! kube-openapi's number validator: range of the type/format, multipleOf, maximum, minimum
//! (with its int64/float64 distinctions).

use serde_json::{Number, Value};

use super::Validator;
use crate::schema::node::{Node, Type};
use crate::schema::path::Path;
use common::gofmt;

/// A JSON number as Go's unstructured decoding sees it: int64 or float64.
#[derive(Clone, Copy)]
pub(super) enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    pub(super) fn of(n: &Number) -> Num {
        match n.as_i64() {
            Some(i) => Num::Int(i),
            None => Num::Float(n.as_f64().unwrap_or(0.0)),
        }
    }

    pub(super) fn f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    pub(super) fn value(self) -> Value {
        match self {
            Num::Int(i) => Value::from(i),
            Num::Float(f) => Value::from(f),
        }
    }
}

/// swag's `IsFloat64AJSONInteger`.
pub(super) fn is_json_integer(f: f64) -> bool {
    f.is_finite() && f.abs() <= 9_007_199_254_740_992.0 && f.fract() == 0.0
}

/// Go's `%v` of a float64 bound, or of the int64 it was converted to.
fn bound(f: f64, as_int: bool) -> String {
    if as_int {
        (f as i64).to_string()
    } else {
        gofmt::float_v(f)
    }
}

/// Whether `x` is past bound `b`: above it for a maximum (`upper`), below it for a minimum,
/// or at it when the bound is exclusive.
fn beyond<T: PartialOrd>(x: T, b: T, upper: bool, exclusive: bool) -> bool {
    let (high, low) = if upper { (x, b) } else { (b, x) };
    if exclusive { high >= low } else { high > low }
}

impl Validator<'_> {
    /// kube-openapi's `IsValueValidAgainstRange`: whether `x` fits the schema's type/format.
    fn in_range(n: &Node, x: Num) -> bool {
        let fmt = n.format.as_ref().map_or("", |(s, _)| s.as_str());
        match n.ty {
            Type::Integer => {
                let i = match x {
                    Num::Int(i) => i,
                    // FormatFloat('f') then ParseInt: integral values in int64 range only.
                    Num::Float(f) if f.fract() == 0.0 && f.abs() < 9.223_372_036_854_775e18 => {
                        f as i64
                    }
                    Num::Float(_) => return false,
                };
                fmt != "int32" || i32::try_from(i).is_ok()
            }
            Type::Number if fmt == "float" => x.f64().abs() <= f64::from(f32::MAX),
            _ => true,
        }
    }

    pub(super) fn check_number(&mut self, n: &Node, x: Num, path: &Path) {
        if !matches!(n.ty, Type::Integer | Type::Number)
            && n.multiple_of.is_none()
            && n.maximum.is_none()
            && n.minimum.is_none()
        {
            return;
        }
        let typed = matches!(n.ty, Type::Integer | Type::Number);
        if typed && !Self::in_range(n, x) {
            let fmt = n.format.as_ref().map_or("", |(s, _)| s.as_str());
            let name = path.openapi();
            let what = if fmt.is_empty() {
                format!("{} (default format)", n.ty.name())
            } else {
                format!("{} with format {fmt}", n.ty.name())
            };
            self.unnamed(format!("Checked value must be of type {what} in {name}"));
        }
        let native = |b: f64| -> bool {
            let b_ok = !typed || Self::in_range(n, Num::Float(b));
            b_ok && matches!(x, Num::Int(_))
        };
        if let Some(factor) = n.multiple_of {
            let as_int = native(factor);
            if factor <= 0.0 || (as_int && (factor as i64) <= 0) {
                let name = path.openapi();
                let fv = if as_int {
                    Value::from(factor as i64)
                } else {
                    Value::from(factor)
                };
                self.invalid(
                    &name,
                    fv,
                    format!(
                        "factor MultipleOf declared for {name} must be positive: {}",
                        bound(factor, as_int)
                    ),
                );
            } else {
                let bad = match x {
                    Num::Int(i) if as_int => i % (factor as i64) != 0,
                    _ => {
                        let d = x.f64();
                        let mult = if factor < 1.0 {
                            1.0 / factor * d
                        } else {
                            d / factor
                        };
                        !is_json_integer(mult)
                    }
                };
                if bad {
                    let name = path.openapi();
                    let msg = format!(
                        "{name} in body should be a multiple of {}",
                        bound(factor, as_int)
                    );
                    self.invalid(&name, x.value(), msg);
                }
            }
        }
        let bounds = [
            (n.maximum, n.exclusive_maximum, true),
            (n.minimum, n.exclusive_minimum, false),
        ];
        for (bound_value, exclusive, upper) in bounds {
            let Some(b) = bound_value else { continue };
            let as_int = native(b);
            let out = match x {
                Num::Int(i) if as_int => beyond(i, b as i64, upper, exclusive),
                _ => beyond(x.f64(), b, upper, exclusive),
            };
            if out {
                let name = path.openapi();
                let rel = match (upper, exclusive) {
                    (true, true) => "less than",
                    (true, false) => "less than or equal to",
                    (false, true) => "greater than",
                    (false, false) => "greater than or equal to",
                };
                self.invalid(
                    &name,
                    x.value(),
                    format!("{name} in body should be {rel} {}", bound(b, as_int)),
                );
            }
        }
    }
}
