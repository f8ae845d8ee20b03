//! The protobuf messages of apps/v1: Deployments (`kubectl create deployment`).

use super::Ty::*;
use super::{Field, f};

pub(super) fn schema(message: &str) -> Option<&'static [Field]> {
    Some(match message {
        "Deployment" => {
            const {
                &[
                    f(1, "metadata", Msg("ObjectMeta")),
                    f(2, "spec", Msg("DeploymentSpec")),
                ]
            }
        }
        "DeploymentSpec" => {
            const {
                &[
                    f(1, "replicas", OptInt),
                    f(2, "selector", Msg("LabelSelector")),
                    f(3, "template", Msg("PodTemplateSpec")),
                    f(4, "strategy", Msg("DeploymentStrategy")),
                    f(5, "minReadySeconds", Int),
                    f(6, "revisionHistoryLimit", OptInt),
                    f(7, "paused", Bool),
                    f(9, "progressDeadlineSeconds", OptInt),
                ]
            }
        }
        "DeploymentStrategy" => {
            const {
                &[
                    f(1, "type", Str),
                    f(2, "rollingUpdate", Msg("RollingUpdateDeployment")),
                ]
            }
        }
        "RollingUpdateDeployment" => {
            const {
                &[
                    f(1, "maxUnavailable", IntOrString),
                    f(2, "maxSurge", IntOrString),
                ]
            }
        }
        _ => return None,
    })
}
