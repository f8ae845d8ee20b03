//! The protobuf messages of scheduling.k8s.io/v1: PriorityClasses (`kubectl create priorityclass`).

use super::Ty::*;
use super::{Field, f};

pub(super) fn schema(message: &str) -> Option<&'static [Field]> {
    Some(match message {
        "PriorityClass" => {
            const {
                &[
                    f(1, "metadata", Msg("ObjectMeta")),
                    f(2, "value", OptInt),
                    f(3, "globalDefault", Bool),
                    f(4, "description", Str),
                    f(5, "preemptionPolicy", Str),
                ]
            }
        }
        _ => return None,
    })
}
