//! apiregistration.k8s.io/v1: APIServices, the group-versions this server answers for
//! itself (`Local`) or proxies to an extension API server ([`crate::aggregator`]).

use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1 as apiregistration;

use super::KindRegistration;
use crate::strategy::apiservice::ApiServiceStrategy;
use crate::table::apiservice::API_SERVICE;

pub(super) fn kinds() -> Vec<KindRegistration> {
    vec![
        KindRegistration::of::<apiregistration::APIService>()
            .subresources(&["status"])
            .with_strategy(ApiServiceStrategy)
            .with_printer(API_SERVICE),
    ]
}
