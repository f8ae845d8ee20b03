//! The set's ControllerRevisions: orphans adopted, the current and update revisions (a new
//! one per template change, renumbered on rollback), and history truncated to
//! `revisionHistoryLimit`.

use super::*;

impl StatefulSetController {
    /// Orphaned revisions the selector matches become the set's (after an orphaning delete
    /// and re-create, the history comes back).
    pub(super) async fn adopt_orphan_revisions(&self, set: &StatefulSet) -> anyhow::Result<()> {
        let Some(selector) = set.spec.as_ref().map(|s| &s.selector) else {
            return Ok(());
        };
        let ns = namespace_of(set);
        let api: Api<ControllerRevision> = Api::namespaced(self.client.clone(), ns);
        let sets: Api<StatefulSet> = Api::namespaced(self.client.clone(), ns);
        let uid = set.metadata.uid.clone().unwrap_or_default();
        let owner = pods::controller_ref("apps/v1", "StatefulSet", &set.metadata);
        ControllerRefManager::new(&set.metadata, owner)
            .claim(
                &api,
                self.revisions.list_namespace(ns),
                |r| pods::selects_some(selector, &pods::labels(&r.metadata)),
                || owner_not_deleting(&sets, name_of(set), &uid),
            )
            .await?;
        Ok(())
    }

    /// The current and update revisions and the collision count (upstream's
    /// `getStatefulSetRevisions`): the set's template is the update revision, created if
    /// new, renumbered newest if an older revision has it (a rollback); the current one is
    /// the status' currentRevision, or the update revision for a new set.
    pub(super) async fn revisions_for(
        &self,
        set: &StatefulSet,
        owned: &[Arc<ControllerRevision>],
    ) -> anyhow::Result<(ControllerRevision, ControllerRevision, i32)> {
        let ns = namespace_of(set);
        let uid = set.metadata.uid.clone().unwrap_or_default();
        let api: Api<ControllerRevision> = Api::namespaced(self.client.clone(), ns);
        let template = template_of(set);
        let data = history::template_patch(&template);
        let first = set
            .status
            .as_ref()
            .and_then(|s| s.collision_count)
            .unwrap_or(0);
        let mut collision_count = first;
        let same = |r: &ControllerRevision| r.data.as_ref().map(|d| &d.0) == Some(&data);
        let update = loop {
            let want = self.new_revision(set, &template, &data, collision_count);
            match history::make_newest(&api, owned, &uid, same, want).await? {
                Some(r) => break r,
                None if collision_count < first + MAX_COLLISIONS => {
                    tracing::info!(statefulset = %name_of(set), collision_count, "ControllerRevision name collision");
                    collision_count += 1;
                }
                None => {
                    anyhow::bail!(
                        "no free ControllerRevision name for StatefulSet {ns}/{}",
                        name_of(set)
                    )
                }
            }
        };
        let status_current = set
            .status
            .as_ref()
            .and_then(|s| s.current_revision.as_deref());
        let current = owned
            .iter()
            .find(|r| r.metadata.name.is_some() && r.metadata.name.as_deref() == status_current)
            .map(|r| r.as_ref().clone())
            .unwrap_or_else(|| update.clone());
        Ok((current, update, collision_count))
    }

    /// A revision of the set's template: named `<set>-<hash of its data>`, labelled with the
    /// template's labels (what `kubectl rollout history` selects by) and the hash, annotated
    /// as the set (change-cause).
    pub(super) fn new_revision(
        &self,
        set: &StatefulSet,
        template: &PodTemplateSpec,
        data: &Value,
        collision_count: i32,
    ) -> ControllerRevision {
        let bytes = serde_json::to_vec(data).unwrap_or_default();
        let hash = history::safe_hash(&bytes, Some(collision_count));
        let mut labels = template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        labels.insert(REVISION_HASH.into(), hash.clone());
        ControllerRevision {
            metadata: ObjectMeta {
                name: Some(format!("{}-{hash}", name_of(set))),
                namespace: Some(namespace_of(set).to_string()),
                labels: Some(labels),
                annotations: set.metadata.annotations.clone(),
                owner_references: Some(vec![pods::controller_ref(
                    "apps/v1",
                    "StatefulSet",
                    &set.metadata,
                )]),
                ..Default::default()
            },
            data: Some(RawExtension(data.clone())),
            revision: 0,
        }
    }

    /// Deletes the oldest revisions beyond revisionHistoryLimit, never the current or update
    /// revision nor one a pod still runs.
    pub(super) async fn truncate_history(
        &self,
        set: &StatefulSet,
        owned: &[Arc<ControllerRevision>],
        pods: &[Arc<Pod>],
        status: &SetStatus,
    ) -> anyhow::Result<()> {
        let limit = set
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(10);
        if limit < 0 {
            return Ok(());
        }
        let mut live: HashSet<&str> = pods.iter().filter_map(|p| revision_of(p)).collect();
        live.insert(&status.current_revision);
        live.insert(&status.update_revision);
        let api: Api<ControllerRevision> = Api::namespaced(self.client.clone(), namespace_of(set));
        history::truncate(
            &api,
            owned,
            |r| live.contains(r.metadata.name.as_deref().unwrap_or_default()),
            limit as usize,
        )
        .await
    }
}
