//! The protobuf messages of policy/v1: PodDisruptionBudgets (`kubectl create pdb`).

use super::Ty::*;
use super::{Field, f};

pub(super) fn schema(message: &str) -> Option<&'static [Field]> {
    Some(match message {
        "PodDisruptionBudget" => {
            const {
                &[
                    f(1, "metadata", Msg("ObjectMeta")),
                    f(2, "spec", Msg("PodDisruptionBudgetSpec")),
                ]
            }
        }
        "PodDisruptionBudgetSpec" => {
            const {
                &[
                    f(1, "minAvailable", IntOrString),
                    f(2, "selector", Msg("LabelSelector")),
                    f(3, "maxUnavailable", IntOrString),
                    f(4, "unhealthyPodEvictionPolicy", Str),
                ]
            }
        }
        _ => return None,
    })
}
