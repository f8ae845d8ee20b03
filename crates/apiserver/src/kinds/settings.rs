//! settings.k8s.io/v1alpha1: PodPresets, our own type (Kubernetes served it until 1.20).

use super::KindRegistration;
use crate::strategy::settings::PodPresetStrategy;

pub(super) fn kinds() -> Vec<KindRegistration> {
    vec![KindRegistration::of::<crate::settings::PodPreset>().with_strategy(PodPresetStrategy)]
}
