//! admissionregistration.k8s.io/v1: the admission webhooks' configurations (see
//! admission/webhook.rs) and the ValidatingAdmissionPolicies with their bindings (see
//! admission/validating_admission_policy.rs).

use k8s_openapi::api::admissionregistration::v1 as admissionregistration;

use super::KindRegistration;
use crate::strategy::admission_policy::{BindingStrategy, PolicyStrategy};
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
        KindRegistration::of::<admissionregistration::ValidatingAdmissionPolicy>()
            .subresources(&["status"])
            .with_strategy(PolicyStrategy)
            .with_printer(table::admissionregistration::POLICY),
        KindRegistration::of::<admissionregistration::ValidatingAdmissionPolicyBinding>()
            .with_strategy(BindingStrategy)
            .with_printer(table::admissionregistration::POLICY_BINDING),
    ]
}
