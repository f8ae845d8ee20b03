//! CEL as Kubernetes evaluates it (upstream's `k8s.io/apiserver/pkg/cel` and
//! `k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel`), on the `cel` crate
//! (cel-rust): CRD validation rules ([`Rules`]), a general compile-once/evaluate API for
//! admission policies ([`compile`], [`Program`]), Kubernetes' CEL libraries, and cost limits.

mod check;
mod compile;
pub mod cost;
mod duration;
mod env;
mod eval;
mod fieldpath;
mod instrument;
mod library;
mod program;
mod rules;
mod schema;
mod value;

pub use program::{Program, compile};
pub use rules::{CompileError, Reason, Rules, Violation};

#[cfg(test)]
mod tests;
