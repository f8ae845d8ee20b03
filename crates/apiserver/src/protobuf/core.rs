//! The protobuf messages of core/v1: the kinds kubectl creates in protobuf and the pod template they share.

use super::Ty::*;
use super::{Field, f, r};

pub(super) fn schema(message: &str) -> Option<&'static [Field]> {
    Some(match message {
        "ConfigMap" => {
            const {
                &[
                    f(1, "metadata", Msg("ObjectMeta")),
                    f(2, "data", MapStr),
                    f(3, "binaryData", MapBytes),
                    f(4, "immutable", OptBool),
                ]
            }
        }
        "Secret" => {
            const {
                &[
                    f(1, "metadata", Msg("ObjectMeta")),
                    f(2, "data", MapBytes),
                    f(3, "type", Str),
                    f(4, "stringData", MapStr),
                    f(5, "immutable", OptBool),
                ]
            }
        }
        "Namespace" => {
            const {
                &[
                    f(1, "metadata", Msg("ObjectMeta")),
                    f(2, "spec", Msg("NamespaceSpec")),
                ]
            }
        }
        "NamespaceSpec" => const { &[r(1, "finalizers", Str)] },
        "ServiceAccount" => {
            const {
                &[
                    f(1, "metadata", Msg("ObjectMeta")),
                    r(3, "imagePullSecrets", Msg("LocalObjectReference")),
                    f(4, "automountServiceAccountToken", OptBool),
                ]
            }
        }
        "LocalObjectReference" => const { &[f(1, "name", Str)] },
        "Service" => {
            const {
                &[
                    f(1, "metadata", Msg("ObjectMeta")),
                    f(2, "spec", Msg("ServiceSpec")),
                ]
            }
        }
        "ServiceSpec" => {
            const {
                &[
                    r(1, "ports", Msg("ServicePort")),
                    f(2, "selector", MapStr),
                    f(3, "clusterIP", Str),
                    f(4, "type", Str),
                    r(5, "externalIPs", Str),
                    f(7, "sessionAffinity", Str),
                    f(10, "externalName", Str),
                    f(11, "externalTrafficPolicy", Str),
                ]
            }
        }
        "ServicePort" => {
            const {
                &[
                    f(1, "name", Str),
                    f(2, "protocol", Str),
                    f(3, "port", Int),
                    f(4, "targetPort", IntOrString),
                    f(5, "nodePort", Int),
                    f(6, "appProtocol", Str),
                ]
            }
        }
        "PodTemplateSpec" => {
            const {
                &[
                    f(1, "metadata", Msg("ObjectMeta")),
                    f(2, "spec", Msg("PodSpec")),
                ]
            }
        }
        "PodSpec" => {
            const {
                &[
                    r(2, "containers", Msg("Container")),
                    f(3, "restartPolicy", Str),
                    f(4, "terminationGracePeriodSeconds", OptInt),
                    f(5, "activeDeadlineSeconds", OptInt),
                    f(6, "dnsPolicy", Str),
                    f(7, "nodeSelector", MapStr),
                    f(8, "serviceAccountName", Str),
                    f(10, "nodeName", Str),
                    f(11, "hostNetwork", Bool),
                    r(15, "imagePullSecrets", Msg("LocalObjectReference")),
                    f(16, "hostname", Str),
                    f(17, "subdomain", Str),
                    f(19, "schedulerName", Str),
                    r(20, "initContainers", Msg("Container")),
                    f(24, "priorityClassName", Str),
                ]
            }
        }
        "Container" => {
            const {
                &[
                    f(1, "name", Str),
                    f(2, "image", Str),
                    r(3, "command", Str),
                    r(4, "args", Str),
                    f(5, "workingDir", Str),
                    r(6, "ports", Msg("ContainerPort")),
                    r(7, "env", Msg("EnvVar")),
                    f(8, "resources", Msg("ResourceRequirements")),
                    f(13, "terminationMessagePath", Str),
                    f(14, "imagePullPolicy", Str),
                    f(16, "stdin", Bool),
                    f(17, "stdinOnce", Bool),
                    f(18, "tty", Bool),
                    f(20, "terminationMessagePolicy", Str),
                ]
            }
        }
        "ContainerPort" => {
            const {
                &[
                    f(1, "name", Str),
                    f(2, "hostPort", Int),
                    f(3, "containerPort", Int),
                    f(4, "protocol", Str),
                    f(5, "hostIP", Str),
                ]
            }
        }
        "ResourceQuota" => {
            const {
                &[
                    f(1, "metadata", Msg("ObjectMeta")),
                    f(2, "spec", Msg("ResourceQuotaSpec")),
                ]
            }
        }
        "ResourceQuotaSpec" => const { &[f(1, "hard", MapQuantity), r(2, "scopes", Str)] },
        "EnvVar" => const { &[f(1, "name", Str), f(2, "value", Str)] },
        "ResourceRequirements" => {
            const { &[f(1, "limits", MapQuantity), f(2, "requests", MapQuantity)] }
        }
        _ => return None,
    })
}
