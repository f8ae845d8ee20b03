//! The protobuf messages of authentication.k8s.io/v1: TokenReview, SelfSubjectReview (`kubectl auth whoami`) and TokenRequest (`kubectl create token`).

use super::Ty::*;
use super::{Field, f, r};

pub(super) fn schema(message: &str) -> Option<&'static [Field]> {
    Some(match message {
        "SelfSubjectReview" => const { &[f(1, "metadata", Msg("ObjectMeta"))] },
        "TokenReview" => {
            const {
                &[
                    f(1, "metadata", Msg("ObjectMeta")),
                    f(2, "spec", Msg("TokenReviewSpec")),
                ]
            }
        }
        "TokenRequest" => {
            const {
                &[
                    f(1, "metadata", Msg("ObjectMeta")),
                    f(2, "spec", Msg("TokenRequestSpec")),
                ]
            }
        }
        "TokenRequestSpec" => {
            const {
                &[
                    r(1, "audiences", Str),
                    f(3, "boundObjectRef", Msg("BoundObjectReference")),
                    f(4, "expirationSeconds", OptInt),
                ]
            }
        }
        "BoundObjectReference" => {
            const {
                &[
                    f(1, "kind", Str),
                    f(2, "apiVersion", Str),
                    f(3, "name", Str),
                    f(4, "uid", Str),
                ]
            }
        }
        "TokenReviewSpec" => const { &[f(1, "token", Str), r(2, "audiences", Str)] },
        _ => return None,
    })
}
