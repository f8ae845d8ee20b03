//! discovery.k8s.io/v1: EndpointSlices.

use k8s_openapi::api::discovery::v1 as discovery;

use super::KindRegistration;
use crate::table;

pub(super) fn kinds() -> Vec<KindRegistration> {
    vec![
        KindRegistration::of::<discovery::EndpointSlice>()
            .with_printer(table::networking::ENDPOINT_SLICE),
    ]
}
