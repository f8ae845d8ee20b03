//! `rkube crictl` and `rkube ctr`: the node's containers as the kubelet's runtime sees them,
//! as k3s offers `k3s crictl` and `k3s ctr`. crictl's subcommands that matter when looking at
//! a node (`ps`, `pods`, `images`, `logs`, `inspect`, `exec`, `rmi`) are built in, on the
//! kubelet's own CRI client, and print what kubernetes-sigs/cri-tools' crictl prints, so its
//! documentation, habits and scripts carry over. `ctr` hands over to containerd's own tool
//! with the agent's socket and the `k8s.io` namespace, where the CRI keeps everything.

mod ctr;
mod exec;
mod gojson;
mod images;
mod inspect;
mod logs;
mod pods;
mod protojson;
mod ps;
mod stream;
mod table;
mod term;
mod timefmt;
mod yaml;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use kubelet::{AgentDirs, RuntimeClient};

pub use ctr::{Args as CtrArgs, run as run_ctr};

/// Where `rkube agent` keeps its files by default, and where `rkube server` keeps its node's.
const AGENT_DATA_DIR: &str = "/var/lib/rkube";
const SERVER_DATA_DIR: &str = "/var/lib/rkube/server";

/// How long to wait for the runtime to answer before giving up.
const CONNECT_WAIT: Duration = Duration::from_secs(10);

/// Which runtime to talk to: the agent's containerd under a data dir, or a given endpoint.
#[derive(clap::Args, Clone, Debug)]
pub struct Endpoint {
    /// The agent's data directory, as given to `rkube agent` or `rkube server` (default:
    /// /var/lib/rkube, else /var/lib/rkube/server, whichever has a running containerd).
    #[arg(long, env = "RKUBE_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// A CRI socket to use instead of the agent's containerd (`unix:///path` or `/path`).
    #[arg(long, global = true, value_name = "ENDPOINT")]
    runtime_endpoint: Option<String>,
}

impl Endpoint {
    /// The runtime's socket: `--runtime-endpoint`, else the agent's containerd socket.
    pub fn socket(&self) -> anyhow::Result<PathBuf> {
        if let Some(e) = &self.runtime_endpoint {
            return kubelet::cri::parse_endpoint(e)
                .with_context(|| format!("--runtime-endpoint {e}"));
        }
        let socket = |d: &Path| AgentDirs::new(d).containerd_socket;
        Ok(match &self.data_dir {
            Some(d) => socket(d),
            // An agent's node, else a server's: the first whose containerd runs.
            None => [AGENT_DATA_DIR, SERVER_DATA_DIR]
                .iter()
                .map(|d| socket(Path::new(d)))
                .find(|s| s.exists())
                .unwrap_or_else(|| socket(Path::new(AGENT_DATA_DIR))),
        })
    }

    /// A CRI client for the runtime, once it answers.
    async fn connect(&self) -> anyhow::Result<RuntimeClient> {
        let socket = self.socket()?;
        if !socket.exists() {
            anyhow::bail!(
                "no containerd socket at {}: is the node's agent (rkube agent or rkube server) \
                 running? Give its --data-dir, or --runtime-endpoint",
                socket.display()
            );
        }
        let client = RuntimeClient::lazy(&socket);
        client
            .wait_ready(CONNECT_WAIT)
            .await
            .with_context(|| format!("connecting to the runtime at {}", socket.display()))?;
        Ok(client)
    }
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    endpoint: Endpoint,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// List containers
    Ps(ps::Args),
    /// List pods
    Pods(pods::Args),
    /// List images
    #[command(visible_aliases = ["image", "img"])]
    Images(images::ListArgs),
    /// Fetch the logs of a container
    Logs(logs::Args),
    /// Display the status of one or more containers
    Inspect(inspect::Args),
    /// Run a command in a running container
    Exec(exec::Args),
    /// Remove one or more images
    Rmi(images::RmiArgs),
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
    let result = rt.block_on(async move {
        let cri = args.endpoint.connect().await?;
        match args.command {
            Command::Ps(a) => ps::run(&cri, a).await.map(|()| 0),
            Command::Pods(a) => pods::run(&cri, a).await.map(|()| 0),
            Command::Images(a) => images::list(&cri, a).await.map(|()| 0),
            Command::Logs(a) => logs::run(&cri, a).await.map(|()| 0),
            Command::Inspect(a) => inspect::run(&cri, a).await.map(|()| 0),
            Command::Exec(a) => exec::run(&cri, a).await,
            Command::Rmi(a) => images::rmi(&cri, a).await.map(|()| 0),
        }
    });
    // An interactive exec may leave a thread blocked reading stdin: do not wait for it.
    rt.shutdown_background();
    let code = result?;
    if code != 0 {
        let _ = std::io::stdout().flush();
        // exec's exit code is the command's, as `kubectl exec` does.
        std::process::exit(code);
    }
    Ok(())
}

/// Writes to stdout; a closed pipe (`| head`) ends the output quietly.
pub(crate) fn out(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("writing output"),
        _ => Ok(()),
    }
}

/// crictl's `outputProtobufObjAsJSON` / `…AsYAML` for a list response; `None` for a table.
pub(crate) fn print_structured(v: &serde_json::Value, output: &str) -> anyhow::Result<bool> {
    match output {
        "json" => out(&format!("{}\n", gojson::pretty(v, gojson::Flavor::Proto)))?,
        // fmt.Println after YAML that already ends in a newline.
        "yaml" => out(&format!("{}\n", yaml::to_yaml(v)))?,
        "table" => return Ok(false),
        other => anyhow::bail!("unsupported output format {other:?}"),
    }
    Ok(true)
}

/// crictl's `Labels:`/`Annotations:` blocks of its verbose listings, keys sorted.
pub(crate) fn verbose_map(
    title: &str,
    m: &std::collections::HashMap<String, String>,
    text: &mut String,
) {
    // Go leaves a map with no entries nil after decoding, and crictl skips nil maps.
    if m.is_empty() {
        return;
    }
    text.push_str(title);
    text.push_str(":\n");
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    for k in keys {
        text.push_str(&format!("\t{k} -> {}\n", m[k]));
    }
}

/// logrus' text form for a warning or information on stderr, as crictl logs them.
pub(crate) fn log(level: &str, msg: &str) {
    eprintln!(
        "time=\"{}\" level={level} msg={:?}",
        timefmt::rfc3339_nano_local(timefmt::now_nanos() / 1_000_000_000 * 1_000_000_000),
        msg
    );
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    fn parses(args: &[&str]) -> bool {
        crate::Cli::try_parse_from(args.iter()).is_ok()
    }

    #[test]
    fn the_command_lines_parse_as_crictls_do() {
        crate::Cli::command().debug_assert();
        // Short flags combine; --data-dir goes before or after the subcommand.
        assert!(parses(&[
            "rkube",
            "crictl",
            "ps",
            "-aq",
            "--data-dir",
            "/d"
        ]));
        assert!(parses(&[
            "rkube",
            "crictl",
            "--data-dir",
            "/d",
            "pods",
            "-o",
            "json"
        ]));
        assert!(parses(&["rkube", "crictl", "img", "-f", "dangling=true"]));
        assert!(parses(&[
            "rkube", "crictl", "logs", "--tail", "-1", "-ft", "abc"
        ]));
        assert!(parses(&["rkube", "crictl", "inspect", "abc", "def"]));
        assert!(parses(&["rkube", "crictl", "rmi", "--prune"]));
        assert!(!parses(&["rkube", "crictl", "rmi"]));
        assert!(parses(&[
            "rkube", "crictl", "exec", "-it", "abc", "sh", "-c", "ls -l"
        ]));
        assert!(!parses(&["rkube", "crictl", "exec"]));
        assert!(parses(&[
            "rkube",
            "ctr",
            "--data-dir",
            "/d",
            "images",
            "ls",
            "-q"
        ]));
        assert!(parses(&["rkube", "ctr", "--", "--help"]));
    }
}
