//! storage.k8s.io/v1: StorageClasses.

use k8s_openapi::api::storage::v1 as storage;

use super::KindRegistration;
use crate::strategy::volume::StorageClassStrategy;
use crate::table;

pub(super) fn kinds() -> Vec<KindRegistration> {
    vec![
        KindRegistration::of::<storage::StorageClass>()
            .short(&["sc"])
            .with_strategy(StorageClassStrategy)
            .with_printer(table::storage::STORAGE_CLASS),
    ]
}
