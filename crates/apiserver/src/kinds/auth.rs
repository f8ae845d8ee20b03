//! authentication.k8s.io/v1 and authorization.k8s.io/v1: reviews, answered on create and
//! never stored.

use k8s_openapi::api::{authentication::v1 as authentication, authorization::v1 as authorization};

use super::{KindRegistration, Review};

pub(super) fn kinds() -> Vec<KindRegistration> {
    vec![
        KindRegistration::of::<authentication::TokenReview>().with_review(Review::Token),
        KindRegistration::of::<authentication::SelfSubjectReview>().with_review(Review::Access),
        KindRegistration::of::<authorization::SubjectAccessReview>().with_review(Review::Access),
        KindRegistration::of::<authorization::SelfSubjectAccessReview>()
            .with_review(Review::Access),
        KindRegistration::of::<authorization::LocalSubjectAccessReview>()
            .with_review(Review::Access),
        KindRegistration::of::<authorization::SelfSubjectRulesReview>().with_review(Review::Access),
    ]
}
