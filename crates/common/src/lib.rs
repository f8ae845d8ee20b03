//! What two or more rkube components need and no one component owns (as Kubernetes'
//! apimachinery is shared): resource quantities, resource quota evaluation and query
//! parameter decoding.

pub mod ci;
pub mod params;
pub mod quantity;
pub mod quota;
