//! events.k8s.io/v1: the newer Event API over the same objects' kind (default table, as
//! upstream; they expire as core/v1 Events do).

use k8s_openapi::api::events::v1 as events;

use super::KindRegistration;
use super::core::EventHooks;

pub(super) fn kinds() -> Vec<KindRegistration> {
    vec![
        KindRegistration::of::<events::Event>()
            .short(&["ev"])
            .with_hooks(EventHooks),
    ]
}
