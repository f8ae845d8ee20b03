//! Kubernetes' CEL libraries (upstream `k8s.io/apiserver/pkg/cel/library`) as overloads on
//! the cel crate's environment. The extended strings library is the cel crate's own
//! strings extension, which has the same functions.

mod cidr;
mod format;
mod ip;
mod lists;
pub(crate) mod quantity;
mod regex;
mod sets;
mod strings;
mod urls;

use cel_rust::common::types::CelString;
use cel_rust::common::value::Val;
use cel_rust::{DeclarationError, Env, ExecutionError};

/// `Val` and `StaticVal` for a library's value type `$t` of the CEL type `$cel_type` (a
/// `static Type`): equal to another value of `$t` when `==`, cloned with `Clone`.
macro_rules! library_val {
    ($t:ty, $cel_type:expr) => {
        impl ::cel_rust::common::value::Val for $t {
            fn get_type(&self) -> &::cel_rust::common::types::Type {
                &$cel_type
            }

            fn cel_type() -> &'static ::cel_rust::common::types::Type {
                &$cel_type
            }

            fn equals(&self, other: &dyn ::cel_rust::common::value::Val) -> bool {
                other.downcast_ref::<$t>().is_some_and(|o| o == self)
            }

            fn clone_as_boxed<'v>(&self) -> Box<dyn ::cel_rust::common::value::Val + 'v>
            where
                Self: 'v,
            {
                Box::new(Clone::clone(self))
            }

            fn as_any(&self) -> Option<&dyn ::std::any::Any> {
                Some(self)
            }
        }

        impl ::cel_rust::common::value::StaticVal for $t {}
    };
}
use library_val;

/// Registers every library on `env`.
pub(crate) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    strings::register(env)?;
    lists::register(env)?;
    regex::register(env)?;
    sets::register(env)?;
    urls::register(env)?;
    quantity::register(env)?;
    ip::register(env)?;
    cidr::register(env)?;
    format::register(env)?;
    Ok(())
}

/// The string argument `v` of `function`.
fn str_arg<'b>(function: &str, v: &'b dyn Val) -> Result<&'b str, ExecutionError> {
    v.downcast_ref::<CelString>()
        .map(|s| s.inner())
        .ok_or_else(|| ExecutionError::function_error(function, "expected a string argument"))
}

/// The `i`th argument, or the error for a call with too few.
fn nth<T>(args: &[T], i: usize) -> Result<&T, ExecutionError> {
    args.get(i)
        .ok_or_else(|| ExecutionError::invalid_argument_count(i + 1, args.len()))
}

/// Charges a string function's cost: upstream's is about a tenth of a unit per byte.
fn charge_str(s: &str) {
    crate::cost::charge(1 + s.len() as u64 / 10);
}
