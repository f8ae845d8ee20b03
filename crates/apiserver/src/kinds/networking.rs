//! networking.k8s.io/v1: Ingresses, IngressClasses and NetworkPolicies.

use k8s_openapi::api::networking::v1 as networking;

use super::KindRegistration;
use crate::strategy::Generic;
use crate::table;

pub(super) fn kinds() -> Vec<KindRegistration> {
    vec![
        KindRegistration::of::<networking::Ingress>()
            .short(&["ing"])
            .subresources(&["status"])
            .with_strategy(Generic::tracking_generation())
            .with_printer(table::networking::INGRESS),
        KindRegistration::of::<networking::IngressClass>()
            .with_printer(table::networking::INGRESS_CLASS),
        KindRegistration::of::<networking::NetworkPolicy>()
            .short(&["netpol"])
            .with_strategy(Generic::tracking_generation())
            .with_printer(table::networking::NETWORK_POLICY),
    ]
}
