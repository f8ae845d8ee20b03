//! What two or more rkube components need and no one component owns (as Kubernetes'
//! apimachinery is shared): resource quantities and resource quota evaluation.

pub mod quantity;
pub mod quota;
