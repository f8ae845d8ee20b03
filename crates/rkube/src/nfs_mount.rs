//! `rkube nfs-mount [-o OPTIONS] SERVER:/PATH TARGET`: mounts an NFS export through rkube's
//! userspace NFSv3 client (FUSE) and serves it until the mount is unmounted — the kubelet's
//! mount helper where the kernel has no NFS. Prints `mounted` on stdout once the mount is up
//! (what the kubelet waits for), then detaches stdout; logs to `--log-file` (removed when the
//! mount ends cleanly) or stderr.

use std::os::fd::AsRawFd as _;
use std::path::PathBuf;

use anyhow::Context as _;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Mount options, comma-separated (ro, port=, mountport=; kernel-only ones are ignored).
    #[arg(short = 'o')]
    options: Vec<String>,
    /// Where to log (the file is removed when the mount ends cleanly).
    #[arg(long)]
    log_file: Option<PathBuf>,
    /// The export, `SERVER:/PATH` (SERVER an IP address).
    source: String,
    /// The directory to mount it on.
    target: PathBuf,
}

/// Points `fd` at `file` (stderr at the log, stdout at /dev/null).
fn redirect(fd: i32, file: &std::fs::File) -> anyhow::Result<()> {
    // SAFETY: both descriptors are open; dup2 replaces `fd` atomically.
    if unsafe { libc::dup2(file.as_raw_fd(), fd) } < 0 {
        return Err(std::io::Error::last_os_error()).context("dup2");
    }
    Ok(())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(log) = &args.log_file {
        let f = std::fs::File::create(log)
            .with_context(|| format!("creating the log file {}", log.display()))?;
        redirect(2, &f)?;
    }
    let spec = nfs::MountSpec::parse(&args.source, &args.options)?;
    let session = nfs::mount(&spec, &args.target)?;
    println!("{}", kubelet::volumes::nfs::READY);
    // The kubelet stops reading once told; nothing more goes to stdout.
    let null = std::fs::OpenOptions::new().write(true).open("/dev/null")?;
    redirect(1, &null)?;
    nfs::serve(session)?;
    tracing::info!(target = %args.target.display(), "NFS mount ended");
    if let Some(log) = &args.log_file {
        let _ = std::fs::remove_file(log);
    }
    Ok(())
}
