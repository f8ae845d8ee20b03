//! `rkube ctr ARGS...`: containerd's own client, `ctr`, pointed at the agent's containerd and
//! the `k8s.io` namespace, where the CRI (and so the kubelet) keeps its images, containers
//! and tasks. rkube replaces itself with `ctr`, which keeps its output, exit code and
//! terminal handling exactly.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::Endpoint;

/// The CRI's containerd namespace (containerd's `constants.K8sContainerdNamespace`).
const K8S_NAMESPACE: &str = "k8s.io";

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    endpoint: Endpoint,
    /// Arguments for ctr (e.g. `images ls`, `tasks ls`); after `--` when they start with `-`
    #[arg(
        value_name = "ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    args: Vec<OsString>,
}

/// `ctr` from PATH (Debian puts it in /usr/bin).
fn find_ctr() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join("ctr"))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let Some(ctr) = find_ctr() else {
        anyhow::bail!(
            "ctr is not installed: it comes with containerd (Debian: apt-get install containerd)"
        );
    };
    let socket = args.endpoint.socket()?;
    if !socket.exists() {
        anyhow::bail!(
            "no containerd socket at {}: is the node's agent (rkube agent or rkube server) \
             running? Give its --data-dir, or --runtime-endpoint",
            socket.display()
        );
    }
    let mut cmd = std::process::Command::new(&ctr);
    cmd.arg("--address")
        .arg(&socket)
        .args(["--namespace", K8S_NAMESPACE])
        .args(&args.args);
    // exec only returns on failure.
    let err = cmd.exec();
    Err(err).with_context(|| format!("running {}", ctr.display()))
}
