//! apiextensions.k8s.io/v1: CustomResourceDefinitions. The kinds they define are
//! registered while the server runs ([`crate::customresource`]).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;

use super::KindRegistration;
use crate::strategy::apiextensions::{CrdHooks, CrdStrategy};

pub(super) fn kinds() -> Vec<KindRegistration> {
    vec![
        KindRegistration::of::<apiextensions::CustomResourceDefinition>()
            .short(&["crd", "crds"])
            .subresources(&["status"])
            .with_strategy(CrdStrategy)
            .with_hooks(CrdHooks),
    ]
}
