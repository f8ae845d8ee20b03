//! A CRD version's `openAPIV3Schema`, compiled once: [`Structural::new`] checks it is
//! structural (and its defaults valid), then validates, defaults and prunes objects.

mod defaulting;
mod embedded;
mod formats;
mod list_type;
mod merge;
mod node;
mod objectmeta;
mod path;
mod pattern;
mod pruning;
mod structural;
mod validation;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
use serde_json::Value;

use crate::field::FieldError;
pub use merge::{ListKind, MergeNode};
use node::{Additional, Node};
use path::Path;
use validation::Validator;

/// A compiled structural schema (patterns compiled, defaults checked).
pub struct Structural {
    root: Node,
}

impl Structural {
    /// Compiles `schema` (a CRD version's `openAPIV3Schema`); `path` names it in errors
    /// (`spec.versions[0].schema.openAPIV3Schema`). Errors: not structural, bad patterns,
    /// invalid defaults, as upstream's CRD validation reports them.
    pub fn new(schema: &JSONSchemaProps, path: &str) -> Result<Structural, Vec<FieldError>> {
        let errs = structural::check(schema, path);
        if !errs.is_empty() {
            return Err(errs);
        }
        let root = Node::compile(schema);
        let mut errs = Vec::new();
        check_defaults(&root, path, false, &mut errs);
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(Structural { root })
    }

    /// The root of the schema as server-side apply walks it (list types, map keys, atomic
    /// maps).
    pub fn merge_root(&self) -> MergeNode<'_> {
        MergeNode::new(&self.root)
    }

    /// Compiles without the structural checks (tests of keywords CRDs forbid, e.g. uniqueItems).
    #[cfg(test)]
    pub(crate) fn unchecked(schema: &JSONSchemaProps) -> Structural {
        Structural {
            root: Node::compile(schema),
        }
    }

    /// Applies `default`s (upstream's structural defaulting: after decoding, before
    /// validation). At the root `apiVersion`, `kind` and `metadata` are left alone.
    pub fn default(&self, obj: &mut Value) {
        defaulting::default(obj, &self.root);
    }

    /// Removes fields the schema does not declare (unless `x-kubernetes-preserve-unknown-fields`);
    /// returns their paths (`spec.foo`, `spec.items[0].bar`) sorted as upstream sorts them, for
    /// the `unknown field` warnings and strict errors. At the root `apiVersion`, `kind` and
    /// `metadata` are kept (metadata is ObjectMeta); embedded resources keep theirs too.
    /// Then drops nulls of fields that are neither nullable nor defaulted, as upstream's
    /// decoder does right after pruning.
    pub fn prune(&self, obj: &mut Value) -> Vec<String> {
        let mut unknown = Vec::new();
        pruning::prune(obj, &self.root, true, true, Some(&mut unknown));
        unknown
    }

    /// Validates a whole custom object (after defaulting and pruning), as upstream's
    /// OpenAPI schema validation of custom resources, including list types and map keys.
    pub fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let mut v = Validator::new(None);
        let mut path = Path::default();
        v.validate(&self.root, obj, &mut path);
        let mut errs = v.errs;
        validation::dedup(&mut errs);
        embedded::validate(obj, &self.root, &mut path, &mut errs);
        list_type::validate(obj, &self.root, &mut path, &mut errs);
        errs
    }
}

/// Upstream's `defaulting.ValidateDefaults`: each default must be pruned and valid against
/// its own schema (defaults inside object metadata are not allowed at all, see structural).
fn check_defaults(n: &Node, p: &str, in_meta: bool, errs: &mut Vec<FieldError>) {
    if let Some(d) = &n.default
        && !in_meta
    {
        let field = format!("{p}.default");
        let mut pruned = d.clone();
        pruning::prune(&mut pruned, n, n.embedded, false, None);
        if &pruned != d {
            errs.push(FieldError::invalid(
                field.clone(),
                d.clone(),
                "must not have unknown fields",
            ));
        }
        let mut v = Validator::new(Some(&field));
        v.validate(n, d, &mut Path::default());
        let mut found = v.errs;
        validation::dedup(&mut found);
        errs.extend(found);
    }
    if let Some(items) = &n.items {
        check_defaults(items, &format!("{p}.items"), in_meta, errs);
    }
    for (k, x) in &n.properties {
        let meta =
            in_meta || (n.embedded && matches!(k.as_str(), "metadata" | "apiVersion" | "kind"));
        check_defaults(x, &format!("{p}.properties[{k}]"), meta, errs);
    }
    if let Some(Additional::Schema(a)) = &n.additional {
        check_defaults(a, &format!("{p}.additionalProperties"), in_meta, errs);
    }
}

#[cfg(test)]
mod tests;
