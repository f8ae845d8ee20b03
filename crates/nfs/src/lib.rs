//! A userspace NFSv3 client mounted through FUSE, for nodes whose kernel has no NFS: `rkube
//! nfs-mount SERVER:/PATH TARGET` runs [`mount`] and serves the mount until it is unmounted.
//! See the crate's README for what it supports.

pub mod client;
pub mod fs;
pub mod mount;
pub mod spec;
#[cfg(feature = "testing")]
pub mod testing;

pub use client::{Client, NfsError};
pub use fs::NfsFs;
pub use mount::{mount, serve};
pub use spec::{MountSpec, SpecError};
