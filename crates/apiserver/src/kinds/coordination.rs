//! coordination.k8s.io/v1: Leases.

use k8s_openapi::api::coordination::v1 as coordination;

use super::KindRegistration;
use crate::table;

pub(super) fn kinds() -> Vec<KindRegistration> {
    vec![KindRegistration::of::<coordination::Lease>().with_printer(table::coordination::LEASE)]
}
