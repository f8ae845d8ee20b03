//! The FUSE NFS client against a real NFS server: nfs-ganesha (VFS backend) in a network
//! namespace this test makes, NFSv3 over TCP. Needs root, /dev/fuse and ganesha; skips
//! without them, and fails instead under CI (`RKUBE_REQUIRE_ALL_TESTS`).

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::time::{Duration, Instant};

use nfs::testing::{self, Ganesha};
use nfs::{MountSpec, mount};

/// Polls `f` until it holds (attributes are cached for a second).
fn eventually(what: &str, mut f: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn is_mounted(p: &Path) -> bool {
    let p = p.canonicalize().unwrap_or_default();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(p.to_string_lossy().as_ref()))
}

fn exercise(mnt: &Path, export: &Path) -> anyhow::Result<()> {
    // write, read back, seen in the server's directory
    std::fs::write(mnt.join("hello.txt"), "hello over nfs\n")?;
    assert_eq!(
        std::fs::read_to_string(mnt.join("hello.txt"))?,
        "hello over nfs\n"
    );
    assert_eq!(
        std::fs::read_to_string(export.join("hello.txt"))?,
        "hello over nfs\n"
    );
    // append and a larger file (several READ/WRITE calls' worth)
    let big: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(mnt.join("big.bin"), &big)?;
    assert_eq!(std::fs::read(mnt.join("big.bin"))?, big);
    assert_eq!(std::fs::read(export.join("big.bin"))?, big);
    // mkdir, a file in it, readdir
    std::fs::create_dir(mnt.join("sub"))?;
    std::fs::write(mnt.join("sub/inner"), "x")?;
    let mut names: Vec<String> = std::fs::read_dir(mnt)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    names.sort();
    assert_eq!(names, ["big.bin", "hello.txt", "sub"]);
    assert!(std::fs::metadata(mnt.join("sub"))?.is_dir());
    // rename (across directories too)
    std::fs::rename(mnt.join("hello.txt"), mnt.join("renamed.txt"))?;
    assert!(!export.join("hello.txt").exists());
    assert_eq!(
        std::fs::read_to_string(export.join("renamed.txt"))?,
        "hello over nfs\n"
    );
    std::fs::rename(mnt.join("sub/inner"), mnt.join("moved"))?;
    assert!(export.join("moved").exists());
    // setattr: chmod and truncate
    std::fs::set_permissions(
        mnt.join("renamed.txt"),
        std::fs::Permissions::from_mode(0o640),
    )?;
    assert_eq!(
        std::fs::metadata(export.join("renamed.txt"))?.mode() & 0o777,
        0o640
    );
    std::fs::OpenOptions::new()
        .write(true)
        .open(mnt.join("big.bin"))?
        .set_len(10)?;
    assert_eq!(std::fs::metadata(export.join("big.bin"))?.len(), 10);
    // a write on the server shows through the mount (after the attribute cache's second)
    std::fs::write(export.join("from-server"), "server side")?;
    eventually("the server's file through the mount", || {
        std::fs::read_to_string(mnt.join("from-server")).is_ok_and(|s| s == "server side")
    })?;
    // symlink
    std::os::unix::fs::symlink("renamed.txt", mnt.join("link"))?;
    assert_eq!(
        std::fs::read_link(mnt.join("link"))?,
        Path::new("renamed.txt")
    );
    assert_eq!(
        std::fs::read_to_string(mnt.join("link"))?,
        "hello over nfs\n"
    );
    // unlink, rmdir
    for f in ["renamed.txt", "big.bin", "moved", "from-server", "link"] {
        std::fs::remove_file(mnt.join(f))?;
    }
    std::fs::remove_dir(mnt.join("sub"))?;
    assert_eq!(std::fs::read_dir(export)?.count(), 0);
    assert_eq!(std::fs::read_dir(mnt)?.count(), 0);
    Ok(())
}

#[test]
fn fuse_mount_against_ganesha() -> anyhow::Result<()> {
    let missing = testing::missing();
    if !missing.is_empty() {
        common::ci::skip(&format!("needs {}", missing.join(", ")));
        return Ok(());
    }
    let server = Ganesha::start("ct", 61)?;
    let spec = MountSpec::parse(&server.source(), &[])?;
    let tmp = tempfile::tempdir()?;
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt)?;
    let started = Instant::now();
    let session = mount(&spec, &mnt)?.spawn()?;
    eprintln!("mounted in {:?}", started.elapsed());
    assert!(is_mounted(&mnt));
    let result = exercise(&mnt, &server.export);
    // Unmounted from outside, as the kubelet does: the session ends by itself.
    let out = std::process::Command::new("umount").arg(&mnt).output()?;
    assert!(out.status.success(), "umount: {out:?}");
    session.join()?;
    assert!(!is_mounted(&mnt));
    if let Err(e) = result {
        anyhow::bail!("{e:#}\nganesha's log:\n{}", server.log());
    }

    // Errors name what is wrong: an export the server does not have, a server not there.
    let missing_export = MountSpec::parse(&format!("{}:/nope", server.ip), &[])?;
    let err = mount(&missing_export, &mnt).err().map(|e| format!("{e:#}"));
    assert!(
        err.as_deref()
            .is_some_and(|e| e.contains("refused export \"/nope\"")),
        "{err:?}"
    );
    let closed = MountSpec::parse(&server.source(), &["port=2050,mountport=2051".into()])?;
    let err = mount(&closed, &mnt).err().map(|e| format!("{e:#}"));
    assert!(
        err.as_deref().is_some_and(|e| e.contains("refused")),
        "{err:?}"
    );
    assert!(!is_mounted(&mnt));
    Ok(())
}
