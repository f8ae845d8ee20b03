//! The protobuf messages of networking.k8s.io/v1: Ingresses (`kubectl create ingress`).

use super::Ty::*;
use super::{Field, f, r};

pub(super) fn schema(message: &str) -> Option<&'static [Field]> {
    Some(match message {
        "Ingress" => {
            const {
                &[
                    f(1, "metadata", Msg("ObjectMeta")),
                    f(2, "spec", Msg("IngressSpec")),
                ]
            }
        }
        "IngressSpec" => {
            const {
                &[
                    f(1, "defaultBackend", Msg("IngressBackend")),
                    r(2, "tls", Msg("IngressTLS")),
                    r(3, "rules", Msg("IngressRule")),
                    f(4, "ingressClassName", Str),
                ]
            }
        }
        "IngressRule" => {
            const {
                &[
                    f(1, "host", Str),
                    f(2, "ingressRuleValue", Inline("IngressRuleValue")),
                ]
            }
        }
        "IngressRuleValue" => const { &[f(1, "http", Msg("HTTPIngressRuleValue"))] },
        "HTTPIngressRuleValue" => const { &[r(1, "paths", Msg("HTTPIngressPath"))] },
        "HTTPIngressPath" => {
            const {
                &[
                    f(1, "path", Str),
                    f(2, "backend", Msg("IngressBackend")),
                    f(3, "pathType", Str),
                ]
            }
        }
        "IngressBackend" => const { &[f(4, "service", Msg("IngressServiceBackend"))] },
        "IngressServiceBackend" => {
            const { &[f(1, "name", Str), f(2, "port", Msg("ServiceBackendPort"))] }
        }
        "ServiceBackendPort" => const { &[f(1, "name", Str), f(2, "number", Int)] },
        "IngressTLS" => const { &[r(1, "hosts", Str), f(2, "secretName", Str)] },
        _ => return None,
    })
}
