//! The protobuf messages of meta/v1: the object metadata and label selectors every kind uses.

use super::Ty::*;
use super::{Field, f, r};

pub(super) fn schema(message: &str) -> Option<&'static [Field]> {
    Some(match message {
        "ObjectMeta" => {
            const {
                &[
                    f(1, "name", Str),
                    f(2, "generateName", Str),
                    f(3, "namespace", Str),
                    f(5, "uid", Str),
                    f(6, "resourceVersion", Str),
                    f(8, "creationTimestamp", Time),
                    f(11, "labels", MapStr),
                    f(12, "annotations", MapStr),
                    r(14, "finalizers", Str),
                ]
            }
        }
        "LabelSelector" => {
            const {
                &[
                    f(1, "matchLabels", MapStr),
                    r(2, "matchExpressions", Msg("LabelSelectorRequirement")),
                ]
            }
        }
        "LabelSelectorRequirement" => {
            const { &[f(1, "key", Str), f(2, "operator", Str), r(3, "values", Str)] }
        }
        _ => return None,
    })
}
