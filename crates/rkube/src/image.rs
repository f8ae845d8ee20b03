//! `rkube image build`: an OCI image tarball from host files, for air-gapped nodes (drop it in
//! `<data-dir>/agent/images/`) or to push to a registry (`skopeo copy oci-archive:…`).

use std::path::PathBuf;

use anyhow::{Context, bail};
use kubelet::images::{ImageBuilder, busybox_image};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Build a one-layer image from host directories (and optionally Debian's busybox-static).
    Build(BuildArgs),
}

#[derive(clap::Args)]
pub struct BuildArgs {
    /// The image's name, e.g. rkube.local/web:1 (":latest" when untagged).
    tag: String,
    /// Where to write the OCI image-layout tarball.
    #[arg(short, long)]
    output: PathBuf,
    /// Start from a static busybox (a shell and the usual tools): the host's /bin/busybox,
    /// or the given static binary.
    #[arg(long, num_args = 0..=1, default_missing_value = "/bin/busybox")]
    busybox: Option<PathBuf>,
    /// Copy a host directory into the image: HOST_DIR[:PATH_IN_IMAGE] (default "/"); repeatable.
    #[arg(long = "dir", value_name = "HOST_DIR[:PATH]")]
    dirs: Vec<String>,
    /// The entrypoint, one argument per flag.
    #[arg(long = "entrypoint", value_name = "ARG", allow_hyphen_values = true)]
    entrypoint: Vec<String>,
    /// The default command, after `--` (e.g. `-- httpd -f -p 8080`).
    #[arg(last = true, value_name = "CMD")]
    cmd: Vec<String>,
    /// KEY=value added to the image's environment; repeatable.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// The working directory.
    #[arg(long)]
    workdir: Option<String>,
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Build(args) => build(args),
    }
}

fn build(args: BuildArgs) -> anyhow::Result<()> {
    if args.busybox.is_none() && args.dirs.is_empty() {
        bail!("nothing to put in the image: give --dir HOST_DIR[:PATH] and/or --busybox");
    }
    let mut b = match &args.busybox {
        Some(bin) => busybox_image(bin, &args.tag)
            .with_context(|| format!("adding busybox from {}", bin.display()))?,
        None => ImageBuilder::new(&args.tag),
    };
    for spec in &args.dirs {
        let (host, at) = spec.split_once(':').unwrap_or((spec.as_str(), "/"));
        b.add_host_dir(host.as_ref(), at)
            .with_context(|| format!("adding {host} at {at}"))?;
    }
    if !args.entrypoint.is_empty() {
        b = b.entrypoint(args.entrypoint.clone());
    }
    if !args.cmd.is_empty() {
        b = b.cmd(args.cmd.clone());
    }
    for var in &args.env {
        if !var.contains('=') {
            bail!("--env {var:?}: expected KEY=VALUE");
        }
        b = b.env(var.clone());
    }
    if let Some(dir) = &args.workdir {
        b = b.working_dir(dir.clone());
    }
    let image = b.build().context("building the image")?;
    image
        .write_to(&args.output)
        .with_context(|| format!("writing {}", args.output.display()))?;
    println!(
        "{} {} ({} bytes) -> {}",
        image.reference,
        image.manifest_digest,
        image.tarball.len(),
        args.output.display()
    );
    Ok(())
}
