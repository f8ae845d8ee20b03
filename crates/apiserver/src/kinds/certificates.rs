//! certificates.k8s.io/v1: CertificateSigningRequests.

use k8s_openapi::api::certificates::v1 as certificates;

use super::KindRegistration;
use crate::strategy::certificates::CsrStrategy;
use crate::table;

pub(super) fn kinds() -> Vec<KindRegistration> {
    vec![
        KindRegistration::of::<certificates::CertificateSigningRequest>()
            .short(&["csr"])
            .subresources(&["status", "approval"])
            .with_strategy(CsrStrategy)
            .with_printer(table::certificates::CERTIFICATE_SIGNING_REQUEST),
    ]
}
