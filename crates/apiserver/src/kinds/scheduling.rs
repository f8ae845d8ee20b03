//! scheduling.k8s.io/v1: PriorityClasses.

use k8s_openapi::api::scheduling::v1 as scheduling;

use super::KindRegistration;
use crate::table;

pub(super) fn kinds() -> Vec<KindRegistration> {
    vec![
        KindRegistration::of::<scheduling::PriorityClass>()
            .short(&["pc"])
            .with_printer(table::scheduling::PRIORITY_CLASS),
    ]
}
