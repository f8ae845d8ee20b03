//! admissionregistration.k8s.io/v1: the admission webhooks' configurations (see
//! admission/webhook.rs).

use k8s_openapi::api::admissionregistration::v1 as admissionregistration;

use super::KindRegistration;
use crate::strategy::admissionregistration::WebhookStrategy;
use crate::table;

pub(super) fn kinds() -> Vec<KindRegistration> {
    vec![
        KindRegistration::of::<admissionregistration::MutatingWebhookConfiguration>()
            .with_strategy(WebhookStrategy { mutating: true })
            .with_printer(table::admissionregistration::WEBHOOK_CONFIGURATION),
        KindRegistration::of::<admissionregistration::ValidatingWebhookConfiguration>()
            .with_strategy(WebhookStrategy { mutating: false })
            .with_printer(table::admissionregistration::WEBHOOK_CONFIGURATION),
    ]
}
