//! Admission (Kubernetes' admission chain), run on writes after defaulting and before
//! validation. One plugin per module; the rest of the chain (NamespaceLifecycle, LimitRanger,
//! ServiceAccount, ResourceQuota, PodSecurity, ...) arrives with the security work.

pub mod priority;
