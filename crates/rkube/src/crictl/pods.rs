//! `crictl pods`: pod sandboxes, newest first.

use anyhow::Context;
use kubelet::RuntimeClient;
use kubelet::cri::api;

use super::table::{self, Listing, Mode};
use super::{print_structured, protojson, timefmt, verbose_map};

#[derive(clap::Args)]
pub struct Args {
    /// filter by pod id
    #[arg(long)]
    id: Option<String>,
    /// Filter by pod name regular expression pattern
    #[arg(long)]
    name: Option<String>,
    /// Filter by pod namespace regular expression pattern
    #[arg(long)]
    namespace: Option<String>,
    /// Filter by pod state
    #[arg(short, long)]
    state: Option<String>,
    /// Filter by key=value label
    #[arg(long = "label")]
    labels: Vec<String>,
    /// Show verbose info for pods
    #[arg(short, long)]
    verbose: bool,
    /// List only pod IDs
    #[arg(short, long)]
    quiet: bool,
    /// Output format, One of: json|yaml|table
    #[arg(short, long, default_value = "table")]
    output: String,
    /// Show the most recently created pod
    #[arg(short, long)]
    latest: bool,
    /// Show last n recently created pods. Set 0 for unlimited
    #[arg(short = 'n', long, default_value_t = 0)]
    last: i64,
    /// Show output without truncating the ID
    #[arg(long)]
    no_trunc: bool,
}

/// crictl's `convertPodState`.
fn state_name(state: i32) -> anyhow::Result<&'static str> {
    Ok(match api::PodSandboxState::try_from(state) {
        Ok(api::PodSandboxState::SandboxReady) => "Ready",
        Ok(api::PodSandboxState::SandboxNotready) => "NotReady",
        Err(_) => anyhow::bail!("unknown pod state \"{state}\""),
    })
}

/// crictl's `getSandboxesRuntimeHandler`.
fn runtime_handler(p: &api::PodSandbox) -> &str {
    if p.runtime_handler.is_empty() {
        "(default)"
    } else {
        &p.runtime_handler
    }
}

/// crictl's `ListPodSandboxes`: the runtime's filter, then name and namespace, newest first.
async fn list(cri: &RuntimeClient, a: &Args) -> anyhow::Result<Vec<api::PodSandbox>> {
    let state = match a.state.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(match s.to_lowercase().as_str() {
            "ready" => api::PodSandboxState::SandboxReady,
            "notready" => api::PodSandboxState::SandboxNotready,
            _ => anyhow::bail!("--state should be ready or notready"),
        }),
    };
    let filter = api::PodSandboxFilter {
        id: a.id.clone().unwrap_or_default(),
        state: state.map(|s| api::PodSandboxStateValue { state: s as i32 }),
        label_selector: table::parse_labels(&a.labels)?,
    };
    let pods = cri
        .list_pod_sandbox(Some(filter))
        .await
        .context("call list sandboxes RPC")?;
    let name_re = table::compile_regex(a.name.as_deref())?;
    let ns_re = table::compile_regex(a.namespace.as_deref())?;
    let mut kept: Vec<api::PodSandbox> = pods
        .into_iter()
        .filter(|p| {
            p.metadata.as_ref().is_some_and(|m| {
                table::matches(name_re.as_ref(), &m.name)
                    && table::matches(ns_re.as_ref(), &m.namespace)
            })
        })
        .collect();
    kept.sort_by_key(|c| std::cmp::Reverse(c.created_at));
    kept.truncate(table::truncate_count(kept.len(), a.latest, a.last));
    Ok(kept)
}

pub async fn run(cri: &RuntimeClient, a: Args) -> anyhow::Result<()> {
    let pods = list(cri, &a).await.context("listing pod sandboxes")?;
    let items = pods.iter().map(protojson::sandbox).collect();
    if print_structured(&protojson::list_response("items", items), &a.output)? {
        return Ok(());
    }
    let mut listing = Listing::new(
        a.quiet,
        a.verbose,
        &[
            "POD ID",
            "CREATED",
            "STATE",
            "NAME",
            "NAMESPACE",
            "ATTEMPT",
            "RUNTIME",
        ],
    );
    for p in &pods {
        if listing.mode() == Mode::Ids {
            listing.id(&p.id);
            continue;
        }
        let state = state_name(p.state)?;
        let meta = p.metadata.clone().unwrap_or_default();
        if listing.mode() == Mode::Table {
            let id = if a.no_trunc {
                p.id.clone()
            } else {
                table::truncate_id(&p.id, "")
            };
            listing.row(&[
                id,
                timefmt::ago(p.created_at),
                state.to_owned(),
                meta.name,
                meta.namespace,
                meta.attempt.to_string(),
                runtime_handler(p).to_owned(),
            ]);
            continue;
        }
        let text = listing.text();
        text.push_str(&format!("ID: {}\n", p.id));
        if p.metadata.is_some() {
            for (k, v) in [
                ("Name", &meta.name),
                ("UID", &meta.uid),
                ("Namespace", &meta.namespace),
            ] {
                if !v.is_empty() {
                    text.push_str(&format!("{k}: {v}\n"));
                }
            }
            if meta.attempt != 0 {
                text.push_str(&format!("Attempt: {}\n", meta.attempt));
            }
        }
        text.push_str(&format!("Status: {state}\n"));
        text.push_str(&format!(
            "Created: {}\n",
            timefmt::go_time_string(p.created_at)
        ));
        verbose_map("Labels", &p.labels, text);
        verbose_map("Annotations", &p.annotations, text);
        text.push_str(&format!("Runtime: {}\n\n", runtime_handler(p)));
    }
    listing.print()
}
