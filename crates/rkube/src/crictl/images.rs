//! `crictl images` and `crictl rmi`.

use std::collections::HashSet;

use anyhow::Context;
use kubelet::RuntimeClient;
use kubelet::cri::api;

use super::table::{self, Listing, Mode};
use super::{log, out, print_structured, protojson};

#[derive(clap::Args)]
pub struct ListArgs {
    /// Only images of this name (REPOSITORY[:TAG]), as the runtime filters them
    #[arg(value_name = "REPOSITORY[:TAG]")]
    name: Option<String>,
    /// Show verbose info for images
    #[arg(short, long)]
    verbose: bool,
    /// Only show image IDs
    #[arg(short, long)]
    quiet: bool,
    /// Filter output based on provided conditions: dangling=(true|false), reference=REGEX,
    /// before=IMAGE, since=IMAGE; repeatable
    #[arg(short, long = "filter")]
    filters: Vec<String>,
    /// Output format, One of: json|yaml|table
    #[arg(short, long, default_value = "table")]
    output: String,
    /// Show digests
    #[arg(long)]
    digests: bool,
    /// Show output without truncating the ID
    #[arg(long)]
    no_trunc: bool,
    /// Show whether the image is pinned or not
    #[arg(long)]
    pinned: bool,
}

#[derive(clap::Args)]
pub struct RmiArgs {
    /// Images to remove, by ID or reference. Every tag of the image goes (a CRI limitation).
    #[arg(value_name = "IMAGE-ID", required_unless_present_any = ["all", "prune"])]
    ids: Vec<String>,
    /// Remove all images
    #[arg(short, long)]
    all: bool,
    /// Remove all unused images
    #[arg(short = 'q', long)]
    prune: bool,
}

/// crictl's `normalizeRepoDigest`: the first digest split into name and digest.
fn repo_digest(digests: &[String]) -> (String, String) {
    let Some(first) = digests.first() else {
        return ("<none>".to_owned(), "<none>".to_owned());
    };
    match first.split('@').collect::<Vec<_>>().as_slice() {
        [name, digest] => ((*name).to_owned(), (*digest).to_owned()),
        _ => ("errorName".to_owned(), "errorRepoDigest".to_owned()),
    }
}

/// crictl's `normalizeRepoTagPair`: (repository, tag) per tag, `<none>` without one.
fn repo_tags(tags: &[String], image_name: &str) -> Vec<(String, String)> {
    if tags.is_empty() {
        return vec![(image_name.to_owned(), "<none>".to_owned())];
    }
    tags.iter()
        .map(|t| match t.rfind(':') {
            None => ("errorRepoTag".to_owned(), "errorRepoTag".to_owned()),
            Some(i) => {
                let name = if &t[..i] == "<none>" {
                    image_name
                } else {
                    &t[..i]
                };
                (name.to_owned(), t[i + 1..].to_owned())
            }
        })
        .collect()
}

/// crictl's `ListImages`: the runtime's list, sorted by first tag (else first digest, else
/// ID), then `--filter`s.
async fn list_images(cri: &RuntimeClient, a: &ListArgs) -> anyhow::Result<Vec<api::Image>> {
    let filter = api::ImageFilter {
        image: Some(api::ImageSpec {
            image: a.name.clone().unwrap_or_default(),
            ..Default::default()
        }),
    };
    let mut images = cri.list_images(Some(filter)).await?;
    images.sort_by(|x, y| match (x.repo_tags.first(), y.repo_tags.first()) {
        (Some(a), Some(b)) => a.cmp(b),
        _ => match (x.repo_digests.first(), y.repo_digests.first()) {
            (Some(a), Some(b)) => a.cmp(b),
            _ => x.id.cmp(&y.id),
        },
    });
    for f in &a.filters {
        images = apply_filter(images, f).context("filter images")?;
    }
    Ok(images)
}

/// One `--filter` condition (crictl's `filterImagesList`).
fn apply_filter(images: Vec<api::Image>, filter: &str) -> anyhow::Result<Vec<api::Image>> {
    if let Some(v) = filter.strip_prefix("before=") {
        let mut reversed = images;
        reversed.reverse();
        let mut kept = before_since(v, reversed);
        kept.reverse();
        return Ok(kept);
    }
    if let Some(v) = filter.strip_prefix("since=") {
        return Ok(before_since(v, images));
    }
    if let Some(v) = filter.strip_prefix("dangling=") {
        return Ok(images
            .into_iter()
            .filter(|i| {
                (v == "true" && i.repo_tags.is_empty()) || (v == "false" && !i.repo_tags.is_empty())
            })
            .collect());
    }
    if let Some(v) = filter.strip_prefix("reference=") {
        let re = regex::Regex::new(v).with_context(|| format!("invalid reference filter {v:?}"))?;
        return Ok(images
            .into_iter()
            .filter(|i| {
                let (name, _) = repo_digest(&i.repo_digests);
                re.is_match(&name) || name == v
            })
            .collect());
    }
    anyhow::bail!("unknown filter flag: {filter}")
}

/// crictl's `filterByBeforeSince`: the images listed before the one named (by name:tag, ID
/// prefix or name@digest).
fn before_since(value: &str, images: Vec<api::Image>) -> Vec<api::Image> {
    let mut kept = Vec::new();
    for img in images {
        let by_tag = value.contains(':') && !value.contains('@');
        let by_id = !value.contains(':') && !value.contains('@');
        let by_digest = value.contains(':') && value.contains('@');
        if by_tag {
            let (name, _) = repo_digest(&img.repo_digests);
            let first = repo_tags(&img.repo_tags, &name).into_iter().next();
            if first.is_some_and(|(r, t)| format!("{r}:{t}") == value) {
                break;
            }
            kept.push(img);
        } else if by_id {
            if img.id.starts_with(value) {
                break;
            }
            kept.push(img);
        } else if by_digest && !img.repo_digests.is_empty() {
            if img.repo_digests[0].starts_with(value) {
                break;
            }
            kept.push(img);
        }
    }
    kept
}

pub async fn list(cri: &RuntimeClient, a: ListArgs) -> anyhow::Result<()> {
    let images = list_images(cri, &a).await.context("listing images")?;
    let items = images.iter().map(protojson::image).collect();
    if print_structured(&protojson::list_response("images", items), &a.output)? {
        return Ok(());
    }
    let mut header = vec!["IMAGE", "TAG"];
    if a.digests {
        header.push("DIGEST");
    }
    header.extend(["IMAGE ID", "SIZE"]);
    if a.pinned {
        header.push("PINNED");
    }
    let mut listing = Listing::new(a.quiet, a.verbose, &header);
    for img in &images {
        if listing.mode() == Mode::Ids {
            listing.id(&img.id);
            continue;
        }
        if listing.mode() == Mode::Table {
            let (name, mut digest) = repo_digest(&img.repo_digests);
            let mut id = img.id.clone();
            if !a.no_trunc {
                id = table::truncate_id(&id, "sha256:");
                digest = table::truncate_id(&digest, "sha256:");
            }
            let size = table::human_size(img.size);
            for (repo, tag) in repo_tags(&img.repo_tags, &name) {
                let mut row = vec![repo, tag];
                if a.digests {
                    row.push(digest.clone());
                }
                row.extend([id.clone(), size.clone()]);
                if a.pinned {
                    row.push(img.pinned.to_string());
                }
                listing.row(&row);
            }
            continue;
        }
        let text = listing.text();
        text.push_str(&format!("ID: {}\n", img.id));
        for tag in &img.repo_tags {
            text.push_str(&format!("RepoTags: {tag}\n"));
        }
        for digest in &img.repo_digests {
            text.push_str(&format!("RepoDigests: {digest}\n"));
        }
        if img.size != 0 {
            text.push_str(&format!("Size: {}\n", img.size));
        }
        if let Some(uid) = &img.uid {
            // Go prints the message with %v: its text form.
            text.push_str(&format!("Uid: value:{}\n", uid.value));
        }
        if !img.username.is_empty() {
            text.push_str(&format!("Username: {}\n", img.username));
        }
        if img.pinned {
            text.push_str("Pinned: true\n");
        }
        text.push('\n');
    }
    listing.print()
}

pub async fn rmi(cri: &RuntimeClient, a: RmiArgs) -> anyhow::Result<()> {
    // The images to remove, in the order given, each once.
    let mut ids: Vec<String> = Vec::new();
    for id in a.ids {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    if a.all || a.prune {
        for img in cri.list_images(None).await? {
            // Pinned images (the sandbox image) are never pruned.
            if (a.prune && img.pinned) || ids.contains(&img.id) {
                continue;
            }
            ids.push(img.id);
        }
    }
    if a.prune {
        let mut keep = images_in_use(cri).await?;
        keep.extend(sandbox_image_id(cri).await);
        ids.retain(|id| !keep.contains(id));
    }
    if ids.is_empty() {
        log("info", "No images to remove");
        return Ok(());
    }
    let mut errors = Vec::new();
    for id in &ids {
        if let Err(e) = remove(cri, id, a.prune).await {
            errors.push(format!("{e:#}"));
        }
    }
    if !errors.is_empty() {
        anyhow::bail!("{}", errors.join("\n"));
    }
    Ok(())
}

/// The IDs of the images containers (of any state) were created from.
async fn images_in_use(cri: &RuntimeClient) -> anyhow::Result<HashSet<String>> {
    let mut used = HashSet::new();
    for c in cri.list_containers(None).await? {
        let image = c.image.map(|i| i.image).unwrap_or_default();
        match cri.image_status(&image).await {
            Ok(Some(img)) => {
                used.insert(img.id);
            }
            Ok(None) => {}
            Err(e) => log(
                "error",
                &format!("image status request for {image:?} failed: {e}"),
            ),
        }
    }
    Ok(used)
}

/// The ID of the runtime's sandbox (pause) image. containerd 1.7 and later report it pinned,
/// so crictl's prune leaves it; containerd 1.6 does not, and pruning it would leave the node
/// unable to start pods until its agent imports it again. Kept as if it were pinned.
async fn sandbox_image_id(cri: &RuntimeClient) -> Option<String> {
    let status = cri.status(true).await.ok()?;
    let config: serde_json::Value = status
        .info
        .get("config")
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or_default();
    let name = config["sandboxImage"]
        .as_str()
        .unwrap_or(kubelet::PAUSE_IMAGE)
        .to_owned();
    cri.image_status(&name).await.ok().flatten().map(|i| i.id)
}

/// Removes one image and prints what went (`Deleted: <tag>` per tag, else per digest).
async fn remove(cri: &RuntimeClient, id: &str, prune: bool) -> anyhow::Result<()> {
    let status = cri
        .image_status(id)
        .await
        .with_context(|| format!("image status request for {id:?} failed"))?;
    let Some(img) = status else {
        anyhow::bail!("no such image {id}");
    };
    let likely_tag = !id.starts_with("sha256:") && (id.contains(':') || id.contains('/'));
    if img.repo_tags.len() > 1 && likely_tag {
        log(
            "warning",
            &format!(
                "Image {id:?} has multiple tags. Removing this image will delete all of the following tags:"
            ),
        );
        for tag in &img.repo_tags {
            log("warning", &format!("  {tag}"));
        }
    }
    if let Err(e) = cri.remove_image(id).await {
        // A prune races with the kubelet; its failures are not errors.
        if prune {
            return Ok(());
        }
        return Err(e).with_context(|| format!("error of removing image {id:?}"));
    }
    let names = if img.repo_tags.is_empty() {
        &img.repo_digests
    } else {
        &img.repo_tags
    };
    let mut text = String::new();
    for n in names {
        text.push_str(&format!("Deleted: {n}\n"));
    }
    out(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(id: &str, tags: &[&str], digests: &[&str]) -> api::Image {
        api::Image {
            id: id.into(),
            repo_tags: tags.iter().map(|s| (*s).to_owned()).collect(),
            repo_digests: digests.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn names_tags_and_filters() {
        assert_eq!(
            repo_tags(&["rkube.local/busybox:e2e".to_owned()], "x"),
            vec![("rkube.local/busybox".to_owned(), "e2e".to_owned())]
        );
        assert_eq!(
            repo_tags(&[], "docker.io/library/busybox"),
            vec![("docker.io/library/busybox".to_owned(), "<none>".to_owned())]
        );
        assert_eq!(
            repo_digest(&["docker.io/x@sha256:ab".to_owned()]),
            ("docker.io/x".to_owned(), "sha256:ab".to_owned())
        );
        let images = vec![
            image("sha256:1", &["a:1"], &[]),
            image("sha256:2", &["b:1"], &[]),
            image("sha256:3", &[], &["c@sha256:3"]),
        ];
        let ids = |v: Vec<api::Image>| v.into_iter().map(|i| i.id).collect::<Vec<_>>();
        assert_eq!(
            ids(apply_filter(images.clone(), "dangling=true").unwrap()),
            vec!["sha256:3"]
        );
        assert_eq!(
            ids(apply_filter(images.clone(), "since=b:1").unwrap()),
            vec!["sha256:1"]
        );
        assert_eq!(
            ids(apply_filter(images.clone(), "before=b:1").unwrap()),
            vec!["sha256:3"]
        );
        assert_eq!(
            ids(apply_filter(images.clone(), "reference=^c").unwrap()),
            vec!["sha256:3"]
        );
        assert!(apply_filter(images, "nope=1").is_err());
    }
}
