//! policy/v1: PodDisruptionBudgets.

use k8s_openapi::api::policy::v1 as policy;

use super::KindRegistration;
use crate::strategy::Generic;
use crate::table;

pub(super) fn kinds() -> Vec<KindRegistration> {
    vec![
        KindRegistration::of::<policy::PodDisruptionBudget>()
            .short(&["pdb"])
            .subresources(&["status"])
            .with_strategy(Generic::tracking_generation())
            .with_printer(table::policy::POD_DISRUPTION_BUDGET),
    ]
}
