//! What two or more rkube components need and no one component owns (as Kubernetes'
//! apimachinery and component-helpers are shared): resource quantities, resource quota
//! evaluation, query parameter decoding, label selectors, and node selection rules
//! (node affinity terms, taint tolerations).

pub mod ci;
pub mod params;
pub mod quantity;
pub mod quota;
pub mod scheduling;
pub mod selectors;
