//! The protobuf messages of authorization.k8s.io/v1: the access reviews (`kubectl auth can-i`).

use super::Ty::*;
use super::{Field, f, r};

pub(super) fn schema(message: &str) -> Option<&'static [Field]> {
    Some(match message {
        "SelfSubjectAccessReview" => {
            const {
                &[
                    f(1, "metadata", Msg("ObjectMeta")),
                    f(2, "spec", Msg("SelfSubjectAccessReviewSpec")),
                ]
            }
        }
        "SubjectAccessReview" | "LocalSubjectAccessReview" => {
            const {
                &[
                    f(1, "metadata", Msg("ObjectMeta")),
                    f(2, "spec", Msg("SubjectAccessReviewSpec")),
                ]
            }
        }
        "SelfSubjectAccessReviewSpec" => {
            const {
                &[
                    f(1, "resourceAttributes", Msg("ResourceAttributes")),
                    f(2, "nonResourceAttributes", Msg("NonResourceAttributes")),
                ]
            }
        }
        "SubjectAccessReviewSpec" => {
            const {
                &[
                    f(1, "resourceAttributes", Msg("ResourceAttributes")),
                    f(2, "nonResourceAttributes", Msg("NonResourceAttributes")),
                    f(3, "user", Str),
                    r(4, "groups", Str),
                    f(6, "uid", Str),
                ]
            }
        }
        "ResourceAttributes" => {
            const {
                &[
                    f(1, "namespace", Str),
                    f(2, "verb", Str),
                    f(3, "group", Str),
                    f(4, "version", Str),
                    f(5, "resource", Str),
                    f(6, "subresource", Str),
                    f(7, "name", Str),
                ]
            }
        }
        "NonResourceAttributes" => const { &[f(1, "path", Str), f(2, "verb", Str)] },
        "SelfSubjectRulesReview" => {
            const {
                &[
                    f(1, "metadata", Msg("ObjectMeta")),
                    f(2, "spec", Msg("SelfSubjectRulesReviewSpec")),
                ]
            }
        }
        "SelfSubjectRulesReviewSpec" => const { &[f(1, "namespace", Str)] },
        _ => return None,
    })
}
