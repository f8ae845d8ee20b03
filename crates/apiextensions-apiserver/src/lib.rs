//! CustomResourceDefinition schemas as kube-apiserver applies them to custom objects
//! (upstream's `k8s.io/apiextensions-apiserver/pkg/apiserver/schema` and `.../validation`):
//! whether a CRD's schema is structural, and validation, defaulting and pruning of objects
//! against it. The API server compiles a [`schema::Structural`] once per served CRD version
//! and calls it on every write.

pub mod field;
pub mod schema;
