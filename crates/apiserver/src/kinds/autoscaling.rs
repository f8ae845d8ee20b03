//! autoscaling: HorizontalPodAutoscalers at v2 (stored) and v1 (the same objects, converted;
//! see [`crate::conversion::HpaV1`]).

use k8s_openapi::api::autoscaling::{v1, v2};

use super::KindRegistration;
use crate::strategy::autoscaling::HpaStrategy;
use crate::table;

pub(super) fn kinds() -> Vec<KindRegistration> {
    vec![
        KindRegistration::of::<v2::HorizontalPodAutoscaler>()
            .short(&["hpa"])
            .all()
            .subresources(&["status"])
            .with_strategy(HpaStrategy { v1: false })
            .with_printer(table::hpa::PRINTER),
        KindRegistration::of::<v1::HorizontalPodAutoscaler>()
            .short(&["hpa"])
            .all()
            .subresources(&["status"])
            .with_strategy(HpaStrategy { v1: true })
            .with_printer(table::hpa::PRINTER)
            .with_conversion(crate::conversion::HpaV1),
    ]
}
