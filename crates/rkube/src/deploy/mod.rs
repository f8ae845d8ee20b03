//! Auto-deploying manifests (k3s' deploy controller): every `*.yaml`, `*.yml` and `*.json` in
//! `<data-dir>/server/manifests/` is applied with server-side apply when the server starts and
//! whenever the file changes; objects a changed file no longer holds are deleted, and so are
//! all of a removed file's. `NAME.yaml.skip` beside `NAME.yaml` leaves that file alone (neither
//! applied nor deleted). What each file applied is recorded in a ConfigMap
//! `kube-system/rkube-manifest-NAME` (labelled `rkube.io/manifest=NAME`), so
//! `kubectl get configmaps -n kube-system -l rkube.io/manifest` lists the manifests in force,
//! the packaged parts among them; its events say when a file was applied or failed.

pub mod apply;
pub mod packaged;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use tracing::{info, warn};

use apply::{Applier, FIELD_MANAGER, ObjectRef};

/// Where the records live, as k3s keeps its Addon objects.
const NAMESPACE: &str = "kube-system";
const RECORD_PREFIX: &str = "rkube-manifest-";
const RECORD_LABEL: &str = "rkube.io/manifest";
/// How often the directory is read; a failed file is retried no sooner than RETRY.
const POLL: Duration = Duration::from_secs(2);
const RETRY: Duration = Duration::from_secs(10);

/// The manifests directory of a server's data dir.
pub fn manifests_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("server/manifests")
}

/// A manifest file as read this pass.
struct Manifest {
    path: PathBuf,
    text: String,
    checksum: String,
}

/// What a record says a manifest applied.
struct Record {
    checksum: String,
    objects: Vec<ObjectRef>,
}

pub struct Deployer {
    client: Client,
    dir: PathBuf,
    applier: Applier,
    recorder: client_go::events::Recorder,
    /// Files whose last apply failed, by name: the checksum that failed and when.
    failed: HashMap<String, (String, Instant)>,
}

impl Deployer {
    pub fn new(client: Client, dir: PathBuf) -> Self {
        Deployer {
            applier: Applier::new(client.clone()),
            recorder: client_go::events::Recorder::new(client.clone(), "deploy"),
            client,
            dir,
            failed: HashMap::new(),
        }
    }

    /// Keeps the cluster in step with the directory, until aborted.
    pub async fn run(mut self) {
        if let Err(e) = std::fs::create_dir_all(&self.dir) {
            warn!(dir = %self.dir.display(), error = %e, "cannot create the manifests directory");
        }
        loop {
            if let Err(e) = self.pass().await {
                warn!(error = format!("{e:#}"), "deploying manifests");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn pass(&mut self) -> anyhow::Result<()> {
        let (manifests, skipped) = scan(&self.dir)?;
        let mut records = self.records().await?;
        for (name, m) in &manifests {
            let previous = records.remove(name);
            if previous.as_ref().is_some_and(|r| r.checksum == m.checksum) {
                continue;
            }
            if let Some((sum, at)) = self.failed.get(name)
                && *sum == m.checksum
                && at.elapsed() < RETRY
            {
                continue;
            }
            let previous = previous.map(|r| r.objects).unwrap_or_default();
            self.deploy(name, m, previous).await?;
        }
        // What is left had its file removed (a skipped file keeps what it applied).
        for (name, record) in records {
            if skipped.contains(&name) {
                continue;
            }
            self.remove(&name, record.objects).await?;
        }
        Ok(())
    }

    /// Applies one file, prunes what it no longer holds, and records the result.
    async fn deploy(
        &mut self,
        name: &str,
        m: &Manifest,
        previous: Vec<ObjectRef>,
    ) -> anyhow::Result<()> {
        let mut applied = Vec::new();
        let mut errors = Vec::new();
        match apply::documents(&m.text) {
            Ok(mut docs) => {
                // Namespaces and CRDs first: later objects may live in or be of them.
                docs.sort_by_key(|d| match d.get("kind").and_then(Value::as_str) {
                    Some("Namespace") => 0,
                    Some("CustomResourceDefinition") => 1,
                    _ => 2,
                });
                for doc in docs {
                    match self.applier.apply(name, doc).await {
                        Ok(r) => applied.push(r),
                        Err(e) => errors.push(format!("{e:#}")),
                    }
                }
            }
            Err(e) => errors.push(format!("{}: {e:#}", m.path.display())),
        }
        let ok = errors.is_empty();
        let mut objects: BTreeSet<ObjectRef> = applied.iter().cloned().collect();
        if ok {
            let gone: Vec<ObjectRef> = previous
                .into_iter()
                .filter(|r| !objects.contains(r))
                .collect();
            for r in gone {
                if let Err(e) = self.applier.delete(&r).await {
                    errors.push(format!("{e:#}"));
                    objects.insert(r);
                }
            }
        } else {
            // Until the file applies cleanly, keep what it had, so removing it removes all.
            objects.extend(previous);
        }
        let checksum = if errors.is_empty() { &m.checksum } else { "" };
        let record = self.write_record(name, m, checksum, &objects).await?;
        if errors.is_empty() {
            self.failed.remove(name);
            info!(manifest = %m.path.display(), objects = applied.len(), "applied manifest");
            self.recorder.record(
                &record,
                false,
                "AppliedManifest",
                format!("Applied manifest at {:?}", m.path),
            );
        } else {
            self.failed
                .insert(name.to_string(), (m.checksum.clone(), Instant::now()));
            let message = format!(
                "Failed to apply manifest at {:?}: {}",
                m.path,
                errors.join("; ")
            );
            warn!("{message}");
            self.recorder
                .record(&record, true, "ApplyManifestFailed", message);
        }
        Ok(())
    }

    /// A removed file: its objects are deleted, then its record.
    async fn remove(&mut self, name: &str, objects: Vec<ObjectRef>) -> anyhow::Result<()> {
        for r in &objects {
            self.applier.delete(r).await?;
        }
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), NAMESPACE);
        match api
            .delete(&format!("{RECORD_PREFIX}{name}"), &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e).context("deleting a manifest's record"),
        }
        info!(
            manifest = name,
            objects = objects.len(),
            "removed manifest's objects"
        );
        Ok(())
    }

    async fn records(&self) -> anyhow::Result<BTreeMap<String, Record>> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), NAMESPACE);
        let list = api
            .list(&ListParams::default().labels(RECORD_LABEL))
            .await
            .context("listing the manifests' records")?;
        Ok(list
            .items
            .into_iter()
            .filter_map(|cm| {
                let name = cm.metadata.labels.as_ref()?.get(RECORD_LABEL)?.clone();
                let data = cm.data.unwrap_or_default();
                let record = Record {
                    checksum: data.get("checksum").cloned().unwrap_or_default(),
                    objects: data
                        .get("objects")
                        .map(|o| o.lines().filter_map(ObjectRef::parse).collect())
                        .unwrap_or_default(),
                };
                Some((name, record))
            })
            .collect())
    }

    async fn write_record(
        &self,
        name: &str,
        m: &Manifest,
        checksum: &str,
        objects: &BTreeSet<ObjectRef>,
    ) -> anyhow::Result<ConfigMap> {
        let lines: Vec<String> = objects.iter().map(ToString::to_string).collect();
        let record = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("{RECORD_PREFIX}{name}"), "namespace": NAMESPACE,
                "labels": {RECORD_LABEL: name}},
            "data": {"source": m.path.display().to_string(), "checksum": checksum,
                "objects": lines.join("\n")},
        });
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), NAMESPACE);
        api.patch(
            &format!("{RECORD_PREFIX}{name}"),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&record),
        )
        .await
        .context("recording a manifest")
    }
}

/// The manifest name of a file (`Web App.yaml` → `web-app`): its name without the extension,
/// made a valid object name; None for files that are not manifests.
fn manifest_name(file: &str) -> Option<String> {
    if file.starts_with('.') {
        return None;
    }
    let stem = [".yaml", ".yml", ".json"]
        .iter()
        .find_map(|ext| file.strip_suffix(ext))?;
    let name: String = stem
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = name.trim_matches(|c| c == '-' || c == '.');
    let name: String = name.chars().take(253 - RECORD_PREFIX.len()).collect();
    (!name.is_empty()).then_some(name)
}

/// The directory's manifests by name, and the names of those with a `.skip` file.
fn scan(dir: &Path) -> anyhow::Result<(BTreeMap<String, Manifest>, BTreeSet<String>)> {
    let mut manifests = BTreeMap::new();
    let mut skipped = BTreeSet::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((manifests, skipped)),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let file = entry.file_name().to_string_lossy().into_owned();
        if let Some(target) = file.strip_suffix(".skip") {
            skipped.extend(manifest_name(target));
        } else if let Some(name) = manifest_name(&file) {
            files.push((name, entry.path()));
        }
    }
    files.sort();
    for (name, path) in files {
        if skipped.contains(&name) {
            continue;
        }
        if manifests.contains_key(&name) {
            warn!(file = %path.display(), "another manifest has the same name; ignored");
            continue;
        }
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let checksum = ring::digest::digest(&ring::digest::SHA256, &bytes)
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        manifests.insert(
            name,
            Manifest {
                path,
                text,
                checksum,
            },
        );
    }
    Ok((manifests, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_names_are_object_names() {
        assert_eq!(manifest_name("coredns.yaml").as_deref(), Some("coredns"));
        assert_eq!(manifest_name("Web App.yml").as_deref(), Some("web-app"));
        assert_eq!(manifest_name("x.json").as_deref(), Some("x"));
        assert_eq!(manifest_name(".hidden.yaml"), None);
        assert_eq!(manifest_name("notes.txt"), None);
        assert_eq!(manifest_name("__.yaml"), None);
    }

    #[test]
    fn scan_reads_manifests_and_honours_skip_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), "kind: A\n").unwrap();
        std::fs::write(dir.path().join("b.yaml"), "kind: B\n").unwrap();
        std::fs::write(dir.path().join("b.yaml.skip"), "").unwrap();
        std::fs::write(dir.path().join("README"), "not a manifest").unwrap();
        let (manifests, skipped) = scan(dir.path()).unwrap();
        assert_eq!(manifests.keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(skipped.iter().collect::<Vec<_>>(), ["b"]);
        assert_eq!(manifests["a"].checksum.len(), 64);
        assert!(scan(&dir.path().join("missing")).unwrap().0.is_empty());
    }
}
