//! The protobuf messages of autoscaling/v1: HorizontalPodAutoscalers (`kubectl autoscale`).

use super::Ty::*;
use super::{Field, f};

pub(super) fn schema(message: &str) -> Option<&'static [Field]> {
    Some(match message {
        "HorizontalPodAutoscaler" => {
            const {
                &[
                    f(1, "metadata", Msg("ObjectMeta")),
                    f(2, "spec", Msg("HorizontalPodAutoscalerSpec")),
                ]
            }
        }
        "HorizontalPodAutoscalerSpec" => {
            const {
                &[
                    f(1, "scaleTargetRef", Msg("CrossVersionObjectReference")),
                    f(2, "minReplicas", OptInt),
                    f(3, "maxReplicas", Int),
                    f(4, "targetCPUUtilizationPercentage", OptInt),
                ]
            }
        }
        "CrossVersionObjectReference" => {
            const {
                &[
                    f(1, "kind", Str),
                    f(2, "name", Str),
                    f(3, "apiVersion", Str),
                ]
            }
        }
        _ => return None,
    })
}
