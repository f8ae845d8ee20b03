//! `crictl ps`: containers, running ones unless `-a`, newest first.

use std::collections::HashMap;

use anyhow::Context;
use kubelet::RuntimeClient;
use kubelet::cri::api;
use kubelet::kuberuntime::{LABEL_POD_NAME, LABEL_POD_NAMESPACE};

use super::table::{self, Listing, Mode};
use super::{print_structured, protojson, timefmt, verbose_map};

#[derive(clap::Args)]
pub struct Args {
    /// Show verbose information for containers
    #[arg(short, long)]
    verbose: bool,
    /// Filter by container id
    #[arg(long)]
    id: Option<String>,
    #[command(flatten)]
    filters: Filters,
    /// Only display container IDs
    #[arg(short, long)]
    quiet: bool,
    /// Output format, One of: json|yaml|table
    #[arg(short, long, default_value = "table")]
    output: String,
    /// Show output without truncating the ID
    #[arg(long)]
    no_trunc: bool,
    /// Show image path instead of image id
    #[arg(short, long)]
    resolve_image_path: bool,
}

/// The container filter flags `ps` and `inspect` share, as crictl declares them for both.
#[derive(clap::Args)]
pub struct Filters {
    /// Filter by container name regular expression pattern
    #[arg(long)]
    name: Option<String>,
    /// Filter by pod namespace regular expression pattern
    #[arg(long)]
    namespace: Option<String>,
    /// Filter by pod id
    #[arg(short, long)]
    pod: Option<String>,
    /// Filter by container image
    #[arg(long)]
    image: Option<String>,
    /// Filter by container state
    #[arg(short, long)]
    state: Option<String>,
    /// Filter by key=value label
    #[arg(long = "label")]
    labels: Vec<String>,
    /// Show the most recently created container (includes all states)
    #[arg(short, long)]
    latest: bool,
    /// Show last n recently created containers (includes all states). Set 0 for unlimited.
    #[arg(short = 'n', long, default_value_t = 0)]
    last: i64,
    /// Show all containers
    #[arg(short, long)]
    all: bool,
}

impl Filters {
    /// The list options these flags select (no container ID: `ps` adds its `--id`).
    pub fn to_list_options(&self) -> anyhow::Result<ListOptions> {
        Ok(ListOptions {
            id: None,
            pod_id: self.pod.clone(),
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            image: self.image.clone(),
            state: self.state.clone(),
            labels: table::parse_labels(&self.labels)?,
            all: self.all,
            latest: self.latest,
            last: self.last,
        })
    }
}

/// crictl's `listOptions` as far as containers use it (`ps`, `inspect`, `exec`).
#[derive(Default)]
pub struct ListOptions {
    pub id: Option<String>,
    pub pod_id: Option<String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub image: Option<String>,
    pub state: Option<String>,
    pub labels: HashMap<String, String>,
    pub all: bool,
    pub latest: bool,
    pub last: i64,
}

/// A label of a container or sandbox, `unknown` when it is missing (crictl's `getFromLabels`).
pub fn label<'a>(labels: &'a HashMap<String, String>, key: &str) -> &'a str {
    labels.get(key).map_or("unknown", String::as_str)
}

/// crictl's `ListContainers`: the runtime's filter (ID, pod, state, labels), then image, name
/// and namespace filters, newest first, cut to `--latest`/`--last`.
pub async fn list(cri: &RuntimeClient, opts: &ListOptions) -> anyhow::Result<Vec<api::Container>> {
    let mut filter = api::ContainerFilter {
        id: opts.id.clone().unwrap_or_default(),
        pod_sandbox_id: opts.pod_id.clone().unwrap_or_default(),
        label_selector: opts.labels.clone(),
        ..Default::default()
    };
    let state = match opts.state.as_deref().filter(|s| !s.is_empty()) {
        None if opts.all => None,
        None => Some(api::ContainerState::ContainerRunning),
        Some(s) => Some(match s.to_lowercase().as_str() {
            "created" => api::ContainerState::ContainerCreated,
            "running" => api::ContainerState::ContainerRunning,
            "exited" => api::ContainerState::ContainerExited,
            "unknown" => api::ContainerState::ContainerUnknown,
            _ => anyhow::bail!("--state should be one of created, running, exited or unknown"),
        }),
    };
    // --latest and --last look at every state.
    if !(opts.latest || opts.last > 0) {
        filter.state = state.map(|s| api::ContainerStateValue { state: s as i32 });
    }
    let containers = cri
        .list_containers(Some(filter))
        .await
        .context("call list containers RPC")?;
    let name_re = table::compile_regex(opts.name.as_deref())?;
    let ns_re = table::compile_regex(opts.namespace.as_deref())?;
    let mut kept = Vec::new();
    for c in containers {
        let image = c
            .image
            .as_ref()
            .map(|i| i.image.as_str())
            .unwrap_or_default();
        if !matches_image(cri, opts.image.as_deref(), image).await? {
            continue;
        }
        let Some(meta) = &c.metadata else { continue };
        if table::matches(name_re.as_ref(), &meta.name)
            && table::matches(ns_re.as_ref(), label(&c.labels, LABEL_POD_NAMESPACE))
        {
            kept.push(c);
        }
    }
    kept.sort_by_key(|c| std::cmp::Reverse(c.created_at));
    kept.truncate(table::truncate_count(kept.len(), opts.latest, opts.last));
    Ok(kept)
}

/// crictl's `matchesImage`: both names resolve to the same image ID.
async fn matches_image(
    cri: &RuntimeClient,
    want: Option<&str>,
    image: &str,
) -> anyhow::Result<bool> {
    let Some(want) = want.filter(|w| !w.is_empty()) else {
        return Ok(true);
    };
    let a = cri.image_status(want).await.context("check image match")?;
    let b = cri.image_status(image).await.context("check image match")?;
    Ok(match (a, b) {
        (Some(a), Some(b)) => a.id == b.id,
        _ => false,
    })
}

/// crictl's `getRepoImage`: the image's first tag, else the name given.
async fn repo_image(cri: &RuntimeClient, image: &str) -> anyhow::Result<String> {
    let status = cri
        .image_status(image)
        .await
        .context("failed to fetch repo image")?;
    Ok(status
        .and_then(|i| i.repo_tags.into_iter().next())
        .unwrap_or_else(|| image.to_owned()))
}

/// crictl's `convertContainerState`.
pub fn state_name(state: i32) -> anyhow::Result<&'static str> {
    Ok(match api::ContainerState::try_from(state) {
        Ok(api::ContainerState::ContainerCreated) => "Created",
        Ok(api::ContainerState::ContainerRunning) => "Running",
        Ok(api::ContainerState::ContainerExited) => "Exited",
        Ok(api::ContainerState::ContainerUnknown) => "Unknown",
        Err(_) => anyhow::bail!("unknown container state \"{state}\""),
    })
}

pub async fn run(cri: &RuntimeClient, a: Args) -> anyhow::Result<()> {
    let opts = ListOptions {
        id: a.id,
        ..a.filters.to_list_options()?
    };
    let containers = list(cri, &opts).await.context("listing containers")?;
    let items = containers.iter().map(protojson::container).collect();
    if print_structured(&protojson::list_response("containers", items), &a.output)? {
        return Ok(());
    }
    let mut listing = Listing::new(
        a.quiet,
        a.verbose,
        &[
            "CONTAINER",
            "IMAGE",
            "CREATED",
            "STATE",
            "NAME",
            "ATTEMPT",
            "POD ID",
            "POD",
            "NAMESPACE",
        ],
    );
    for c in &containers {
        if listing.mode() == Mode::Ids {
            listing.id(&c.id);
            continue;
        }
        let created = timefmt::ago(c.created_at);
        let namespace = label(&c.labels, LABEL_POD_NAMESPACE);
        let state = state_name(c.state)?;
        let (name, attempt) = c
            .metadata
            .as_ref()
            .map(|m| (m.name.as_str(), m.attempt))
            .unwrap_or_default();
        if listing.mode() == Mode::Table {
            let mut id = c.id.clone();
            let mut pod_id = c.pod_sandbox_id.clone();
            let mut image = c
                .image
                .as_ref()
                .map(|i| i.image.clone())
                .unwrap_or_default();
            if !a.no_trunc {
                id = table::truncate_id(&id, "");
                pod_id = table::truncate_id(&pod_id, "");
                // An image named by ID (upstream's kubelet does so) is shortened.
                if let Some(alg) = table::parse_digest(&image) {
                    image = table::truncate_id(&image, &format!("{alg}:"));
                }
            }
            if a.resolve_image_path {
                image = repo_image(cri, &image).await?;
            }
            listing.row(&[
                id,
                image,
                created,
                state.to_owned(),
                name.to_owned(),
                attempt.to_string(),
                pod_id,
                label(&c.labels, LABEL_POD_NAME).to_owned(),
                namespace.to_owned(),
            ]);
            continue;
        }
        let text = listing.text();
        text.push_str(&format!(
            "ID: {}\nPodID: {}\nNamespace: {namespace}\n",
            c.id, c.pod_sandbox_id
        ));
        if let Some(m) = &c.metadata {
            if !m.name.is_empty() {
                text.push_str(&format!("Name: {}\n", m.name));
            }
            text.push_str(&format!("Attempt: {}\n", m.attempt));
        }
        text.push_str(&format!("State: {state}\n"));
        if let Some(i) = &c.image {
            text.push_str(&format!("Image: {}\n", i.image));
        }
        text.push_str(&format!("Created: {created}\n"));
        verbose_map("Labels", &c.labels, text);
        verbose_map("Annotations", &c.annotations, text);
        text.push('\n');
    }
    listing.print()
}
