//! Mounting: the export connected and checked first (so a bad server or export fails the
//! mount with its reason), then the FUSE mount, then serving until someone unmounts it.

use std::path::Path;

use anyhow::Context as _;
use fuser::{Config, MountOption, Session, SessionACL};
use tracing::info;

use crate::client::Client;
use crate::fs::NfsFs;
use crate::spec::MountSpec;

/// The FUSE subtype. Mounts show as type `fuse` (`fuse.rkube-nfs` when mounted through
/// fusermount3, i.e. not as root) with `SERVER:/PATH` as their source.
pub const SUBTYPE: &str = "rkube-nfs";

/// Connects to the export and mounts it at `target`; the session still has to be served
/// ([`serve`]) for file operations to be answered.
pub fn mount(spec: &MountSpec, target: &Path) -> anyhow::Result<Session<NfsFs>> {
    let client = Client::connect(spec)?;
    let fs =
        NfsFs::new(client).with_context(|| format!("reading the root of {}", spec.source()))?;
    let mut options = vec![
        MountOption::FSName(spec.source()),
        MountOption::Subtype(SUBTYPE.into()),
        // The kernel checks permissions against the server's modes and owners, since calls
        // go to the server as root.
        MountOption::DefaultPermissions,
        MountOption::NoDev,
        MountOption::NoSuid,
    ];
    if spec.read_only {
        options.push(MountOption::RO);
    }
    let mut config = Config::default();
    config.mount_options = options;
    // Containers run as any user, as with a kernel NFS mount.
    config.acl = SessionACL::All;
    let session = Session::new(fs, target, &config)
        .with_context(|| format!("FUSE mount of {} at {}", spec.source(), target.display()))?;
    info!(source = %spec.source(), target = %target.display(), read_only = spec.read_only, "NFS export mounted through FUSE");
    Ok(session)
}

/// Serves the mount until it is unmounted (`umount`, `fusermount3 -u`).
pub fn serve(session: Session<NfsFs>) -> anyhow::Result<()> {
    session.run().context("serving the FUSE mount")
}
