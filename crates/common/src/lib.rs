//! What two or more rkube components need and no one component owns (as Kubernetes'
//! apimachinery and component-helpers are shared): resource quantities, resource quota
//! evaluation, URL queries and query parameter decoding, label selectors, node selection
//! rules (node affinity terms, taint tolerations), and values printed as Go prints them.

pub mod certs;
pub mod ci;
pub mod duration;
pub mod gofmt;
pub mod heap;
pub mod params;
pub mod quantity;
pub mod query;
pub mod quota;
pub mod scheduling;
pub mod selectors;
pub mod storage;
