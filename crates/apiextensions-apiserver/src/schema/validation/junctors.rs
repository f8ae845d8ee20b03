//! kube-openapi's schema-props validator: allOf, anyOf, oneOf and not, with its composite
//! errors and its choice of the failed branch to report.

use serde_json::Value;

use super::Validator;
use crate::field::FieldError;
use crate::schema::node::Node;
use crate::schema::path::Path;
use common::gofmt;

impl<'p> Validator<'p> {
    pub(super) fn check_junctors<'a>(&mut self, n: &'a Node, v: &'a Value, path: &mut Path<'a>) {
        if n.any_of.is_empty() && n.one_of.is_empty() && n.all_of.is_empty() && n.not.is_none() {
            return;
        }
        let prefix = self.prefix;
        let run = |s: &'a Node, path: &mut Path<'a>| {
            let mut sub = Validator::new(prefix);
            sub.validate(s, v, path);
            (sub.errs, sub.matches)
        };
        if !n.any_of.is_empty() {
            let mut best: Option<(Vec<FieldError>, u32)> = None;
            let mut ok = false;
            for s in &n.any_of {
                let (errs, m) = run(s, path);
                if errs.is_empty() {
                    ok = true;
                    self.matches += m;
                    break;
                }
                // kube-openapi reports the failed branch that matched most (the first on ties).
                if best.as_ref().is_none_or(|b| m > b.1) {
                    best = Some((errs, m));
                }
            }
            if !ok {
                self.junctor_failed(path, "validate at least one schema (anyOf)", best);
            }
        }
        if !n.one_of.is_empty() {
            let mut best: Option<(Vec<FieldError>, u32)> = None;
            let mut validated = 0;
            for s in &n.one_of {
                let (errs, m) = run(s, path);
                if errs.is_empty() {
                    validated += 1;
                    best = None;
                } else if validated == 0 && best.as_ref().is_none_or(|b| m > b.1) {
                    best = Some((errs, m));
                }
            }
            if validated != 1 {
                let more = if validated == 0 {
                    "Found none valid".to_string()
                } else {
                    format!("Found {validated} valid alternatives")
                };
                let what = format!("validate one and only one schema (oneOf). {more}");
                self.junctor_failed(path, &what, best);
            }
        }
        if !n.all_of.is_empty() {
            let mut validated = 0;
            for s in &n.all_of {
                let (errs, m) = run(s, path);
                self.matches += m;
                if errs.is_empty() {
                    validated += 1;
                }
                self.errs.extend(errs);
            }
            if validated != n.all_of.len() {
                let more = if validated == 0 {
                    ". None validated"
                } else {
                    ""
                };
                let what = format!("validate all the schemas (allOf){more}");
                self.junctor_failed(path, &what, None);
            }
        }
        if let Some(not) = &n.not
            && run(not, path).0.is_empty()
        {
            self.junctor_failed(path, "not validate the schema (not)", None);
        }
    }

    /// kube-openapi's composite error for the junctors at `path` (`"<path>" must <what>`),
    /// followed by the errors of the failed branch it reports, if any.
    fn junctor_failed(&mut self, path: &Path, what: &str, branch: Option<(Vec<FieldError>, u32)>) {
        self.unnamed(format!("{} must {what}", gofmt::quote(&path.openapi())));
        if let Some((errs, m)) = branch {
            self.errs.extend(errs);
            self.matches += m;
        }
    }
}
