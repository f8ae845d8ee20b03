//! `crictl exec`: a command in a running container. Without `-i`/`-t` it runs through CRI
//! `ExecSync` (output printed once the command is done); with them through CRI `Exec` and the
//! runtime's stream server ([`super::stream`]), stdin and the terminal attached. Either way
//! rkube exits with the command's exit code, as `kubectl exec` does.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use kubelet::RuntimeClient;

use super::ps::{self, ListOptions};
use super::{stream, table};

/// The deadline of an exec without `--timeout`: long enough for any interactive use.
const NO_TIMEOUT_DEADLINE: Duration = Duration::from_secs(24 * 3600);

#[derive(clap::Args)]
pub struct Args {
    /// Run the command synchronously (ExecSync), printing its output as crictl's --sync does
    #[arg(short, long)]
    sync: bool,
    /// Timeout in seconds
    #[arg(long, default_value_t = 0)]
    timeout: i64,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    tty: bool,
    /// Keep STDIN open
    #[arg(short, long)]
    interactive: bool,
    /// Transport protocol to use, one of: spdy (websocket is not supported here)
    #[arg(short = 'r', long, default_value = "spdy")]
    transport: String,
    /// Exec command for all containers matching this name filter regular expression pattern
    #[arg(long)]
    name: Option<String>,
    /// Exec command for all containers matching this pod ID filter
    #[arg(short, long)]
    pod: Option<String>,
    /// Exec command for all containers matching this container image filter
    #[arg(long)]
    image: Option<String>,
    /// Exec command for all containers matching this container state filter
    #[arg(long)]
    state: Option<String>,
    /// Exec command for all containers matching this key=value label filter
    #[arg(long = "label")]
    labels: Vec<String>,
    /// Exec command for the most recently created container
    #[arg(short, long)]
    latest: bool,
    /// Exec command for all last n containers, set to 0 for unlimited
    #[arg(short = 'n', long)]
    last: Option<i64>,
    /// Do not print the container ID if multiple containers are selected
    #[arg(short, long)]
    quiet: bool,
    /// Ignore errors during command execution
    #[arg(short = 'e', long)]
    ignore_errors: bool,
    /// Run the command in parallel if multiple containers are selected (here: one by one)
    #[arg(short = 'x', long)]
    parallel: bool,
    /// [CONTAINER-ID] COMMAND [ARG...]; no CONTAINER-ID when a filter flag is given
    #[arg(
        value_name = "ARGS",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    args: Vec<String>,
}

impl Args {
    /// Whether containers are chosen by filters rather than by ID (crictl: any filter set).
    fn by_filter(&self) -> bool {
        self.name.is_some()
            || self.pod.is_some()
            || self.image.is_some()
            || self.state.is_some()
            || !self.labels.is_empty()
            || self.latest
            || self.last.is_some()
    }
}

/// Runs the command in each chosen container; returns the exit code to leave with (the first
/// non-zero one).
pub async fn run(cri: &RuntimeClient, a: Args) -> anyhow::Result<i32> {
    if a.transport != "spdy" {
        anyhow::bail!("transport {:?} is not supported: use spdy", a.transport);
    }
    if a.tty && !a.interactive {
        anyhow::bail!("tty=true must be specified with interactive=true");
    }
    let (ids, cmd, print_ids) = if a.by_filter() {
        let opts = ListOptions {
            pod_id: a.pod.clone(),
            name: a.name.clone(),
            image: a.image.clone(),
            state: a.state.clone(),
            labels: table::parse_labels(&a.labels)?,
            latest: a.latest,
            last: a.last.unwrap_or(0),
            ..Default::default()
        };
        let found = ps::list(cri, &opts).await.context("listing containers")?;
        if found.is_empty() {
            anyhow::bail!("No containers found per filter flags");
        }
        let ids: Vec<String> = found.into_iter().map(|c| c.id).collect();
        (ids, a.args.clone(), !a.quiet && !a.parallel)
    } else {
        let [id, cmd @ ..] = a.args.as_slice() else {
            anyhow::bail!("give CONTAINER-ID and COMMAND");
        };
        if cmd.is_empty() {
            anyhow::bail!("give the COMMAND to run in container {id}");
        }
        (vec![id.clone()], cmd.to_vec(), false)
    };
    if a.ignore_errors && !a.quiet {
        super::log(
            "warning",
            "The `--ignore-errors` option has been set all errors returned by the command will be ignored.",
        );
    }
    let mut code = 0;
    let mut errors = Vec::new();
    for id in &ids {
        if print_ids {
            super::out(&format!("{id}:\n"))?;
        }
        match exec_one(cri, id, &cmd, &a).await {
            Ok(c) => {
                if code == 0 {
                    code = c;
                }
            }
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    if a.ignore_errors {
        return Ok(0);
    }
    if !errors.is_empty() {
        anyhow::bail!("{}", errors.join("\n"));
    }
    Ok(code)
}

async fn exec_one(cri: &RuntimeClient, id: &str, cmd: &[String], a: &Args) -> anyhow::Result<i32> {
    if a.interactive || a.tty {
        return stream::exec(cri, id, cmd, a.interactive, a.tty)
            .await
            .with_context(|| format!("execing command in container {id}"));
    }
    let timeout = Duration::from_secs(u64::try_from(a.timeout).unwrap_or(0));
    // The client's deadline is the command's timeout plus its own: without a timeout the
    // command may run as long as it likes.
    let client = if timeout.is_zero() {
        cri.clone().with_request_timeout(NO_TIMEOUT_DEADLINE)
    } else {
        cri.clone()
    };
    let argv: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let what = if a.sync { " synchronously" } else { "" };
    let r = client
        .exec_sync(id, &argv, timeout)
        .await
        .with_context(|| format!("execing command in container {id}{what}"))?;
    if a.sync {
        // crictl --sync prints both outputs to stdout, each followed by a newline.
        let mut text = r.stdout;
        text.push(b'\n');
        text.extend_from_slice(&r.stderr);
        text.push(b'\n');
        write_all(&mut std::io::stdout(), &text)?;
    } else {
        write_all(&mut std::io::stdout(), &r.stdout)?;
        write_all(&mut std::io::stderr(), &r.stderr)?;
    }
    Ok(r.exit_code)
}

fn write_all(w: &mut impl Write, data: &[u8]) -> anyhow::Result<()> {
    match w.write_all(data).and_then(|()| w.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("writing output"),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn the_command_keeps_its_own_flags() {
        let c = Cmd::try_parse_from(["exec", "-i", "abc", "sh", "-c", "exit 3"]).unwrap();
        assert!(c.args.interactive && !c.args.tty && !c.args.by_filter());
        assert_eq!(c.args.args, ["abc", "sh", "-c", "exit 3"]);
        let c = Cmd::try_parse_from(["exec", "--name", "web", "ls", "-l"]).unwrap();
        assert!(c.args.by_filter());
        assert_eq!(c.args.args, ["ls", "-l"]);
    }
}
